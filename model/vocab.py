"""Token vocabulary: `<pad>` is 0, `<unk>` is 1, then tokens by descending frequency."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


class Vocab:
    def __init__(self, tokens: list[str]) -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {tokens[:2]!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat tokens")
        self.itos = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 2, max_size: int | None = 30000
    ) -> Vocab:
        """Keep tokens seen at least `min_freq` times, the most frequent `max_size` of them.

        Ties are broken by the token itself so the same data always gives the same vocabulary.
        """
        if min_freq < 1:
            raise ValueError("min_freq must be >= 1")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK, *kept])

    def encode(self, tokens: list[str], max_len: int) -> list[int]:
        """Token ids, truncated to `max_len` by keeping the head of the post."""
        return [self.stoi.get(t, UNK_ID) for t in tokens[:max_len]]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def fingerprint(self) -> str:
        """Stable hash of the token list; a model and a vocabulary must agree on it."""
        h = hashlib.sha256("\n".join(self.itos).encode("utf-8"))
        return h.hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.itos, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocab:
        tokens = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path}: a vocabulary file must be a JSON list of strings")
        return cls(tokens)
