"""A fixed pool of predictors behind a bounded queue.

Each worker thread builds and owns one backend (Paddle Inference predictors keep per-thread state, so a predictor
is only ever used by the thread that created it). A request is admitted unless ``workers + queue_size`` are
already in the pool (running or waiting) or its expected wait (the jobs ahead of it x the median of the recent
run times / workers) exceeds ``queue_timeout``; otherwise ``submit`` (and ``check``, which the server calls
before it reads a body) raises ``ServerBusy`` at once (HTTP 503 with a ``Retry-After`` hint) instead of letting
requests pile up or wait in vain. A request that still waited longer than ``queue_timeout`` seconds is dropped with
``ServerBusy`` before it reaches a predictor, and a request whose client went away (its future cancelled) is
skipped.

The pool knows nothing about HTTP or images: a job is ``fn(backend) -> result``.
"""
from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .protocol import ServerBusy

__all__ = ["PredictorPool", "ServerBusy"]

log = logging.getLogger("ppir.serving")


@dataclass
class _Job:
    fn: Callable[[Any], Any]
    future: concurrent.futures.Future
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)


_STOP = object()


class PredictorPool:
    """`workers` threads, each with the backend `factory(index)` returns; at most `queue_size` jobs waiting."""

    def __init__(self, factory: Callable[[int], Any], workers: int = 1, queue_size: int = 4,
                 queue_timeout: float = 30.0, on_done: Callable[[float, float], None] | None = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if queue_size < 0:
            raise ValueError(f"queue size must be at least 0, got {queue_size}")
        self.factory = factory
        self.workers = int(workers)
        self.queue_size = int(queue_size)
        self.queue_timeout = float(queue_timeout)
        self.on_done = on_done  # called with (seconds waited, seconds run) after each job
        self._jobs: queue.Queue = queue.Queue()  # bounded by the admission count below
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._create_lock = threading.Lock()  # predictors are built one at a time
        self._ready = threading.Semaphore(0)
        self._errors: list[BaseException] = []
        self.backends: list = [None] * self.workers
        self._recent_run_s: list[float] = []

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> "PredictorPool":
        """Start the workers and wait until every predictor is built; re-raise the first failure."""
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, args=(i,), name=f"ppir-predictor-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for _ in range(self.workers):
            self._ready.acquire()
        if self._errors:
            self.close()
            raise self._errors[0]
        return self

    def close(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            self._jobs.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        for backend in self.backends:  # predictors in child processes are stopped here
            if backend is not None:  # a predictor that failed to build has nothing to close
                backend.close()

    # ------------------------------------------------------------------------------------------- requests
    @property
    def capacity(self) -> int:
        return self.workers + self.queue_size

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return max(0, self._admitted - self._running)

    def _run_s(self) -> float | None:
        """Median of the recent run times (None before the first job)."""
        recent = self._recent_run_s[-16:]
        return sorted(recent)[len(recent) // 2] if recent else None

    def retry_hint(self) -> float:
        """Seconds a rejected client should wait: about the time the queue in front of it takes to drain."""
        return (self._run_s() or 1.0) * max(1, self.capacity) / self.workers

    def expected_wait(self) -> float:
        """Seconds a request admitted now would wait for a predictor (0 while one is free or before any ran)."""
        ahead = self._admitted - self.workers + 1
        return max(0, ahead) * (self._run_s() or 0.0) / self.workers

    def _refusal(self) -> ServerBusy | None:
        """Why a request cannot be admitted now (call with the lock held), or None."""
        if self._admitted >= self.capacity:
            return ServerBusy(f"the server is busy ({self._running} request(s) running, "
                              f"{self._admitted - self._running} waiting, queue size {self.queue_size})",
                              self.retry_hint(), "queue_full")
        wait = self.expected_wait()
        if wait > self.queue_timeout:
            return ServerBusy(f"the server is busy: a request would wait about {wait:.1f} s for a predictor "
                              f"({self._admitted - self._running} waiting), longer than its --queue-timeout of "
                              f"{self.queue_timeout:g} s", wait - self.queue_timeout, "expected_wait")
        return None

    def check(self) -> None:
        """ServerBusy if a request arriving now would be refused (nothing is reserved: the request is admitted
        only by `submit`, so a client still sending its body holds no place in the queue)."""
        with self._lock:
            refusal = self._refusal()
        if refusal is not None:
            raise refusal

    def submit(self, fn: Callable[[Any], Any]) -> concurrent.futures.Future:
        """Queue `fn(backend)`; ServerBusy at once when the pool is full or the wait would exceed the timeout."""
        with self._lock:
            refusal = self._refusal()
            if refusal is not None:
                raise refusal
            self._admitted += 1
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put(_Job(fn, future, time.monotonic() + self.queue_timeout))
        return future

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _worker(self, index: int) -> None:
        try:
            with self._create_lock:
                self.backends[index] = self.factory(index)
        except BaseException as e:  # noqa: BLE001 - reported by start()
            self._errors.append(e)
            self._ready.release()
            return
        self._ready.release()
        backend = self.backends[index]
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            if not job.future.set_running_or_notify_cancel():  # the client went away while it waited
                self._release()
                job = None
                continue
            started = time.monotonic()
            waited = started - job.enqueued
            if started > job.deadline:
                self._release()
                job.future.set_exception(ServerBusy(f"the request waited {waited:.1f} s in the queue, longer than "
                                                    f"the server's --queue-timeout", self.retry_hint(),
                                                    "queue_timeout"))
                job = None
                continue
            with self._lock:
                self._running += 1
            result = error = None
            try:
                result = job.fn(backend)
            except BaseException as e:  # noqa: BLE001 - any failure belongs to this request only
                error = e
            run_s = time.monotonic() - started
            with self._lock:
                self._running -= 1
                self._recent_run_s = (self._recent_run_s + [run_s])[-64:]
            self._release()  # free the slot before the client hears back
            if self.on_done:
                try:
                    self.on_done(waited, run_s)
                except Exception:  # noqa: BLE001 - statistics never break a request
                    log.exception("statistics callback failed")
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
            job = result = error = None  # the request's data is not kept alive while this thread waits for the next
