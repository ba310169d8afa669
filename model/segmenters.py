"""Segmenters behind one `cut(text) -> tokens` call: jieba, rjieba in native code, and chars.

jieba (pure Python) is the reference. rjieba binds jieba-rs, jieba's Rust port with the same
dictionary and the same DAG + HMM algorithm, about 20x faster on one core; it agrees with jieba
on about 98.5% of posts (benchmarks/segmenter_backends.py measures it). An artifact names its
backend, so serving segments exactly as its training did. `chars` is no word segmenter: one token
per non-space character, as character models read (Baidu's Senta, training/senta.py).

A user dictionary (domain words and slang) is loaded into a segmenter of its own, never into a
process-wide default: two models in one process (a shadow candidate beside the live one) must
not change each other's tokens.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable

WORD_SEGMENTERS = ("jieba", "rjieba")
SEGMENTERS = (*WORD_SEGMENTERS, "chars")

Cut = Callable[[str], list[str]]

_lock = threading.Lock()
_cache: dict[tuple[str, bool, tuple[str, ...]], Cut] = {}


def segmenter(backend: str, hmm: bool = True, user_words: tuple[str, ...] = ()) -> Cut:
    """A `cut` function for the backend with `user_words` added; built once per combination."""
    if backend not in SEGMENTERS:
        raise ValueError(f"segmenter must be one of {SEGMENTERS}, got {backend!r}")
    key = (backend, hmm, tuple(user_words))
    with _lock:
        cut = _cache.get(key)
        if cut is None:
            if backend == "chars":
                if user_words:
                    raise ValueError(
                        "user_words need a word segmenter (jieba or rjieba), not chars"
                    )
                cut = _chars
            elif backend == "jieba":
                cut = _jieba(hmm, user_words)
            else:
                cut = _rjieba(hmm, user_words)
            _cache[key] = cut
        return cut


def _jieba(hmm: bool, user_words: tuple[str, ...]) -> Cut:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    # jieba writes its dictionary cache next to itself by default, which fails on a read-only
    # root filesystem (the Kubernetes deployment), so the cache goes to a temp dir instead.
    cache_dir = os.environ.get("JIEBA_CACHE_DIR", tempfile.gettempdir())
    dt = jieba.Tokenizer() if user_words else jieba.dt
    dt.tmp_dir = cache_dir
    dt.initialize()
    for word in user_words:
        dt.add_word(word)
    return lambda text: dt.lcut(text, HMM=hmm)


def _rjieba(hmm: bool, user_words: tuple[str, ...]) -> Cut:
    import rjieba

    seg = rjieba.Jieba() if user_words else rjieba._DEFAULT_JIEBA
    for word in user_words:
        # No frequency given: like jieba's add_word, one high enough to keep the word whole.
        seg.add_word(word, None, None)
    cut = seg.cut
    return lambda text: cut(text, hmm)


def _chars(text: str) -> list[str]:
    return [c for c in text if not c.isspace()]
