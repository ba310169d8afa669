"""Embedding -> (Bi)LSTM over packed sequences -> pooling -> dense -> logits over N labels.

The LSTM is nn.LSTM, or with `peepholes` model.peephole_lstm's (Paddle's kind, which Baidu's
Senta was trained with: training/senta.py converts it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from model.peephole_lstm import PeepholeLSTM

# last: each direction's final state (the backward one at the text's start, having read it all);
# end: both directions' outputs at the text's last token (Paddle's sequence_last_step, Senta's).
POOLINGS = ("last", "max", "mean", "attention", "max_mean", "end")


# The network's hyperparameters, declared once. Training's flags are these fields (training.config
# nests them in TrainConfig and PretrainConfig); keyword-only, so that ClassifierConfig can still
# take its vocabulary size first. Defaults are the classifier recipe's.
@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.4
    embed_dropout: float = 0.2
    pooling: str = "max_mean"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.embed_dim < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError("embed_dim, hidden_size and num_layers must be positive")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.embed_dropout < 1.0:
            raise ValueError("dropout and embed_dropout must be in [0, 1)")

    def network_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(NetworkConfig)}

    def network(self) -> NetworkConfig:
        """The network part alone (a ClassifierConfig's, without its vocabulary and tables)."""
        return NetworkConfig(**self.network_fields())

    def classifier_config(self, vocab_size: int, **tables: Any) -> ClassifierConfig:
        """This network over `vocab_size` tokens; `tables` sets the rest (labels, token tables)."""
        return ClassifierConfig(vocab_size, **self.network_fields(), **tables)


@dataclass(frozen=True)
class ClassifierConfig(NetworkConfig):
    """A network over a vocabulary: what an artifact's config.json records under `classifier`."""

    vocab_size: int
    labels: tuple[str, ...] = field(default=("negative", "positive"))
    pad_id: int = 0
    # Character-aware tokens: > 0 adds to each token's vector the mean of its first
    # `chars_per_token` characters' vectors, from a table of this many characters (0 is padding).
    char_vocab_size: int = 0
    chars_per_token: int = 4
    # Sentiment knowledge: > 0 adds a learned vector per lexicon cue of the token
    # (model.lexicon_cues.CUES: positive, negative, negation, degree, emoji polarity).
    cue_kinds: int = 0
    # Senta's network (training.senta). Here, not in NetworkConfig, so that they are no training
    # flags yet.
    # > 0 puts a dense layer of this size with tanh between the pooling and the output layer;
    # 0 is one output layer.
    head_hidden: int = 0
    # An LSTM whose gates also read the cell state (model.peephole_lstm); one layer only.
    peepholes: bool = False

    def fitted(self, network: NetworkConfig) -> ClassifierConfig:
        """This classifier with `network`'s fields: the same vocabulary and tables."""
        return replace(self, **network.network_fields())

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocab_size < 3:
            raise ValueError("vocab_size must be at least 3 (<pad>, <unk> and one token)")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must name at least two distinct classes")
        if self.char_vocab_size < 0 or self.cue_kinds < 0 or self.chars_per_token < 1:
            raise ValueError("char_vocab_size and cue_kinds must be >= 0, chars_per_token >= 1")
        if self.head_hidden < 0:
            raise ValueError("head_hidden must be >= 0 (0: no hidden layer in the head)")
        if self.peepholes and self.num_layers != 1:
            raise ValueError(
                f"peepholes need num_layers=1 (got {self.num_layers}): the peephole LSTM has one "
                "layer; set num_layers=1 or peepholes=False"
            )

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def encoder_dim(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown classifier config keys: {sorted(unknown)}")
        d = dict(d)
        if "labels" in d:
            d["labels"] = tuple(d["labels"])
        return cls(**d)


class Encoder(nn.Module):
    """Token ids to contextual states; shared by the classifier and the pretraining LM.

    A token's vector is its word embedding, plus (when configured) the mean of its characters'
    vectors and its lexicon cue's vector. Which characters and which cue belong to each
    vocabulary id are buffers (`token_chars` (V, K), `token_cues` (V,)), saved with the weights,
    so the model still takes nothing but ids: an unseen word that the vocabulary spells out in
    characters keeps their meaning.
    """

    token_chars: Tensor
    token_cues: Tensor

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.char_embedding: nn.Embedding | None = None
        self.cue_embedding: nn.Embedding | None = None
        if cfg.char_vocab_size:
            self.char_embedding = nn.Embedding(cfg.char_vocab_size, cfg.embed_dim, padding_idx=0)
            self.register_buffer(
                "token_chars", torch.zeros(cfg.vocab_size, cfg.chars_per_token, dtype=torch.long)
            )
        if cfg.cue_kinds:
            self.cue_embedding = nn.Embedding(cfg.cue_kinds, cfg.embed_dim, padding_idx=0)
            self.register_buffer("token_cues", torch.zeros(cfg.vocab_size, dtype=torch.long))
        self.embed_dropout = nn.Dropout(cfg.embed_dropout)
        self.lstm: nn.LSTM | PeepholeLSTM
        if cfg.peepholes:
            self.lstm = PeepholeLSTM(cfg.embed_dim, cfg.hidden_size, cfg.bidirectional)
        else:
            self.lstm = nn.LSTM(
                cfg.embed_dim,
                cfg.hidden_size,
                num_layers=cfg.num_layers,
                bidirectional=cfg.bidirectional,
                batch_first=True,
                dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            )
        self.bidirectional = cfg.bidirectional

    def forward(
        self, ids: Tensor, lengths: Tensor, emb: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return (outputs (B, T, D), last (B, D)); padding positions of outputs are zero.

        `emb` (B, T, E) replaces the embedding lookup; gradient x input explanations need it.
        """
        x = self.embed_dropout(self.embed(ids) if emb is None else emb)  # (B, T, E)
        if isinstance(self.lstm, PeepholeLSTM):
            out, h_n = self.lstm(x, lengths)  # (B, T, D), (dirs, B, H)
            last = torch.cat(list(h_n), dim=-1)  # (B, D)
            return out, last
        # pack_padded_sequence wants lengths on the CPU whatever device the model is on.
        packed = pack_padded_sequence(x, lengths.to("cpu"), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.size(1))  # (B, T, D)
        # (B, 2H) joins the forward end and the backward start; (B, H) when unidirectional
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.bidirectional else h_n[-1]
        return out, last

    def embed(self, ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, E) token vectors: word, plus characters and cue if configured."""
        x = self.embedding(ids)
        if self.char_embedding is not None:
            chars = self.token_chars[ids]  # (B, T, K), 0 where a token has fewer characters
            m = (chars != 0).unsqueeze(-1).to(x.dtype)  # (B, T, K, 1)
            x = x + (self.char_embedding(chars) * m).sum(2) / m.sum(2).clamp(min=1)
        if self.cue_embedding is not None:
            x = x + self.cue_embedding(self.token_cues[ids])
        return x


class Pooling(nn.Module):
    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        self.kind = kind
        self.attn = nn.Linear(dim, 1) if kind == "attention" else None
        self.last_weights: Tensor | None = None  # (B, T) attention, kept for explanations

    def forward(self, out: Tensor, last: Tensor, mask: Tensor) -> Tensor:
        # out (B, T, D); mask (B, T) True on real tokens
        if self.kind == "last":
            return last
        if self.kind == "end":
            end = (mask.sum(1) - 1).clamp(min=0)  # (B,) each text's last token
            return out[torch.arange(out.size(0), device=out.device), end]  # (B, D)
        m = mask.unsqueeze(-1)  # (B, T, 1)
        if self.kind == "attention":
            assert self.attn is not None
            scores = self.attn(out).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
            weights = torch.softmax(scores, dim=-1)
            self.last_weights = weights
            return torch.bmm(weights.unsqueeze(1), out).squeeze(1)  # (B, D)
        mean = (out * m).sum(1) / m.sum(1).clamp(min=1)  # (B, D)
        if self.kind == "mean":
            return mean
        mx = out.masked_fill(~m, float("-inf")).amax(1)  # (B, D)
        if self.kind == "max":
            return mx
        return torch.cat([mx, mean], dim=-1)  # (B, 2D)


class SentimentClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.pool = Pooling(cfg.pooling, cfg.encoder_dim)
        pooled = cfg.encoder_dim * (2 if cfg.pooling == "max_mean" else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head_hidden = nn.Linear(pooled, cfg.head_hidden) if cfg.head_hidden else None
        self.head = nn.Linear(cfg.head_hidden or pooled, cfg.num_labels)

    def forward(self, ids: Tensor, lengths: Tensor, emb: Tensor | None = None) -> Tensor:
        """ids (B, T) padded with pad_id, lengths (B,) >= 1 -> logits (B, N)."""
        if bool((lengths < 1).any()):
            raise ValueError("every sequence needs at least one token (use <unk> for empty text)")
        out, last = self.encoder(ids, lengths, emb)  # (B, T, D), (B, D)
        mask = ids != self.cfg.pad_id  # (B, T)
        x = self.dropout(self.pool(out, last, mask))  # (B, P)
        if self.head_hidden is not None:
            x = torch.tanh(self.head_hidden(x))  # (B, head_hidden)
        return self.head(x)  # (B, N)
