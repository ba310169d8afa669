"""What runs inside a tokenizer-pool worker process: jieba and the vocabulary, never torch.

Kept apart from consumer.tokenizer_pool so that a spawned worker, which imports this module to
find its functions, does not import PyTorch (seconds of start-up and hundreds of MB each).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from model.text import Tokenizer, TokenizerConfig
from model.vocab import UNK_ID, Vocab

PR_SET_PDEATHSIG = 1  # linux/prctl.h

# What a worker returns per text: (ids, n_tokens, n_oov), or the error's text.
Row = tuple[list[int], int, int] | str

_tokenizer: Tokenizer | None = None
_vocab: Vocab | None = None
_max_len = 0


def init_worker(
    tokenizer_config: dict[str, object], tokens: list[str], max_len: int, parent: int
) -> None:
    global _tokenizer, _vocab, _max_len
    _die_with(parent)
    # Ctrl+C reaches the whole process group. A worker that died of it would break the pool
    # under the batch being drained; the service stops its workers itself, after the drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _tokenizer = Tokenizer(TokenizerConfig(**tokenizer_config))  # type: ignore[arg-type]
    _vocab = Vocab(tokens)
    _max_len = max_len


def _die_with(parent: int) -> None:
    """Exit when the service process dies, even by SIGKILL; a worker blocked on its task queue
    would otherwise outlive it (it holds both ends of that pipe, so it never sees EOF)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def encode_texts(texts: list[str]) -> tuple[list[Row], float]:
    """Each text as Predictor.encode would make it, and the seconds it took."""
    if _tokenizer is None or _vocab is None:
        raise RuntimeError("segment worker used before init_worker")
    t0 = time.perf_counter()
    rows: list[Row] = []
    for text in texts:
        try:
            tokens = _tokenizer.tokenize(text)
            ids = _vocab.encode(tokens, _max_len)
            rows.append((ids, len(tokens), ids.count(UNK_ID)))
        except Exception as e:  # a tokenizer bug must not stop the stream; the post is kept
            rows.append(f"{type(e).__name__}: {e}")
    return rows, time.perf_counter() - t0
