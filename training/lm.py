"""ELMo-style language model around the classifier's own Encoder, and its artifact.

One bidirectional nn.LSTM is trained as two language models at once: the forward half of the
output at position t predicts token t+1, the backward half predicts token t-1. Neither half sees
the token it predicts, so `model.network.Encoder` is pretrained exactly as the classifier uses it
and its weights load into `SentimentClassifier.encoder` unchanged.

The softmax covers only the `lm_vocab` most frequent ids (rarer targets count as `<unk>`) and is
an adaptive softmax, so the output layer costs little more than the LSTM on a CPU.

Artifact directory (safetensors + JSON, never a pickle):
    lm.safetensors   LM weights; keys `encoder.*` are the classifier encoder's
    config.json      kind "pretrained-lm", encoder sizes, tokenizer config, vocab fingerprint,
                     perplexity history
    vocab.json       the token list the classifier must use with this encoder
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from model.artifact import ArtifactError, write_directory
from model.network import ClassifierConfig, Encoder
from model.text import TokenizerConfig
from model.vocab import UNK_ID, Vocab

KIND = "pretrained-lm"
FORMAT_VERSION = 1
WEIGHTS = "lm.safetensors"
CONFIG = "config.json"
VOCAB = "vocab.json"
ENCODER_KEYS = ("vocab_size", "embed_dim", "hidden_size", "num_layers", "bidirectional")


class LanguageModel(nn.Module):
    def __init__(self, cfg: ClassifierConfig, lm_vocab: int) -> None:
        super().__init__()
        if lm_vocab < 3 or lm_vocab > cfg.vocab_size:
            raise ValueError(f"lm_vocab must be in [3, vocab_size={cfg.vocab_size}]")
        self.cfg = cfg
        self.lm_vocab = lm_vocab
        self.encoder = Encoder(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        cutoffs = [c for c in (lm_vocab // 8, lm_vocab // 2) if 0 < c < lm_vocab - 1]
        cutoffs = sorted(set(cutoffs))
        # One softmax shared by both directions, as in ELMo.
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(
            cfg.hidden_size, lm_vocab, cutoffs=cutoffs, div_value=4.0
        )

    def directional_states(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Hidden states (N, H) and their target ids (N,) for every real prediction."""
        out, _ = self.encoder(ids, lengths)  # (B, T, D)
        out = self.dropout(out)
        h = self.cfg.hidden_size
        t = ids.size(1)
        pos = torch.arange(t, device=ids.device).unsqueeze(0)  # (1, T)
        lens = lengths.to(ids.device).unsqueeze(1)  # (B, 1)
        # forward half at t -> token t+1, valid while t+1 < length
        states = [out[:, : t - 1, :h][(pos[:, 1:] < lens)]]
        targets = [ids[:, 1:][(pos[:, 1:] < lens)]]
        if self.cfg.bidirectional:
            # backward half at t -> token t-1, valid for 1 <= t < length
            states.append(out[:, 1:, h:][(pos[:, 1:] < lens)])
            targets.append(ids[:, :-1][(pos[:, 1:] < lens)])
        y = torch.cat(targets)
        y = torch.where(y >= self.lm_vocab, torch.full_like(y, UNK_ID), y)
        return torch.cat(states), y

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, int]:
        """Mean negative log-likelihood (nats per predicted token) and the number of tokens."""
        states, y = self.directional_states(ids, lengths)
        if y.numel() == 0:
            return states.sum() * 0.0, 0
        return self.softmax(states, y).loss, int(y.numel())


@dataclass
class Pretrained:
    """What a classifier needs from an LM artifact: vocabulary, tokenizer, encoder weights."""

    vocab: Vocab
    tokenizer_config: TokenizerConfig
    encoder_sizes: dict[str, Any]
    encoder_state: dict[str, Tensor]
    config: dict[str, Any]
    path: Path

    def classifier_config(self, **overrides: Any) -> ClassifierConfig:
        """A classifier config whose encoder matches the pretrained one; head options free."""
        clash = set(overrides) & set(ENCODER_KEYS)
        if clash:
            raise ValueError(f"{sorted(clash)} are fixed by the pretrained encoder")
        return ClassifierConfig(**self.encoder_sizes, **overrides)


def save(
    path: str | Path,
    lm: LanguageModel,
    vocab: Vocab,
    tokenizer_config: TokenizerConfig,
    extra: dict[str, Any] | None = None,
) -> None:
    if lm.cfg.vocab_size != len(vocab):
        raise ArtifactError(f"LM has {lm.cfg.vocab_size} embeddings, vocab {len(vocab)}")
    config = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "encoder": {k: getattr(lm.cfg, k) for k in ENCODER_KEYS},
        "lm_vocab": lm.lm_vocab,
        "tokenizer": tokenizer_config.to_dict(),
        "vocab_size": len(vocab),
        "vocab_fingerprint": vocab.fingerprint(),
        **(extra or {}),
    }
    write_directory(Path(path), lm, vocab, config, WEIGHTS)


def is_pretrained_lm(path: str | Path) -> bool:
    try:
        cfg = json.loads((Path(path) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("kind") == KIND


def load(path: str | Path) -> Pretrained:
    """Read an LM artifact strictly; refuses a vocabulary that does not match its config."""
    root = Path(path)
    try:
        cfg = json.loads((root / CONFIG).read_text(encoding="utf-8"))
        vocab = Vocab.load(root / VOCAB)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{root}: not a readable pretrained-LM artifact: {e}") from e
    if cfg.get("kind") != KIND or cfg.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{root}: not a {KIND} artifact (format {FORMAT_VERSION})")
    if vocab.fingerprint() != cfg.get("vocab_fingerprint") or len(vocab) != cfg.get("vocab_size"):
        raise ArtifactError(f"{root}: {VOCAB} does not match config.json's vocabulary")
    try:
        state = load_file(str(root / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise ArtifactError(f"{root}: cannot read {WEIGHTS}: {e}") from e
    encoder_state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    sizes = dict(cfg["encoder"])
    # Check the shapes now: a mismatch should fail here, not deep inside a training run.
    probe = Encoder(ClassifierConfig(**sizes))
    try:
        probe.load_state_dict(encoder_state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{root}: encoder weights do not fit the config: {e}") from e
    return Pretrained(
        vocab=vocab,
        tokenizer_config=TokenizerConfig.from_dict(cfg.get("tokenizer", {})),
        encoder_sizes=sizes,
        encoder_state=encoder_state,
        config=cfg,
        path=root,
    )
