"""Benchmark baseline: today's service with the batcher it replaced (BentoML's CorkDispatcher).

``serving.batching.AdaptiveBatcher`` replaced a wrapper around BentoML's private
``bentoml._internal.marshal.dispatcher.CorkDispatcher`` (revision 28ebd23). Comparing against
that revision alone also compares everything added to the request path since; this module
serves *this* checkout's service with the old wrapper (its code as it was, same interface) in
front of the engine, so the comparison isolates the batcher. Used by
``benchmarks/bench_serving.py`` only (``bentoml serve cork_service:RiskgradeService`` with this
folder on ``PYTHONPATH``); nothing in the product imports it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Generic, NoReturn, TypeVar

from bentoml._internal.marshal.dispatcher import CorkDispatcher
from starlette.concurrency import run_in_threadpool

import serving.batching
from serving.batching import BatchingConfig

Job = TypeVar("Job")
Outcome = TypeVar("Outcome")


class CorkBatcher(Generic[Job, Outcome]):
    """The batcher of revision 28ebd23: jobs released by BentoML's dispatcher."""

    def __init__(
        self,
        decide: Callable[[Sequence[Job]], Sequence[Outcome | Exception]],
        config: BatchingConfig,
        on_overload: Callable[[], NoReturn],
    ) -> None:
        """Wrap ``decide``; ``on_overload`` raises the error a cancelled job gets."""
        self._decide = decide
        self.config = config
        self._on_overload = on_overload
        self._in_flight = 0
        self.batch_sizes: Counter[int] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: CorkDispatcher[Job, Outcome] | None = None
        self._submit: Callable[[Job], Any] | None = None

    def _bind(self) -> Callable[[Job], Any]:
        loop = asyncio.get_running_loop()
        if self._submit is None or self._loop is not loop:
            if self._dispatcher is not None:
                self._dispatcher.shutdown()
            self._dispatcher = CorkDispatcher(
                max_latency_in_ms=self.config.max_latency_ms,
                max_batch_size=self.config.max_batch_jobs,
                fallback=self._on_overload,
                get_batch_size=lambda _job: 1,
            )
            self._loop = loop
            self._submit = self._dispatcher(self._decide_counted)  # type: ignore[arg-type]
        return self._submit

    async def submit(self, job: Job) -> Outcome:
        """Decide ``job``, batched with whatever else is queued."""
        alone = not self.config.enabled or self.config.max_batch_jobs == 1 or not self._in_flight
        self._in_flight += 1
        try:
            if alone:
                (outcome,) = await run_in_threadpool(self._decide_counted, [job])
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
            submit = self._bind()
            self._cap_wait()
            result: Outcome = await submit(job)
            return result
        finally:
            self._in_flight -= 1

    def _cap_wait(self) -> None:
        if self._dispatcher is not None:
            optimizer = self._dispatcher.optimizer
            optimizer.wait = min(optimizer.wait, self.config.max_wait_ms / 1000)  # type: ignore[assignment]

    def _decide_counted(self, jobs: Sequence[Job]) -> Sequence[Outcome | Exception]:
        self.batch_sizes[len(jobs)] += 1
        try:
            return self._decide(jobs)
        finally:
            self._cap_wait()

    def shutdown(self) -> None:
        """Stop the dispatcher; queued jobs are cancelled (their callers get 503)."""
        if self._dispatcher is not None:
            self._dispatcher.shutdown()
            self._dispatcher = None
            self._submit = None


serving.batching.AdaptiveBatcher = CorkBatcher  # type: ignore[misc,assignment]  # before the service import

from serving.service import RiskgradeService  # noqa: E402

__all__ = ["RiskgradeService"]
