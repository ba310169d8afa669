"""What runs inside a segmentation worker process: the segmenter and the vocabulary, never torch.

Kept apart from consumer.segmentation so that a spawned worker, which imports this module to
find its functions, does not import PyTorch (seconds of start-up and hundreds of MB each).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from model.encoding import Encoded, encode_or_error
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab

PR_SET_PDEATHSIG = 1  # linux/prctl.h

_tokenizer: Tokenizer | None = None
_vocab: Vocab | None = None
_max_len = 0


def init_worker(
    tokenizer_config: dict[str, object],
    tokens: list[str],
    char_fallback: bool,
    max_len: int,
    parent: int,
) -> None:
    global _tokenizer, _vocab, _max_len
    _die_with(parent)
    # Ctrl+C reaches the whole process group. A worker that died of it would break the pool
    # under the batch being drained; the service stops its workers itself, after the drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _tokenizer = Tokenizer(TokenizerConfig.from_dict(tokenizer_config))
    _vocab = Vocab(tokens, char_fallback)
    _max_len = max_len


def _die_with(parent: int) -> None:
    """Exit when the service process dies, even by SIGKILL; a worker blocked on its task queue
    would otherwise outlive it (it holds both ends of that pipe, so it never sees EOF)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def encode_texts(texts: list[str]) -> tuple[list[Encoded | str], float]:
    """Each text as Predictor.encode makes it (or its error), and the seconds it took."""
    if _tokenizer is None or _vocab is None:
        raise RuntimeError("segment worker used before init_worker")
    t0 = time.perf_counter()
    rows = [encode_or_error(_tokenizer, _vocab, _max_len, t) for t in texts]
    return rows, time.perf_counter() - t0
