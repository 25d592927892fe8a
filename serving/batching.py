"""Adaptive batching of scoring calls: a small queue in front of the engine.

Concurrent ``/score``, ``/explain`` and ``/score_batch`` calls are queued as jobs; one task per
event loop drains the queue: it takes every waiting job (at most ``max_batch_jobs``) and decides
them in one call in a worker thread (``Engine.decide_many``: one feature query per ``as_of``,
one ``pred_contrib`` pass, one audit transaction), so a busy service does less work per decision
instead of queueing more. Jobs that arrive while a batch runs wait for the next one.

Latency budget: the batcher keeps a moving estimate of the time one job costs inside a batch;
a job whose predicted wait (the jobs ahead of it, its own batch included) exceeds
``max_latency_ms`` is refused at once (``on_overload``, a 503), which keeps the queue bounded
under overload.

A call that arrives while nothing else is in flight goes straight to the engine: there is
nothing to batch it with. A queued call found alone when its batch would leave is held at most
``max_wait_ms`` for company.

The routes are a FastAPI app mounted with ``@bentoml.asgi_app``, which BentoML's own adaptive
batching (``@bentoml.api(batchable=True)``) does not serve, hence this batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

Job = TypeVar("Job")
Outcome = TypeVar("Outcome")

_SMOOTHING = 0.2
"""Weight of the latest batch in the per-job cost estimate."""


class BatchingConfig(BaseModel):
    """Adaptive batching settings.

    Environment: ``RISKGRADE_BATCHING``, ``RISKGRADE_MAX_BATCH_JOBS``,
    ``RISKGRADE_MAX_LATENCY_MS``, ``RISKGRADE_MAX_WAIT_MS``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """False decides every call alone, as it arrives (for comparison and debugging)."""
    max_batch_jobs: int = Field(default=32, ge=1, le=1024)
    """Calls released together at most (a ``/score_batch`` call counts as one)."""
    max_latency_ms: int = Field(default=10_000, ge=10, le=600_000)
    """Latency budget: a call predicted to wait longer is refused with 503."""
    max_wait_ms: float = Field(default=2.0, ge=0, le=1_000)
    """Longest a call queued alone is held to let another call join its batch."""


@dataclass
class _Pending(Generic[Job, Outcome]):
    job: Job
    future: asyncio.Future[Outcome] = field(repr=False)


class AdaptiveBatcher(Generic[Job, Outcome]):
    """Queue jobs for ``decide`` (run in a worker thread), drained in batches by one task.

    ``decide`` gets a sequence of jobs and returns one outcome per job; an outcome that is an
    exception is raised to that job's caller alone.
    """

    def __init__(
        self,
        decide: Callable[[Sequence[Job]], Sequence[Outcome | Exception]],
        config: BatchingConfig,
        on_overload: Callable[[], NoReturn],
    ) -> None:
        """Wrap ``decide``; ``on_overload`` raises the error a refused job gets."""
        self._decide = decide
        self.config = config
        self._on_overload = on_overload
        self._in_flight = 0
        self._queue: deque[_Pending[Job, Outcome]] = deque()
        self._deciding = 0
        """Jobs in the engine now (a queued batch and a call decided alone may overlap)."""
        self.job_seconds = 0.0
        """Moving estimate of one job's share of a batch's time (0 until a batch ran)."""
        self.batch_sizes: Counter[int] = Counter()
        """How many batches of each size were decided (observability, tests)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    def predicted_wait_s(self) -> float:
        """Seconds a job queued now is expected to wait for its answer."""
        return (len(self._queue) + self._deciding + 1) * self.job_seconds

    async def submit(self, job: Job) -> Outcome:
        """Decide ``job``, batched with whatever else is queued.

        Raises:
            Exception: the job's own error outcome, or ``on_overload``'s when refused.
        """
        alone = not self.config.enabled or self.config.max_batch_jobs == 1 or not self._in_flight
        if not alone and self.predicted_wait_s() * 1000 > self.config.max_latency_ms:
            self._on_overload()
        self._in_flight += 1  # only touched on the event loop: no lock needed
        try:
            if alone:
                (outcome,) = await self._engine([job])
            else:
                future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
                self._queue.append(_Pending(job, future))
                self._ensure_worker()
                self._arrived.set()
                return await future
        finally:
            self._in_flight -= 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop = loop
            self._arrived = asyncio.Event()
            self._worker = loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Decide queued jobs in batches until the queue is empty."""
        limit = self.config.max_batch_jobs
        while self._queue:
            if len(self._queue) == 1 and limit > 1 and self.config.max_wait_ms > 0:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), self.config.max_wait_ms / 1000)
            batch = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
            batch = [p for p in batch if not p.future.done()]  # callers gone (cancelled)
            if not batch:
                continue
            try:
                outcomes = await self._engine([p.job for p in batch])
            except Exception as error:  # every caller of the batch gets it
                outcomes = [error] * len(batch)
            for pending, outcome in zip(batch, outcomes, strict=True):
                if pending.future.done():
                    continue
                if isinstance(outcome, Exception):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)

    async def _engine(self, jobs: Sequence[Job]) -> Sequence[Outcome | Exception]:
        """One engine call in a worker thread (counted here, on the event loop: no lock)."""
        self.batch_sizes[len(jobs)] += 1
        self._deciding += len(jobs)
        try:
            return await run_in_threadpool(self._decide_timed, jobs)
        finally:
            self._deciding -= len(jobs)

    def _decide_timed(self, jobs: Sequence[Job]) -> Sequence[Outcome | Exception]:
        started = time.perf_counter()
        try:
            return self._decide(jobs)
        finally:
            per_job = (time.perf_counter() - started) / len(jobs)
            previous = self.job_seconds or per_job
            self.job_seconds = (1 - _SMOOTHING) * previous + _SMOOTHING * per_job

    def shutdown(self) -> None:
        """Stop draining; queued jobs are refused (their callers get ``on_overload``'s error)."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                try:
                    self._on_overload()
                except Exception as error:  # handed to the waiting caller
                    pending.future.set_exception(error)
