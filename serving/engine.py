"""Scoring core shared by the HTTP service, batch scoring and audit replay (no HTTP here).

A request's raw records become polars frames in the feature code's input types (no pandas),
``features.catalog.compute_feature_rows`` computes every feature with the same definitions as
training (as one float64 row in catalog order), the bundle's columns are taken by position in
spec order into one contiguous float64 matrix, and
``RatingModel.score`` runs one ``pred_contrib`` pass for PD, grade, tier, reasons and groups.
"""

from __future__ import annotations

import base64
import math
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from audit import DecisionRecord, IdempotentResponse
from features.catalog import FEATURE_SPEC, compute_feature_rows
from features.groups.common import FeatureFrames, frame_schema
from rating.compat import ModelIncompatibleError as ModelIncompatibleError  # re-exported
from rating.compat import check_compatible
from rating.explain import Explanation, render_waterfall
from rating.model import RatingModel, ScoreResult
from rating.policy import DefaultStatus, default_status
from rating.reasons import Reason
from serving.schemas import ScoreRequest


class ScoringError(ValueError):
    """A request that validates but cannot be scored by this model (client error, 422)."""

    def __init__(self, message: str, loc: str = "body") -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class StoredRecords:
    """A request by customer id's records as read from the raw store (``serving.by_id``)."""

    frames: FeatureFrames
    """The customer's rows in the frames the feature groups read."""
    default: DefaultStatus | None
    """The customer's default status at the request's ``as_of`` (None: not in default)."""


def stored_records(request: ScoreRequest) -> StoredRecords | None:
    """The records read from the raw store for a request by customer id (None: a body)."""
    stored = request._stored
    return stored if isinstance(stored, StoredRecords) else None


def request_frames(request: ScoreRequest) -> FeatureFrames:
    """The raw records of a request as the polars frames the feature groups read.

    A request by customer id brings its frames from the store read (``StoredRecords``).
    """
    if (stored := stored_records(request)) is not None:
        return stored.frames
    customer = request.customer
    if customer is None:
        raise ScoringError("request carries no raw records", "customer")
    cid = customer.customer_id

    def frame(table: str, rows: Sequence[Any], value: Callable[[Any, str], Any]) -> pl.DataFrame:
        schema = frame_schema(table)
        columns = {
            name: [cid] * len(rows) if name == "customer_id" else [value(r, name) for r in rows]
            for name in schema
        }
        return pl.DataFrame(columns, schema=schema)

    instalments = [(f, i) for f in request.facilities for i in f.instalments]
    return FeatureFrames(
        customers=frame("customers", [customer], getattr),
        financial_statements=frame("financial_statements", request.statements, getattr),
        credit_facilities=frame("credit_facilities", request.facilities, getattr),
        repayments=frame(
            "repayments",
            instalments,
            lambda pair, name: getattr(pair[0] if name == "facility_id" else pair[1], name),
        ),
        transactions=frame("transactions", request.transactions, operator.getitem),
    )


BATCH_THREADS_FROM = 8
"""Rows from which a tree pass uses ``Engine.batch_threads``."""


@dataclass(frozen=True)
class FeatureRows:
    """Feature matrix of scored requests, spec order, plus hard-rule flags and default status."""

    x: np.ndarray
    """``(n, n_model_features)`` C-contiguous float64, NaN for missing."""
    flags: dict[str, np.ndarray]
    defaults: list[DefaultStatus | None]
    """Per row, the customer's default status at its ``as_of`` (None: not in default)."""


@dataclass(frozen=True)
class RequestSource:
    """Where a validated request came from: the HTTP body as received and the request's place."""

    body: bytes
    """The body byte for byte (what the audit log keeps)."""
    pointer: str = ""
    """JSON pointer of the request inside ``body`` (``""``: the whole body)."""
    read: Mapping[str, Any] | None = None
    """What a request by customer id read from the raw store (recorded as ``payload.read``)."""


@dataclass(frozen=True)
class ScoringJob:
    """One call's requests, decided together (the body of a /score, /explain or /score_batch)."""

    requests: Sequence[ScoreRequest]
    caller: str
    """Token name of the caller (recorded)."""
    kind: str = "score"
    """``score`` or ``explain`` (recorded)."""
    explain_charts: Sequence[str] | None = None
    """Per request ``none``/``png``/``svg`` to add the tier explanation; None: no explanation."""
    sources: Sequence[RequestSource] | None = None
    """Per request, the body it arrived in; None records pydantic's JSON of each request."""
    answer: Callable[[list[dict[str, Any]]], IdempotentResponse] | None = None
    """The call's idempotency answer from its responses, committed with its decisions."""


@dataclass(frozen=True)
class Decision:
    """One scored customer: the response body and the audit record to commit before it."""

    response: dict[str, Any]
    record: DecisionRecord


_Row = tuple[np.ndarray, dict[str, float], DefaultStatus | None]
"""One request's features (model order), hard-rule flags and default status."""


def request_default(request: ScoreRequest) -> DefaultStatus | None:
    """The default status of a request's customer at its ``as_of`` (None: not in default)."""
    if (stored := stored_records(request)) is not None:
        return stored.default
    if not request.defaults:
        return None
    records = [(d.default_date, d.default_type) for d in request.defaults]
    return default_status(records, request.as_of)


def _located(error: ScoringError, k: int, n_requests: int) -> ScoringError:
    """``error`` of the k-th request of a call, located inside a batch body."""
    if n_requests == 1:
        return error
    return ScoringError(str(error), f"requests.{k}.{error.loc}")


class Engine:
    """Turns validated requests into decisions with one loaded `RatingModel`."""

    def __init__(self, model: RatingModel, *, batch_threads: int = 1) -> None:
        """Check the model's spec against the feature code once.

        Args:
            model: The loaded rating model.
            batch_threads: LightGBM threads for a tree pass over ``BATCH_THREADS_FROM`` rows
                or more (one row gains nothing from a second thread).

        Raises:
            ModelIncompatibleError: if the bundle needs a feature the catalog lacks.
        """
        self.model = model
        self.batch_threads = batch_threads
        check_compatible(model.spec, f"bundle {model.bundle.bundle_hash[:12]}")
        catalog = FEATURE_SPEC.names
        self._columns = model.spec.names
        self._column_set = set(self._columns)
        self._flag_names = model.policy.flag_names
        self._catalog_index = np.array(
            [catalog.index(name) for name in self._columns], dtype=np.intp
        )
        self._flag_index = tuple(
            (name, catalog.index(name)) for name in self._flag_names if name in catalog
        )
        bundle = model.bundle
        self.model_version = bundle.metadata.version
        self.bundle_hash = bundle.bundle_hash
        self.policy_version = model.policy_version

    # -- features --------------------------------------------------------------------------
    def _values_row(self, values: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        # Catalog order -> model order by position: one fancy-index, no per-name lookups.
        row = values[self._catalog_index]
        flags = {name: float(values[j]) for name, j in self._flag_index}
        return row, flags

    def _raw_rows(
        self, requests: Sequence[ScoreRequest]
    ) -> list[tuple[np.ndarray, dict[str, float]] | ScoringError]:
        """Feature rows of raw-record requests, computed together per ``as_of``.

        ``features.catalog.compute_feature_rows`` batches the customers of one ``as_of`` into
        one query when there are enough of them (with the same values as one by one).
        """
        out: list[tuple[np.ndarray, dict[str, float]] | ScoringError] = []
        by_as_of: dict[date, list[int]] = {}
        for k, request in enumerate(requests):
            out.append(ScoringError("request carries no raw records", "customer"))
            if request.customer is not None:
                by_as_of.setdefault(request.as_of, []).append(k)
        for as_of, members in by_as_of.items():
            frames = [request_frames(requests[k]) for k in members]
            for k, values in zip(members, compute_feature_rows(frames, as_of), strict=True):
                out[k] = (
                    ScoringError(
                        f"customer not rated at as_of {as_of} (onboarded later?)", "customer"
                    )
                    if values is None
                    else self._values_row(values)
                )
        return out

    def _vector_row(self, request: ScoreRequest) -> tuple[np.ndarray, dict[str, float]]:
        vector = request.feature_vector
        assert vector is not None
        unknown = sorted(set(vector.values) - self._column_set)
        if unknown:
            raise ScoringError(
                f"not a feature of model {self.model_version}: {unknown[0]}",
                f"feature_vector.values.{unknown[0]}",
            )
        missing = [c for c in self._columns if c not in vector.values]
        if missing:
            raise ScoringError(
                f"{len(missing)} model feature(s) missing (send null for unknown values): "
                f"{', '.join(missing[:5])}",
                f"feature_vector.values.{missing[0]}",
            )
        row = np.array(
            [math.nan if vector.values[c] is None else vector.values[c] for c in self._columns],
            dtype=np.float64,
        )
        flags = {}
        for name in self._flag_names:
            if name in vector.flags:
                flags[name] = float(vector.flags[name])
            elif name in self._column_set:
                flags[name] = row[self._columns.index(name)]
            else:
                raise ScoringError(
                    f"hard-rule flag '{name}' is needed", f"feature_vector.flags.{name}"
                )
        return row, flags

    def _rows(self, requests: Sequence[ScoreRequest]) -> list[_Row | ScoringError]:
        """Each request's feature row, flags and default status, or why it is unscorable."""
        out: list[_Row | ScoringError] = []
        raw = [k for k, r in enumerate(requests) if r.feature_vector is None]
        raw_rows = dict(zip(raw, self._raw_rows([requests[k] for k in raw]), strict=True))
        for k, request in enumerate(requests):
            row = raw_rows.get(k)
            if row is None:
                try:
                    row = self._vector_row(request)
                except ScoringError as error:
                    row = error
            out.append(row if isinstance(row, ScoringError) else (*row, request_default(request)))
        return out

    def _feature_values(self, row: np.ndarray) -> dict[str, float | None]:
        """A feature row by name as recorded (None for a missing value)."""
        return {
            name: float(value) if math.isfinite(value) else None
            for name, value in zip(self._columns, row, strict=True)
        }

    def _stack(self, rows: Sequence[_Row]) -> FeatureRows:
        x = np.ascontiguousarray(
            np.vstack([row[0] for row in rows]) if rows else np.empty((0, len(self._columns))),
            dtype=np.float64,
        )
        flags = {
            name: np.array([row[1].get(name, 0.0) for row in rows], dtype=np.float64)
            for name in self._flag_names
        }
        return FeatureRows(x=x, flags=flags, defaults=[row[2] for row in rows])

    def features(self, requests: Sequence[ScoreRequest]) -> FeatureRows:
        """Feature rows (spec order) and flags of validated requests.

        Raises:
            ScoringError: if a request cannot be turned into this model's features.
        """
        rows = self._rows(requests)
        for row in rows:
            if isinstance(row, ScoringError):
                raise row
        return self._stack([row for row in rows if not isinstance(row, ScoringError)])

    # -- decisions -------------------------------------------------------------------------
    def score(self, rows: FeatureRows) -> ScoreResult:
        """One ``pred_contrib`` pass over the rows."""
        threads = self.batch_threads if len(rows.x) >= BATCH_THREADS_FROM else None
        try:
            return self.model.score(rows.x, rows.flags, defaults=rows.defaults, num_threads=threads)
        except ValueError as error:
            raise ScoringError(str(error), "feature_vector.values") from error

    def decide(
        self,
        requests: Sequence[ScoreRequest],
        caller: str,
        *,
        kind: str = "score",
        explain_charts: Sequence[str] | None = None,
        sources: Sequence[RequestSource] | None = None,
    ) -> list[Decision]:
        """Score requests and build each response with its audit record.

        Args:
            requests: validated requests.
            caller: token name of the caller (recorded).
            kind: ``score`` or ``explain`` (recorded).
            explain_charts: per request ``none``/``png``/``svg`` to add the tier explanation.
            sources: per request, the body it arrived in (recorded as received); None records
                each request as pydantic's JSON of the validated model.

        Raises:
            ScoringError: if a request cannot be scored (nothing is decided then).
        """
        job = ScoringJob(requests, caller, kind, explain_charts, sources)
        (outcome,) = self.decide_many([job])
        if isinstance(outcome, ScoringError):
            raise outcome
        return outcome

    def decide_many(self, jobs: Sequence[ScoringJob]) -> list[list[Decision] | ScoringError]:
        """Decide several calls together: one feature pass per ``as_of``, one tree pass.

        This is what adaptive batching hands over: each job is one HTTP call, and a job that
        cannot be scored fails alone (its error names the request), never its neighbours.

        Returns:
            Per job, its decisions in request order, or the `ScoringError` that stops it.
        """
        flat_rows = iter(self._rows([request for job in jobs for request in job.requests]))
        outcomes: list[list[Decision] | ScoringError | None] = []
        job_rows: list[list[_Row]] = []
        for job in jobs:
            mine = [next(flat_rows) for _ in job.requests]
            error = next(
                (
                    _located(e, k, len(mine))
                    for k, e in enumerate(mine)
                    if isinstance(e, ScoringError)
                ),
                None,
            )
            outcomes.append(error)
            job_rows.append([row for row in mine if not isinstance(row, ScoringError)])
        ready = [j for j, outcome in enumerate(outcomes) if outcome is None]
        if ready:
            try:
                rows = self._stack([row for j in ready for row in job_rows[j]])
                result = self.score(rows)
                first = 0
                for j in ready:
                    outcomes[j] = self._decisions(jobs[j], rows, result, first)
                    first += len(jobs[j].requests)
            except ScoringError:
                # One job's values broke the shared pass: score each alone so it fails alone.
                for j in ready:
                    rows = self._stack(job_rows[j])
                    try:
                        outcomes[j] = self._decisions(jobs[j], rows, self.score(rows), 0)
                    except ScoringError as error:
                        outcomes[j] = error
        return outcomes  # type: ignore[return-value]  # every None (ready job) was replaced above

    def _decisions(
        self, job: ScoringJob, rows: FeatureRows, result: ScoreResult, first: int
    ) -> list[Decision]:
        """The decisions of ``job``, whose rows start at ``first`` in ``rows`` and ``result``."""
        requests, caller, kind = job.requests, job.caller, job.kind
        explain_charts = job.explain_charts
        sources = job.sources or [RequestSource(r.model_dump_json().encode()) for r in requests]
        decisions = []
        for k, request in enumerate(requests):
            i = first + k
            response = self.response(result, i, request)
            explanation: Explanation | None = None
            if explain_charts is not None:
                explanation = self.model.explain(result, i)
                response["explanation"] = explanation.model_dump(mode="json")
                response["contributions"] = {
                    name: float(value)
                    for name, value in zip(self._columns, result.contributions[i], strict=True)
                }
                response["base_log_odds"] = float(result.base[i])
                response["log_odds"] = float(result.log_odds[i])
                chart = explain_charts[k]
                if chart != "none":
                    # png or svg: the request schema admits no other chart value.
                    image = render_waterfall(explanation, fmt=chart)  # type: ignore[arg-type]  # above
                    response["chart"] = {
                        "format": chart,
                        "base64": base64.b64encode(image).decode("ascii"),
                    }
            record = DecisionRecord(
                decision_id=response["decision_id"],
                kind=kind,
                caller=caller,
                customer_id=response["customer_id"],
                model_version=self.model_version,
                bundle_hash=self.bundle_hash,
                policy_version=self.policy_version,
                pd=response["pd"],
                grade=response["grade"],
                tier=response["tier"],
                request_body=sources[k].body,
                request_pointer=sources[k].pointer,
                payload={
                    "features": self._feature_values(rows.x[i]),
                    "flags": {name: float(col[i]) for name, col in rows.flags.items()},
                    "response": {k: v for k, v in response.items() if k != "chart"},
                    **({"read": dict(read)} if (read := sources[k].read) is not None else {}),
                },
            )
            decisions.append(Decision(response=response, record=record))
        return decisions

    def response(self, result: ScoreResult, i: int, request: ScoreRequest) -> dict[str, Any]:
        """The /score body of row ``i`` (texts in the request's language).

        ``reasons`` are the rating's: hard rules first, then the default status, then the
        top adverse features (as in batch scoring); ``hard_rules`` and ``default`` repeat the
        facts behind the first ones.
        """
        lang = request.lang
        tier = str(result.tier[i])
        status = result.defaults[i]
        return {
            "decision_id": uuid.uuid4().hex,
            "customer_id": request.customer_id,
            "as_of": request.as_of.isoformat(),
            "pd": float(result.pd[i]),
            "score": int(result.points[i]),
            "grade": str(result.grade[i]),
            "tier": tier,
            "model_tier": str(result.model_tier[i]),
            "policy": self.model.policy_of(tier).model_dump(mode="json"),
            "reasons": [_reason(r, lang) for r in result.reasons[i]],
            "default": None if status is None else status.model_dump(mode="json"),
            "hard_rules": [
                {"code": h.code, "flag": h.flag, "text": h.text_zh if lang == "zh" else h.text_en}
                for h in result.hard_rules[i]
            ],
            "groups": {g: float(v[i]) for g, v in result.group_contributions.items()},
            "model_version": self.model_version,
            "bundle_hash": self.bundle_hash,
            "policy_version": self.policy_version,
            "lang": lang,
        }

    def rescore(self, request: dict[str, Any]) -> dict[str, Any]:
        """Re-score a stored decision's request (audit replay): features, pd, grade, tier.

        Raises:
            ScoringError: if the stored request no longer validates or scores.
        """
        body = {k: v for k, v in request.items() if k != "chart"}
        try:
            validated = ScoreRequest.model_validate(body)
        except ValueError as error:
            raise ScoringError(f"stored request does not validate: {error}") from error
        return self.rescore_request(validated)

    def rescore_request(self, validated: ScoreRequest) -> dict[str, Any]:
        """:meth:`rescore` of a validated request (a by-id one carries its store records).

        Raises:
            ScoringError: if the request cannot be scored.
        """
        rows = self.features([validated])
        result = self.score(rows)
        return {
            "features": self._feature_values(rows.x[0]),
            "pd": float(result.pd[0]),
            "grade": str(result.grade[0]),
            "tier": str(result.tier[0]),
        }

    def model_info(self) -> dict[str, Any]:
        """What GET /model shows."""
        bundle = self.model.bundle
        meta = bundle.metadata
        return {
            "model_name": meta.model_name,
            "version": meta.version,
            "trained_at": meta.trained_at.isoformat(),
            "metrics": meta.metrics,
            "lineage": meta.lineage,
            "bundle_hash": bundle.bundle_hash,
            "policy_version": self.policy_version,
            "calibration": bundle.calibration.model_dump(mode="json"),
            "scale": bundle.scale.model_dump(mode="json"),
            "policy": bundle.policy.model_dump(mode="json"),
            "feature_spec": bundle.spec.model_dump(mode="json"),
        }


def _reason(reason: Reason, lang: str) -> dict[str, Any]:
    text = reason.text_zh if lang == "zh" else reason.text_en
    return {"code": reason.code, "text": text, **reason.model_dump(include=_REASON_FIELDS)}


_REASON_FIELDS = {"group", "feature", "contribution", "value", "label"}
