"""The vocabulary and the classifier a TrainConfig asks for, with their token tables filled.

`char_features`, `knowledge` and `oov_chars` (see TrainConfig) shape three things that must
agree: the vocabulary (lexicon emoji always in it; unseen words spelled out in characters), the
character table (which characters make up each vocabulary token) and the cue table (each
token's lexicon cue). They are built here once, from the vocabulary, and saved with the weights
as the encoder's buffers.
"""

from __future__ import annotations

from collections import Counter

import torch

from model import lexicon_cues
from model.network import SentimentClassifier
from model.text import PLACEHOLDERS
from model.vocab import PAD, UNK, Vocab
from training.train import TrainConfig


def build_vocab(cfg: TrainConfig, token_lists: list[list[str]]) -> Vocab:
    always: set[str] = set()
    if cfg.knowledge:
        seen = {t for tokens in token_lists for t in tokens}
        # Lexicon words the data holds at least once, and every polar emoji and emoticon.
        always = (lexicon_cues.lexicon_words() & seen) | lexicon_cues.emoji_words()
    return Vocab.build(token_lists, cfg.min_freq, cfg.max_vocab, always, cfg.oov_chars)


def char_ids(vocab: Vocab, per_token: int) -> dict[str, int]:
    """The character table's ids: the first `per_token` characters of each vocabulary token,
    most frequent first, from 1 (0 pads); specials have none."""
    counts: Counter[str] = Counter()
    for t in vocab.itos:
        if t not in (PAD, UNK, *PLACEHOLDERS):
            counts.update(t[:per_token])
    return {c: i for i, c in enumerate(sorted(counts, key=lambda c: (-counts[c], c)), start=1)}


def char_table(vocab: Vocab, per_token: int) -> tuple[int, torch.Tensor]:
    """(characters in the table, (V, per_token) character ids); id 0 pads, specials have none."""
    chars = char_ids(vocab, per_token)
    table = torch.zeros((len(vocab), per_token), dtype=torch.long)
    for i, t in enumerate(vocab.itos):
        if t not in (PAD, UNK, *PLACEHOLDERS):
            ids = [chars[c] for c in t[:per_token]]
            table[i, : len(ids)] = torch.tensor(ids)
    return len(chars) + 1, table


def init_char_vectors(model: SentimentClassifier, vocab: Vocab, per_token: int, source: str) -> int:
    """Start the character table from a character model's embedding (a Senta artifact): each
    character both know takes that model's vector. Returns how many did."""
    from model import artifact

    table = model.encoder.char_embedding
    if table is None:
        raise ValueError("char_init needs char_features true")
    donor = artifact.load(source)
    weights = donor.model.encoder.embedding.weight
    if weights.size(1) != table.embedding_dim:
        dims = f"{weights.size(1)}-dim vectors, the model {table.embedding_dim}"
        raise ValueError(f"char_init: {source} has {dims}")
    pairs = [(i, donor.vocab.stoi[c]) for c, i in char_ids(vocab, per_token).items()
             if c in donor.vocab.stoi]  # fmt: skip
    with torch.no_grad():
        for own, theirs in pairs:
            table.weight[own] = weights[theirs]
    return len(pairs)


def cue_table(vocab: Vocab) -> torch.Tensor:
    return torch.tensor([lexicon_cues.cue(t) for t in vocab.itos], dtype=torch.long)


def new_classifier(cfg: TrainConfig, vocab: Vocab) -> SentimentClassifier:
    n_chars, chars = char_table(vocab, cfg.chars_per_token) if cfg.char_features else (0, None)
    n_cues = len(lexicon_cues.CUES) if cfg.knowledge else 0
    model = SentimentClassifier(cfg.classifier_config(len(vocab), n_chars, n_cues))
    with torch.no_grad():
        if chars is not None:
            model.encoder.token_chars.copy_(chars)
        if n_cues:
            model.encoder.token_cues.copy_(cue_table(vocab))
    return model
