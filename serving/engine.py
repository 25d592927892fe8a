"""Scoring core shared by the HTTP service, batch scoring and audit replay (no HTTP here).

A request's raw records become polars frames in the feature code's input types (no pandas),
``features.catalog.compute_feature_row`` computes every feature with the same definitions as
training (as one float64 row in catalog order), the bundle's columns are taken by position in
spec order into one contiguous float64 matrix, and
``RatingModel.score`` runs one ``pred_contrib`` pass for PD, grade, tier, reasons and groups.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from features.catalog import FEATURE_SPEC, compute_feature_row
from features.groups.common import FeatureFrames
from features.schema import STATEMENT_AMOUNTS
from rating.bundle import POLICY_FILE
from rating.explain import Explanation, render_waterfall
from rating.model import RatingModel, ScoreResult
from rating.reasons import Reason
from serving.audit import DecisionRecord
from serving.schemas import ScoreRequest

_CUSTOMERS = {
    "customer_id": pl.String(),
    "industry": pl.String(),
    "region": pl.String(),
    "size_class": pl.String(),
    "founded_date": pl.Date(),
    "onboarding_date": pl.Date(),
    "sanctions_hit": pl.Boolean(),
    "legal_enforcement": pl.Boolean(),
    "fraud": pl.Boolean(),
}
_STATEMENTS = {
    "customer_id": pl.String(),
    "period_end": pl.Date(),
    "published_date": pl.Date(),
    "period_months": pl.Int64(),
    **{name: pl.Float64() for name in STATEMENT_AMOUNTS},
}
_FACILITIES = {
    "facility_id": pl.String(),
    "customer_id": pl.String(),
    "opened": pl.Date(),
    "maturity_date": pl.Date(),
    "limit": pl.Float64(),
}
_REPAYMENTS = {
    "facility_id": pl.String(),
    "customer_id": pl.String(),
    "due_date": pl.Date(),
    "amount_due": pl.Float64(),
    "paid_date": pl.Date(),
    "amount_paid": pl.Float64(),
}
_TRANSACTIONS = {
    "customer_id": pl.String(),
    "ts": pl.Datetime("us"),
    "amount": pl.Float64(),
    "direction": pl.String(),
    "counterparty_id": pl.String(),
}


class ScoringError(ValueError):
    """A request that validates but cannot be scored by this model (client error, 422)."""

    def __init__(self, message: str, loc: str = "body") -> None:
        super().__init__(message)
        self.loc = loc


class ModelIncompatibleError(RuntimeError):
    """The bundle's feature spec asks for features the feature code does not compute."""


def request_frames(request: ScoreRequest) -> FeatureFrames:
    """The raw records of a request as the polars frames the feature groups read."""
    customer = request.customer
    if customer is None:
        raise ScoringError("request carries no raw records", "customer")
    cid = customer.customer_id
    statements = request.statements
    instalments = [(f, i) for f in request.facilities for i in f.instalments]
    return FeatureFrames(
        customers=pl.DataFrame(
            {name: [getattr(customer, name)] for name in _CUSTOMERS}, schema=_CUSTOMERS
        ),
        financial_statements=pl.DataFrame(
            {
                name: [cid] * len(statements)
                if name == "customer_id"
                else [getattr(s, name) for s in statements]
                for name in _STATEMENTS
            },
            schema=_STATEMENTS,
        ),
        credit_facilities=pl.DataFrame(
            {
                "facility_id": [f.facility_id for f in request.facilities],
                "customer_id": [cid] * len(request.facilities),
                "opened": [f.opened for f in request.facilities],
                "maturity_date": [f.maturity_date for f in request.facilities],
                "limit": [f.limit for f in request.facilities],
            },
            schema=_FACILITIES,
        ),
        repayments=pl.DataFrame(
            {
                "facility_id": [f.facility_id for f, _ in instalments],
                "customer_id": [cid] * len(instalments),
                "due_date": [i.due_date for _, i in instalments],
                "amount_due": [i.amount_due for _, i in instalments],
                "paid_date": [i.paid_date for _, i in instalments],
                "amount_paid": [i.amount_paid for _, i in instalments],
            },
            schema=_REPAYMENTS,
        ),
        transactions=pl.DataFrame(
            {
                "customer_id": [cid] * len(request.transactions),
                "ts": [t["ts"] for t in request.transactions],
                "amount": [t["amount"] for t in request.transactions],
                "direction": [t["direction"] for t in request.transactions],
                "counterparty_id": [t["counterparty_id"] for t in request.transactions],
            },
            schema=_TRANSACTIONS,
        ),
    )


@dataclass(frozen=True)
class FeatureRows:
    """Feature matrix of scored requests, spec order, plus the hard-rule flags."""

    x: np.ndarray
    """``(n, n_model_features)`` C-contiguous float64, NaN for missing."""
    flags: dict[str, np.ndarray]


@dataclass(frozen=True)
class RequestSource:
    """Where a validated request came from: the HTTP body as received and the request's place."""

    body: bytes
    """The body byte for byte (what the audit log keeps)."""
    pointer: str = ""
    """JSON pointer of the request inside ``body`` (``""``: the whole body)."""


@dataclass(frozen=True)
class Decision:
    """One scored customer: the response body and the audit record to commit before it."""

    response: dict[str, Any]
    record: DecisionRecord


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class Engine:
    """Turns validated requests into decisions with one loaded `RatingModel`."""

    def __init__(self, model: RatingModel) -> None:
        """Check the model's spec against the feature code once.

        Raises:
            ModelIncompatibleError: if the bundle needs a feature the catalog lacks.
        """
        self.model = model
        catalog = FEATURE_SPEC.names
        unknown = [name for name in model.spec.names if name not in catalog]
        if unknown:
            raise ModelIncompatibleError(
                f"bundle {model.bundle.bundle_hash[:12]} needs features the feature code does "
                f"not compute: {', '.join(unknown)}"
            )
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
        self.policy_version = f"{model.policy.version}+{bundle.file_hashes[POLICY_FILE][:12]}"

    # -- features --------------------------------------------------------------------------
    def _raw_row(self, request: ScoreRequest) -> tuple[np.ndarray, dict[str, float]]:
        values = compute_feature_row(request_frames(request), request.as_of)
        if values is None:
            raise ScoringError(
                f"customer not rated at as_of {request.as_of} (onboarded later?)", "customer"
            )
        # Catalog order -> model order by position: one fancy-index, no per-name lookups.
        row = values[self._catalog_index]
        flags = {name: float(values[j]) for name, j in self._flag_index}
        return row, flags

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

    def features(self, requests: Sequence[ScoreRequest]) -> FeatureRows:
        """Feature rows (spec order) and flags of validated requests.

        Raises:
            ScoringError: if a request cannot be turned into this model's features.
        """
        rows, flag_rows = [], []
        for request in requests:
            if request.feature_vector is not None:
                row, flags = self._vector_row(request)
            else:
                row, flags = self._raw_row(request)
            rows.append(row)
            flag_rows.append(flags)
        x = np.ascontiguousarray(
            np.vstack(rows) if rows else np.empty((0, len(self._columns))), dtype=np.float64
        )
        flags = {
            name: np.array([f.get(name, 0.0) for f in flag_rows], dtype=np.float64)
            for name in self._flag_names
        }
        return FeatureRows(x=x, flags=flags)

    # -- decisions -------------------------------------------------------------------------
    def score(self, rows: FeatureRows) -> ScoreResult:
        """One ``pred_contrib`` pass over the rows."""
        try:
            return self.model.score(rows.x, rows.flags)
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
        """
        if sources is None:
            sources = [RequestSource(r.model_dump_json().encode()) for r in requests]
        rows = self.features(requests)
        result = self.score(rows)
        decisions = []
        for i, request in enumerate(requests):
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
                chart = explain_charts[i]
                if chart != "none":
                    image = render_waterfall(explanation, fmt=chart)  # type: ignore[arg-type]
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
                request_body=sources[i].body,
                request_pointer=sources[i].pointer,
                payload={
                    "features": {
                        name: _finite_or_none(value)
                        for name, value in zip(self._columns, rows.x[i], strict=True)
                    },
                    "flags": {name: float(col[i]) for name, col in rows.flags.items()},
                    "response": {k: v for k, v in response.items() if k != "chart"},
                },
            )
            decisions.append(Decision(response=response, record=record))
        return decisions

    def response(self, result: ScoreResult, i: int, request: ScoreRequest) -> dict[str, Any]:
        """The /score body of row ``i`` (texts in the request's language)."""
        lang = request.lang
        tier = str(result.tier[i])
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
            "reasons": [_reason(r, lang) for r in result.reasons[i] if r.group != "hard_rule"],
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
        rows = self.features([validated])
        result = self.score(rows)
        return {
            "features": {
                name: _finite_or_none(value)
                for name, value in zip(self._columns, rows.x[0], strict=True)
            },
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
    return {
        "code": reason.code,
        "text": reason.text_zh if lang == "zh" else reason.text_en,
        "group": reason.group,
        "feature": reason.feature,
        "contribution": reason.contribution,
        "value": reason.value,
    }
