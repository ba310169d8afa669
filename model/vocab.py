"""Token vocabulary: `<pad>` is 0, `<unk>` is 1, then tokens by descending frequency.

With `char_fallback`, a token outside the vocabulary is spelled out in its characters (each one
looked up in turn) instead of becoming one `<unk>`: an unseen word such as 绝绝子 then still
reads as 绝, 绝, 子. The artifact's config says whether its vocabulary does this.
"""

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
    def __init__(self, tokens: list[str], char_fallback: bool = False) -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {tokens[:2]!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat tokens")
        self.itos = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}
        self.char_fallback = char_fallback

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    @classmethod
    def build(
        cls,
        token_lists: Iterable[list[str]],
        min_freq: int = 2,
        max_size: int | None = 30000,
        always: Iterable[str] = (),
        char_fallback: bool = False,
    ) -> Vocab:
        """Keep tokens seen at least `min_freq` times, the most frequent `max_size` of them,
        then the `always` tokens not kept yet (lexicon entries, whatever the data held).

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
        seen = set(kept)
        extra = sorted({t for t in always if t not in seen and t not in (PAD, UNK)})
        return cls([PAD, UNK, *kept, *extra], char_fallback)

    def encode(self, tokens: list[str], max_len: int) -> list[int]:
        """Token ids, truncated to `max_len` by keeping the head of the post."""
        return self.lookup(tokens, max_len)[0]

    def lookup(self, tokens: list[str], max_len: int) -> tuple[list[int], list[str], int]:
        """(ids, the tokens behind them, how many tokens were out of the vocabulary), keeping
        the head of the post up to `max_len` ids."""
        stoi = self.stoi
        if not self.char_fallback:
            kept = tokens[:max_len]
            ids = [stoi.get(t, UNK_ID) for t in kept]
            return ids, kept, ids.count(UNK_ID)
        ids, kept, oov = [], [], 0
        for t in tokens:
            i = stoi.get(t)
            if i is not None:
                ids.append(i)
                kept.append(t)
            else:
                oov += 1
                ids.extend(stoi.get(c, UNK_ID) for c in t)
                kept.extend(t)
            if len(ids) >= max_len:
                break
        return ids[:max_len], kept[:max_len], oov

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def fingerprint(self) -> str:
        """Stable hash of the token list; a model and a vocabulary must agree on it."""
        h = hashlib.sha256("\n".join(self.itos).encode("utf-8"))
        return h.hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.itos, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, char_fallback: bool = False) -> Vocab:
        tokens = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path}: a vocabulary file must be a JSON list of strings")
        return cls(tokens, char_fallback)
