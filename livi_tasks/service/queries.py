"""Audio queries: a bounded pool sized by the thread budget, and the work of one query.

The pool runs ``workers`` queries at once, each with ``query_threads`` torch threads, so that
workers x threads never exceeds the process's thread budget (``serve.threads``, else
``$LIVI_TASK_THREADS``, else the usable cores): on a 2-core machine two torch pools of two
threads each made every query several times slower. A query beyond ``workers + queue`` is not
queued at all: the caller answers 503 with Retry-After (the time the queue ahead takes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from livi_tasks.core.audio import SAMPLE_RATE, SILENCE_PEAK, AudioError, audio_duration, load_audio
from livi_tasks.core.config import LiviConfig, ServeConfig
from livi_tasks.core.store import ArtifactStore
from livi_tasks.core.threads import budget_from_environment, usable_cores

log = logging.getLogger(__name__)


def thread_budget(serve: ServeConfig) -> int:
    """Threads this process may keep busy: serve.threads, else $LIVI_TASK_THREADS, else the usable cores."""
    return serve.threads or budget_from_environment() or usable_cores()


def pool_size(serve: ServeConfig) -> int:
    return serve.query_workers or max(1, thread_budget(serve) // serve.query_threads)


class QueueFull(RuntimeError):
    """Every worker is busy and the queue is full; ``retry_after_s`` says when to come back."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"every query worker is busy and the queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class QueryTooLong(ValueError):
    """The query audio is longer than serve.max_query_s."""


class AudioPool:
    """At most ``workers`` audio queries at once and ``queue`` waiting; nothing more is accepted."""

    def __init__(self, workers: int, queue: int, threads_per_query: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self.threads_per_query = threads_per_query
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="livi-query")
        self._lock = threading.Lock()
        self._taken = 0
        self._mean_s = 5.0  # a first guess of one query's seconds, replaced by what queries take
        self.rejected = 0
        self.completed = 0

    def set_threads(self) -> None:
        """Torch's intra-op threads: one pool per calling thread, so workers x this is the total."""
        import torch

        torch.set_num_threads(self.threads_per_query)
        with contextlib.suppress(RuntimeError):  # torch allows it once per process
            torch.set_num_interop_threads(1)

    @property
    def in_flight(self) -> int:
        return self._taken

    def retry_after(self) -> int:
        """Seconds until the queue ahead of a new query has drained, about."""
        return max(1, math.ceil(self._mean_s * self.capacity / self.workers))

    def reserve(self) -> None:
        """Take a place (running or waiting) or raise QueueFull; ``release`` gives it back."""
        with self._lock:
            if self._taken >= self.capacity:
                self.rejected += 1
                raise QueueFull(self.retry_after())
            self._taken += 1

    def release(self) -> None:
        with self._lock:
            self._taken -= 1

    async def run(self, work: Callable[[], dict]) -> dict:
        """Run ``work`` on a worker; its result gains ``queue_s``, the wait for a worker."""
        submitted = time.perf_counter()

        def timed() -> dict:
            started = time.perf_counter()
            result = work()
            took = time.perf_counter() - started
            with self._lock:
                self._mean_s = 0.8 * self._mean_s + 0.2 * took
                self.completed += 1
            return {**result, "queue_s": started - submitted}

        return await asyncio.wrap_future(self._executor.submit(timed))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class DecodedQuery:
    audio: np.ndarray
    duration_s: float


def decode_query(cfg: LiviConfig, path: str) -> DecodedQuery:
    """Decode an uploaded file for a query: too long is QueryTooLong (read from the header first,
    then bounded while decoding), unusable audio an AudioError with a one-line reason."""
    limit = cfg.serve.max_query_s
    announced = audio_duration(path)
    if announced > limit:
        raise QueryTooLong(f"audio of {announced:.0f} s is longer than the {limit:g} s a query may have")
    audio = load_audio(path, max_duration_s=limit + 1)
    duration = len(audio) / SAMPLE_RATE
    if duration > limit:
        raise QueryTooLong(f"audio is longer than the {limit:g} s a query may have")
    if duration < cfg.ingest.min_duration_s:
        raise AudioError(f"too short ({duration:.2f} s < {cfg.ingest.min_duration_s:g} s)")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise AudioError("silent (peak below -80 dBFS)")
    return DecodedQuery(audio, duration)


def answer_query(cfg: LiviConfig, store: ArtifactStore, state, path: str, k: int) -> dict:
    """Decode, embed (one encoder pass per 30 s) and search one uploaded file; with timings."""
    from livi_tasks.stages.audio_embed import embed_samples

    started = time.perf_counter()
    decoded = decode_query(cfg, path)
    decoded_at = time.perf_counter()
    embedded = embed_samples(cfg, decoded.audio, store, model=state.model, name="upload")
    embedded_at = time.perf_counter()
    result = state.published.search(embedded.embedding[None, :], k, query_chunks=[embedded.chunks])
    searched_at = time.perf_counter()
    return {
        "duration_s": decoded.duration_s,
        "ids": result.ids[0],
        "scores": result.scores[0],
        "decode_s": decoded_at - started,
        "embed_s": embedded_at - decoded_at,
        "search_ms": (searched_at - embedded_at) * 1000,
    }
