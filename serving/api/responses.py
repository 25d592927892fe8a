"""Success bodies of the routes, for the OpenAPI document (``response_model=``).

The routes build their bodies as JSON-ready dicts and answer them as they are (the bytes stay
what they were); these models only describe them. Nested records kept as stored (payloads,
requests, review details) are described as objects. The people's views (assessments,
overrides, proposals, status changes, records, warnings, measures, the queue) are defined once
in ``management``, whose ``to_dict`` builds them; here only the lists that wrap them.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from audit import StoredDecision
from features.spec import FeatureSpec
from management.judgement import HistoryEntry, OverrideView
from management.measures import MeasureView
from management.proposals import ProposalState
from management.warnings import WarningView
from rating.calibration import PlattCalibration
from rating.explain import Explanation
from rating.policy import CreditPolicy, DefaultStatus, RatingPolicy
from rating.scale import MasterScale

Json = dict[str, Any]


class ReasonOut(BaseModel):
    """One reason of a rating, in the request's language."""

    code: str
    text: str
    group: str
    feature: str | None
    contribution: float | None
    value: float | None


class HardRuleOut(BaseModel):
    """A hard rule that applied."""

    code: str
    flag: str
    text: str


class ScoreResponse(BaseModel):
    """One decision (``/score``; each item of ``/score_batch``)."""

    decision_id: str
    customer_id: str
    as_of: date
    pd: float
    score: int
    grade: str
    tier: str
    model_tier: str
    policy: CreditPolicy
    reasons: list[ReasonOut]
    default: DefaultStatus | None
    hard_rules: list[HardRuleOut]
    groups: dict[str, float]
    model_version: str
    bundle_hash: str
    policy_version: str
    lang: Literal["en", "zh"]


class Chart(BaseModel):
    """The waterfall chart of an explanation."""

    format: Literal["png", "svg"]
    base64: str


class ExplainResponse(ScoreResponse):
    """A decision with its explanation on the tiers (``/explain``)."""

    explanation: Explanation
    contributions: dict[str, float]
    base_log_odds: float
    log_odds: float
    chart: Chart | None = None
    """Present unless ``chart`` was ``none``."""


class ScoreBatchResponse(BaseModel):
    """The decisions of ``/score_batch``, in request order."""

    results: list[ScoreResponse]


class ModelInfo(BaseModel):
    """The served bundle (``/model``)."""

    model_name: str
    version: str
    trained_at: str
    metrics: dict[str, float]
    lineage: dict[str, str]
    bundle_hash: str
    policy_version: str
    calibration: PlattCalibration
    scale: MasterScale
    policy: RatingPolicy
    feature_spec: FeatureSpec


class ReloadResponse(BaseModel):
    """The bundle served after a reload."""

    model_version: str
    bundle_hash: str


class ChainCheck(BaseModel):
    """The chain's verification (``first_bad_id`` and ``problem`` set when it fails)."""

    ok: bool
    records: int
    checkpoints: int
    first_bad_id: int | None
    problem: str | None


class ReviewChainCheck(ChainCheck):
    """The chain's verification, with its time (review API)."""

    verified_at: str


class Facets(BaseModel):
    """Tiers and model versions in the log (review API)."""

    tiers: list[str]
    model_versions: list[str]
    records: int
    loaded_model: str | None


class DecisionSummary(BaseModel):
    """One row of a decision search (review API)."""

    id: int
    decision_id: str
    created_at: str
    kind: str
    caller: str
    customer_id: str
    as_of: str | None
    pd: float
    grade: str
    tier: str
    model_version: str
    bundle_hash: str


class DecisionPage(BaseModel):
    """One page of a decision search, newest first (review API)."""

    total: int
    limit: int
    offset: int
    records: list[DecisionSummary]


class DecisionDetail(BaseModel):
    """Everything the review page shows about one decision."""

    record: Json
    decision: Json
    inputs: Json | None
    flags: Json
    features: list[Json]
    factors: dict[str, dict[str, str]]
    reasons: list[Json]
    explanation: Json | None
    model: Json
    record_check: Json


class DecisionExport(BaseModel):
    """The decisions matching a search, as a JSON file (review API, without ``id``)."""

    exported_at: str
    filters: Json
    count: int
    records: list[StoredDecision]


# --- people's routes (serving.api.management_routes, serving.api.lifecycle_routes) -------------


class Me(BaseModel):
    """Who a token belongs to."""

    name: str
    role: str


class Overrides(BaseModel):
    """Overrides and expert ratings, oldest first."""

    overrides: list[OverrideView]


class CustomerHistory(BaseModel):
    """Every rating and people's event of a customer, in chain order."""

    customer_id: str
    history: list[HistoryEntry]


class StatusChanges(BaseModel):
    """Status changes that wait or waited for a second person, oldest first."""

    status_changes: list[ProposalState]


class CustomerWarnings(BaseModel):
    """A customer's early warnings, newest run first."""

    customer_id: str
    warnings: list[WarningView]


class Measures(BaseModel):
    """Emergency measures with their status now, oldest first."""

    measures: list[MeasureView]
