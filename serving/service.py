"""The BentoML scoring service: score, score_batch, explain, model info, audit, reload, probes.

Run: ``RISKGRADE_BUNDLE=models/champion bentoml serve serving.service:RiskgradeService``.

The HTTP endpoints are one FastAPI app (``serving.api.app``) mounted on the ``@bentoml.service``
class with ``@bentoml.asgi_app`` rather than ``@bentoml.api`` methods: BentoML 1.4 api routes are
POST-only, reply to validation errors and raised exceptions with their own bodies (and mask
401/403 as "Authorization error"), while this API needs GET routes, one error schema, 401 vs
403, 413/415 and a fast 503. BentoML still runs the service: lifecycle, workers, ``/livez``,
``/readyz`` (``__is_ready__``: bundle verified, tokens loaded, audit store writable),
``/metrics``, request timeout, containerisation.

Every decision is committed to the audit store before its response is sent; if the commit
fails the caller gets 503 and no decision.

Configuration (environment, read when the service starts by ``serving.settings``):
``RISKGRADE_BUNDLE`` (bundle folder), ``RISKGRADE_BUNDLE_HASH`` (expected bundle hash, optional),
``RISKGRADE_AUDIT_DB``, ``RISKGRADE_AUDIT_KEY`` (checkpoint HMAC key), ``RISKGRADE_TOKENS``,
``RISKGRADE_MAX_CONCURRENCY``, ``RISKGRADE_MAX_BODY_BYTES``, ``RISKGRADE_WORKERS`` (worker
processes; several share one SQLite audit log safely), ``RISKGRADE_PREDICT_THREADS``,
``RISKGRADE_BATCHING``,
``RISKGRADE_MAX_BATCH_JOBS``, ``RISKGRADE_MAX_LATENCY_MS``, ``RISKGRADE_MAX_WAIT_MS``
(adaptive batching, ``serving.batching``), ``RISKGRADE_METRICS_PUBLIC`` (``/metrics`` without a
token), ``RISKGRADE_SUPERVISOR_PID`` (set by ``riskgrade serve``; ``serving.watchdog``),
``RISKGRADE_PARAMS`` (params file of the human-judgement settings; default the project's).

Human judgement: before they are recorded, decisions get the rating chain at their ``as_of``
(``serving.judgement``: data sufficiency, the assessment and approved override valid then).

Tokens: `TokenGate` lets only `serving.auth.answers_without_token` paths through without a
valid token; the token file is re-read when it changes (``serving.auth.TokenStore``).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

import bentoml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from audit import (
    AuditConfig,
    AuditError,
    AuditStore,
    AuditUnavailableError,
    IdempotentResponse,
    open_audit_store,
)
from features.covenants import CovenantConfig
from features.source import open_raw_source
from management.judgement import RatingRules
from rating.bundle import BundleError
from rating.config import default_rating_config
from rating.defaults import DefaultsError, params_section
from rating.judgement import JudgementConfig
from rating.lifecycle import LifecycleConfig
from rating.model import RatingModel
from serving.api.app import build_app
from serving.api.errors import ApiError
from serving.api.middleware import ControlCharPathGuard, TokenGate
from serving.auth import (
    TokenStore,
)
from serving.batching import AdaptiveBatcher, BatchingConfig
from serving.engine import (
    Decision,
    Engine,
    ModelIncompatibleError,
    ScoringError,
    ScoringJob,
)
from serving.judgement import judge_decisions
from serving.schemas import (
    FieldError,
    RequestLimits,
)
from serving.settings import RiskgradeSettings, SettingsError, variable
from serving.watchdog import SUPERVISOR_ENV, Watchdog, start_watchdog

logger = logging.getLogger("riskgrade.serving")


class ServiceConfig(BaseModel):
    """Serving settings; ``from_env`` overlays the environment on the defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle: Path = Path("models/champion")
    bundle_hash: str | None = None
    """Expected bundle hash (pinned by the registry); None trusts the manifest."""
    tokens: Path = Path("data/tokens.json")
    audit: AuditConfig = Field(default_factory=AuditConfig)
    limits: RequestLimits = Field(default_factory=RequestLimits)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    max_concurrency: int = Field(default=16, ge=1, le=10_000)
    """Scoring requests in flight per worker; more get 503 at once."""
    timeout_s: float = Field(default=30.0, gt=0)
    workers: int = Field(default=1, ge=1, le=64)
    """BentoML worker processes (read when the service module is imported)."""
    predict_threads: int = Field(default=0, ge=0, le=64)
    """LightGBM threads for a batched tree pass; 0: the machine's cores over ``workers``."""
    metrics_public: bool = False
    """Serve ``/metrics`` without a token (for a Prometheus that cannot send one)."""
    raw_url: str | None = Field(default=None, min_length=1)
    """Raw store for scoring by customer id (a PostgreSQL or DuckDB URL, or a folder)."""

    @field_validator("raw_url")
    @classmethod
    def _raw_source(cls, value: str | None) -> str | None:
        """A URL of a database the raw reader knows (the store is reached at the first read)."""
        if value is not None:
            open_raw_source(value)  # RawDataError is a ValueError: reported for the variable
        return value

    params: Path | None = None
    """Params file of the human-judgement settings (``rating:``); None: the project's."""
    audit_key: SecretStr | None = None
    """Audit checkpoint signing key; None: the development key (a warning says so)."""
    supervisor_pid: str | None = None
    """``RISKGRADE_SUPERVISOR_PID`` as set, interpreted by ``serving.watchdog``."""

    @property
    def batch_threads(self) -> int:
        """Threads a batched tree pass gets in this worker."""
        if self.predict_threads:
            return self.predict_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Defaults overridden by the ``RISKGRADE_*`` variables (`serving.settings`).

        Raises:
            ServiceConfigError: naming the variable whose value is invalid.
        """
        try:
            settings = RiskgradeSettings.from_environ(environ)
        except SettingsError as error:
            raise ServiceConfigError(str(error)) from error
        values: dict[str, Any] = {}
        for field, (section, key) in _SETTINGS.items():
            value = getattr(settings, field)
            if value is not None:
                target = values.setdefault(section, {}) if section else values
                target[key] = value
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            where: dict[tuple[str, ...], str] = {
                (section, key) if section else (key,): variable(field)
                for field, (section, key) in _SETTINGS.items()
            }
            first = error.errors(include_url=False)[0]
            loc: tuple[str, ...] = tuple(str(part) for part in first["loc"][:2] if part)
            name = where.get(loc, "?")
            raise ServiceConfigError(
                f"environment variable {name}: {first['msg']} (got {first.get('input')!r})"
            ) from error


class ServiceConfigError(ValueError):
    """The service's configuration (environment) is invalid."""


_AUDIT_RETRY_S = 1.0
"""Seconds between attempts to open an audit store that could not be opened."""

_SETTINGS: dict[str, tuple[str | None, str]] = {
    "bundle": (None, "bundle"),
    "bundle_hash": (None, "bundle_hash"),
    "tokens": (None, "tokens"),
    "max_concurrency": (None, "max_concurrency"),
    "workers": (None, "workers"),
    "predict_threads": (None, "predict_threads"),
    "metrics_public": (None, "metrics_public"),
    "params": (None, "params"),
    "raw_url": (None, "raw_url"),
    "audit_key": (None, "audit_key"),
    "supervisor_pid": (None, "supervisor_pid"),
    "audit_db": ("audit", "path"),
    "audit_url": ("audit", "url"),
    "max_body_bytes": ("limits", "max_body_bytes"),
    "batching": ("batching", "enabled"),
    "max_batch_jobs": ("batching", "max_batch_jobs"),
    "max_latency_ms": ("batching", "max_latency_ms"),
    "max_wait_ms": ("batching", "max_wait_ms"),
}
"""`RiskgradeSettings` field -> (section, field) of `ServiceConfig`."""


class ServingState:
    """Everything a worker serves with: model engine, audit store, tokens, limits."""

    def __init__(self, config: ServiceConfig) -> None:
        """Load tokens, open the audit store and load + verify the bundle.

        Failures are kept (``problems``) rather than raised so that the process stays alive
        and the readiness probe reports them.
        """
        self.config = config
        self.engine: Engine | None = None
        self.audit: AuditStore | None = None
        self.judgement: JudgementConfig | None = None
        self.lifecycle = LifecycleConfig()
        self.covenants = CovenantConfig()
        self.tokens: TokenStore | None = None
        self.problems: dict[str, str] = {}
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._reload_lock = threading.Lock()
        self.batcher: AdaptiveBatcher[ScoringJob, list[dict[str, Any]]] = AdaptiveBatcher(
            self.decide_jobs, config.batching, self._queue_overloaded
        )
        self.tokens = TokenStore(config.tokens)
        if self.tokens.problem is not None:
            logger.error("no token is accepted until the file is fixed: %s", self.tokens.problem)
        self._audit_lock = threading.Lock()
        self._audit_tried = 0.0
        self.open_audit()
        try:
            rating = default_rating_config(config.params)
            self.lifecycle = rating.lifecycle
            self.covenants = CovenantConfig.model_validate(
                params_section("covenants", config.params, required=False)
            )
            self.judgement = rating.judgement
        except (DefaultsError, ValidationError) as error:
            self.problems["judgement"] = f"human-judgement settings invalid: {error}"
            logger.error("not ready: %s", self.problems["judgement"])
        try:
            self.load_model(config.bundle, config.bundle_hash)
        except ApiError as error:
            logger.error("not ready: %s", error.message)

    def open_audit(self) -> AuditStore | None:
        """The audit store, opened now if it is not open yet (at most once per retry interval).

        A worker that could not open it at start (e.g. another worker held the SQLite file's
        lock while creating it, or PostgreSQL was down) tries again on a later call instead of
        staying unready for good; until then the problem is kept for the readiness probe.
        """
        if self.audit is not None:
            return self.audit
        with self._audit_lock:
            now = time.monotonic()
            if self.audit is not None or now - self._audit_tried < _AUDIT_RETRY_S:
                return self.audit
            self._audit_tried = now
            config = self.config
            try:
                key = config.audit_key.get_secret_value().encode() if config.audit_key else None
                audit = open_audit_store(config.audit, key=key)
            except AuditError as error:
                self.problems["audit"] = str(error)
                logger.error("audit store unavailable (retried on a later call): %s", error)
                return None
            if audit.uses_dev_key:
                logger.warning("audit checkpoints are signed with the development key")
            self.audit = audit
            self.problems.pop("audit", None)
            return audit

    def load_model(self, bundle: Path, expected_hash: str | None) -> None:
        """Load and verify a bundle and swap it in; on failure keep serving the old one.

        Raises:
            ApiError: 409 when the bundle is refused (the message names the file at fault).
        """
        with self._reload_lock:
            try:
                model = RatingModel.load(bundle, expected_hash)
                engine = Engine(model, batch_threads=self.config.batch_threads)
            except (BundleError, ModelIncompatibleError, ValueError, OSError) as error:
                message = f"bundle {bundle} refused: {error}"
                if self.engine is None:
                    self.problems["bundle"] = message
                raise ApiError(409, "bundle_refused", message) from error
            self.engine = engine
            self.problems.pop("bundle", None)
            logger.info("serving model %s (bundle %s)", engine.model_version, engine.bundle_hash)

    def is_ready(self) -> bool:
        """Bundle verified, tokens loaded and the audit store writable."""
        self.open_audit()
        return (
            self.engine is not None
            and self.judgement is not None
            and self.tokens is not None
            and self.tokens.problem is None
            and self.audit is not None
            and self.audit.is_writable()
        )

    def ready_engine(self) -> tuple[Engine, AuditStore]:
        """The engine and audit store, or 503 when the service is not ready."""
        self.open_audit()
        if self.engine is None or self.audit is None or self.judgement is None:
            problems = "; ".join(f"{k}: {v}" for k, v in self.problems.items())
            raise ApiError(503, "not_ready", f"service not ready ({problems or 'starting'})")
        return self.engine, self.audit

    def rules(self) -> tuple[RatingRules, AuditStore]:
        """The served scale and policy with the judgement settings, and the audit store.

        Raises:
            ApiError: 503 when the service is not ready.
        """
        engine, audit = self.ready_engine()
        assert self.judgement is not None
        rules = RatingRules(engine.model.scale, engine.model.policy, self.judgement, self.lifecycle)
        return rules, audit

    def acquire(self) -> None:
        """Take a scoring slot or fail fast with 503 (overload)."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(
                503,
                "overloaded",
                f"more than {self.config.max_concurrency} scoring requests in flight; retry",
                headers={"Retry-After": "1"},
            )

    def release(self) -> None:
        """Give a scoring slot back."""
        self._slots.release()

    async def decide(self, job: ScoringJob) -> list[dict[str, Any]]:
        """Queue one call for adaptive batching (after the concurrency gate); its responses."""
        self.ready_engine()
        self.acquire()
        try:
            return await self.batcher.submit(job)
        finally:
            self.release()

    def _queue_overloaded(self) -> NoReturn:
        raise ApiError(
            503,
            "overloaded",
            f"the scoring queue is longer than {self.config.batching.max_latency_ms} ms; retry",
            headers={"Retry-After": "1"},
        )

    def decide_jobs(self, jobs: Sequence[ScoringJob]) -> list[list[dict[str, Any]] | ApiError]:
        """Decide a batch of calls and commit all their decisions in one audit transaction.

        Runs in a worker thread. Per job: its response bodies, or the error it gets (422 for
        its own unscorable request; 503 for every decided job when the audit commit fails,
        since then no decision may leave).
        """
        try:
            engine, audit = self.ready_engine()
        except ApiError as error:
            return [error] * len(jobs)
        outcomes = engine.decide_many(jobs)
        unrecorded: ApiError | None = None
        try:
            rules, _ = self.rules()
            outcomes = _judged(jobs, outcomes, audit, rules)
        except AuditError as error:
            logger.error("audit store unreadable: %s", error)
            unrecorded = ApiError(
                503, "audit_unavailable", "people's judgement could not be read; no decision given"
            )
        # The answers stored for idempotency keys are the judged responses the callers get.
        decided = [(j, o) for j, o in zip(jobs, outcomes, strict=True) if isinstance(o, list)]
        decisions = [d for _, outcome in decided for d in outcome]
        answers = [j.answer([d.response for d in o]) for j, o in decided if j.answer]
        try:
            if unrecorded is None:
                _commit(audit, decisions, answers)
        except ApiError as error:
            unrecorded = error
        return [
            _scoring_error(outcome)
            if isinstance(outcome, ScoringError)
            else unrecorded or [d.response for d in outcome]
            for outcome in outcomes
        ]


def _judged(
    jobs: Sequence[ScoringJob],
    outcomes: Sequence[list[Decision] | ScoringError],
    audit: AuditStore,
    rules: RatingRules,
) -> list[list[Decision] | ScoringError]:
    """The batch's decisions with the rating chain, judged in one pass over the whole batch.

    One pass reads the emergency measures once per ``as_of`` and each customer's events once
    for the batch, not once per call.

    Raises:
        AuditError: if the audit store cannot be read.
    """
    decided = [(job, o) for job, o in zip(jobs, outcomes, strict=True) if isinstance(o, list)]
    decisions = [d for _, outcome in decided for d in outcome]
    requests = [r for job, _ in decided for r in job.requests]
    judged = iter(judge_decisions(decisions, requests, audit, rules))
    return [
        [next(judged) for _ in outcome] if isinstance(outcome, list) else outcome
        for outcome in outcomes
    ]


def _commit(
    audit: AuditStore, decisions: list[Decision], answers: list[IdempotentResponse]
) -> None:
    try:
        audit.append_many([decision.record for decision in decisions], idempotent=answers)
    except AuditUnavailableError as error:
        logger.error("audit store unavailable: %s", error)
        raise ApiError(
            503, "audit_unavailable", "the decision could not be recorded; no decision given"
        ) from error


def _scoring_error(error: ScoringError) -> ApiError:
    return ApiError(422, "unscorable", str(error), [FieldError(loc=error.loc, message=str(error))])


http_app = build_app()

_CONFIG_AT_IMPORT = ServiceConfig.from_env()


@bentoml.service(
    name="riskgrade",
    traffic={"timeout": _CONFIG_AT_IMPORT.timeout_s},
    workers=_CONFIG_AT_IMPORT.workers,
)
@bentoml.asgi_app(http_app, path="/")
class RiskgradeService:
    """The riskgrade scoring service (one instance per worker)."""

    def __init__(self) -> None:
        """Read the configuration from the environment and load everything."""
        self.state = ServingState(ServiceConfig.from_env())
        # In a BentoML worker: end with the supervisor (no orphan keeps the port and answers).
        self.watchdog: Watchdog | None = None
        if bentoml.server_context.worker_index is not None:
            pid = self.state.config.supervisor_pid
            self.watchdog = start_watchdog(
                grace_s=self.state.config.timeout_s + 5,
                environ={SUPERVISOR_ENV: pid} if pid else {},
            )
        # The loaded model and libraries are long-lived: move them out of the collector's
        # reach so request garbage does not trigger full collections (p99 200 ms -> 64 ms).
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        """Readiness: bundle verified, tokens loaded, audit store writable."""
        return self.state.is_ready()

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the watchdog and the batcher and close the audit store."""
        if self.watchdog is not None:
            self.watchdog.stop()
        self.state.batcher.shutdown()
        if self.state.audit is not None:
            self.state.audit.close()


# mypy does not apply class decorators (python/mypy#3135): the name is a bentoml.Service.
_SERVICE = cast("bentoml.Service[RiskgradeService]", RiskgradeService)
_SERVICE.add_asgi_middleware(ControlCharPathGuard)
_SERVICE.add_asgi_middleware(TokenGate)
