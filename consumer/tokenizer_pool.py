"""Segmentation in worker processes, so jieba runs beside the model instead of taking turns.

jieba is pure Python and holds the GIL for the whole of a post; a thread beside it cannot even
dispatch PyTorch ops without waiting for the GIL, so the two only overlap in separate processes.
The workers (consumer.segment_worker) import jieba and the vocabulary, never torch, and start
with `spawn`: a fork of a process that has started PyTorch's and librdkafka's threads is not
safe.

Each worker turns texts into exactly what `Predictor.encode` would: the same Tokenizer config
and vocabulary, read from the loaded artifact. A text that breaks the tokenizer comes back as
its error, so it costs only itself.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict

from consumer.segment_worker import encode_texts, init_worker
from model.artifact import LoadedModel
from model.encoding import Encoded


class EncodedBatch:
    """The pending result of one batch's segmentation, spread over the pool's workers."""

    def __init__(self, parts: list[Future[tuple[list[Encoded | str], float]]]) -> None:
        self._parts = parts

    def result(self, timeout: float | None = None) -> tuple[list[Encoded | str], float]:
        """Per text an Encoded or an error string, and the workers' summed seconds."""
        out: list[Encoded | str] = []
        seconds = 0.0
        for part in self._parts:
            rows, spent = part.result(timeout)
            out.extend(rows)
            seconds += spent
        return out, seconds

    def wait(self, timeout: float) -> bool:
        """True once every part has finished (or failed), False if `timeout` passed first."""
        _, not_done = futures_wait(self._parts, timeout)
        return not not_done


class TokenizerPool:
    def __init__(self, loaded: LoadedModel, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self._pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(
                asdict(loaded.tokenizer.config),
                loaded.vocab.itos,
                loaded.max_len,
                os.getpid(),
            ),
        )

    def warm_up(self) -> None:
        """Start every worker and load jieba's dictionary now, not on the first batch."""
        futures = [self._pool.submit(encode_texts, ["预热"]) for _ in range(self.processes)]
        for f in futures:
            f.result()

    def submit(self, texts: list[str]) -> EncodedBatch:
        size = max(1, -(-len(texts) // self.processes))
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        return EncodedBatch([self._pool.submit(encode_texts, c) for c in chunks])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
