"""Segmentation of a batch: in the poll loop's thread, or in worker processes beside the model.

Both segmenters take a batch's texts and return a `Pending` batch whose result is, per text, an
`Encoded` (ids and the tokens behind them, so explanations reuse them) or the error's text, so
that a text that breaks the tokenizer costs only itself.

- `InProcessSegmenter` segments when the result is asked for, in the caller's thread.
- `PoolSegmenter` starts segmenting at once in worker processes (consumer.segment_worker),
  so batch N+1 is segmented while the poll loop runs the model on batch N. Workers import the
  segmenter and the vocabulary, never torch, and start with `spawn`: a fork of a process that
  has started PyTorch's and librdkafka's threads is not safe. A thread would not do: pure-Python
  jieba holds the GIL for a whole post, and even rjieba's calls hold it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Protocol

from consumer.segment_worker import encode_texts, init_worker
from model.encoding import Encoded, encode_or_error

if TYPE_CHECKING:
    from model.artifact import LoadedModel

Rows = list[Encoded | str]


class Pending(Protocol):
    def result(self, beat: Callable[[], None] = ...) -> tuple[Rows, float]:
        """Per text an Encoded or an error string, and the seconds segmentation took;
        `beat` is called about once a second while it waits."""
        ...


class Segmenter(Protocol):
    def submit(self, texts: list[str]) -> Pending: ...
    def close(self) -> None: ...


class _Deferred:
    def __init__(self, loaded: LoadedModel, texts: list[str]) -> None:
        self._loaded, self._texts = loaded, texts

    def result(self, beat: Callable[[], None] = lambda: None) -> tuple[Rows, float]:
        lm = self._loaded
        t0 = time.perf_counter()
        rows: Rows = [encode_or_error(lm.tokenizer, lm.vocab, lm.max_len, t) for t in self._texts]
        return rows, time.perf_counter() - t0


class InProcessSegmenter:
    """Segments in the caller's thread, when the result is asked for."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._loaded = loaded

    def submit(self, texts: list[str]) -> Pending:
        return _Deferred(self._loaded, texts)

    def close(self) -> None:
        pass


class _Parts:
    """One batch's segmentation, spread over the pool's workers."""

    def __init__(self, parts: list[Future[tuple[Rows, float]]]) -> None:
        self._parts = parts

    def result(self, beat: Callable[[], None] = lambda: None) -> tuple[Rows, float]:
        while futures_wait(self._parts, 1.0)[1]:
            beat()  # a long batch is not a hung loop
        out: Rows = []
        seconds = 0.0
        for part in self._parts:
            rows, spent = part.result()
            out.extend(rows)
            seconds += spent
        return out, seconds


class PoolSegmenter:
    """Segments in `processes` worker processes, each batch split evenly among them."""

    def __init__(self, loaded: LoadedModel, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self._pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(
                loaded.tokenizer.config.to_dict(),
                loaded.vocab.itos,
                loaded.vocab.char_fallback,
                loaded.max_len,
                os.getpid(),
            ),
        )

    def warm_up(self) -> None:
        """Start every worker and load the segmenter's dictionary now, not on the first batch."""
        futures = [self._pool.submit(encode_texts, ["预热"]) for _ in range(self.processes)]
        for f in futures:
            f.result()

    def submit(self, texts: list[str]) -> Pending:
        size = max(1, -(-len(texts) // self.processes))
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        return _Parts([self._pool.submit(encode_texts, c) for c in chunks])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_segmenter(loaded: LoadedModel, processes: int) -> Segmenter:
    """`processes` workers, or the poll loop's own thread for 0."""
    if processes == 0:
        return InProcessSegmenter(loaded)
    pool = PoolSegmenter(loaded, processes)
    pool.warm_up()
    return pool
