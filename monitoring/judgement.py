"""Monitoring of human judgement (Basel II para 428, EU 2022/439 Art. 39).

From a rating run (model PD and grade per customer) and the judgement tables as known at its
date, the rating chain (`rating.chain.rate_customer`) gives each customer's final grade. On it:

* **activity**: override rate by grade and by analyst, direction and size in notches, the share
  of proposals pending and expired, customers with insufficient data;
* **outcomes** (for a run whose 12-month window has closed): realised default rate of the
  customers overridden up, down and not at all, against their model and final PDs (the final
  PD is the PD nearest the model's within the final grade's band);
* **marginal contribution** of judgement: discrimination (AUC, accuracy ratio) of the model
  grade and of the final grade on the same customers and outcomes, with a paired, seeded
  bootstrap confidence interval of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from features.judgement import JudgementTables
from features.metrics import auc
from monitoring.config import JudgementMonitoringConfig
from monitoring.outcomes import realised_defaults
from rating.chain import ModelDecision, rate_customer
from rating.judgement import (
    Assessment,
    JudgementConfig,
    JudgementError,
    Override,
    OverrideStatus,
    override_status_at,
    score_assessment,
)
from rating.policy import HardRuleHit, RatingPolicy
from rating.scale import MasterScale
from rating.sufficiency import Sufficiency, sufficiency_from_row

JUDGED_COLUMNS: Final[list[str]] = [
    "customer_id",
    "industry",
    "pd",
    "in_default",
    "model_grade",
    "assessment_id",
    "analyst",
    "qualitative_notches",
    "adjusted_grade",
    "override_id",
    "proposer",
    "override_notches",
    "direction",
    "final_grade",
    "final_pd",
    "tier",
    "insufficient_data",
    "provisional",
]
"""Columns of `judge_ratings`: one row per customer with every step of the chain."""

LAPSED: Final[str] = "lapsed"
"""Activity status of an approved override whose validity ended (``expired`` is a proposal
nobody decided on in time)."""

DIRECTIONS: Final[tuple[str, ...]] = ("up", "down", "none")
"""Override direction: up improves the grade (fewer risk), down worsens it."""


@dataclass(frozen=True)
class JudgementFindings:
    """What the monitoring of human judgement found at one run."""

    as_of: date
    judged: pd.DataFrame
    """`JUDGED_COLUMNS` at the run's date."""
    by_grade: pd.DataFrame
    by_analyst: pd.DataFrame
    size: pd.DataFrame
    """Overrides in force by signed notches."""
    status: dict[str, float]
    """Proposals of the activity window by status at the run's date, and shares."""
    insufficient: int
    outcomes_as_of: date | None = None
    outcomes: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per direction: customers, defaults, default rate, mean model and final PD."""
    discrimination: pd.DataFrame = field(default_factory=pd.DataFrame)
    """AUC and accuracy ratio of the model grade, the final grade and their difference."""
    notes: list[str] = field(default_factory=list)


def _final_pd(pd_: float, grade: str, scale: MasterScale) -> float:
    """The PD nearest the model's within the final grade's band (1 for the default grade)."""
    if grade == scale.default_grade:
        return 1.0
    band = scale.grades[scale.index_of(grade)]
    return min(max(pd_, band.lower), band.upper)


def _valid_assessments(
    assessments: pd.DataFrame, as_of: date, config: JudgementConfig, notes: list[str]
) -> dict[str, Assessment]:
    """The latest assessment valid at ``as_of`` per customer, scored."""
    day = pd.Timestamp(as_of)
    frame = assessments[
        (pd.to_datetime(assessments["assessed_on"]) <= day)
        & (pd.to_datetime(assessments["valid_until"]) > day)
    ]
    if frame.empty:
        return {}
    heads = (
        frame.drop_duplicates("assessment_id")
        .sort_values(["customer_id", "assessed_on", "assessment_id"])
        .drop_duplicates("customer_id", keep="last")
    )
    answers = frame[frame["assessment_id"].isin(heads["assessment_id"])]
    grouped = {
        key: dict(zip(group["factor"], group["answer"], strict=True))
        for key, group in answers.groupby("assessment_id", sort=False)
    }
    result: dict[str, Assessment] = {}
    skipped: dict[str, int] = {}
    for row in heads.itertuples(index=False):
        if row.questionnaire_version != config.qualitative.version:
            skipped[row.questionnaire_version] = skipped.get(row.questionnaire_version, 0) + 1
            continue
        try:
            scored = score_assessment(grouped[row.assessment_id], config.qualitative)
        except JudgementError as error:
            notes.append(f"assessment {row.assessment_id} not scored: {error}")
            continue
        result[str(row.customer_id)] = Assessment(
            assessment_id=str(row.assessment_id),
            customer_id=str(row.customer_id),
            analyst=str(row.analyst),
            assessed_on=pd.Timestamp(row.assessed_on).date(),
            valid_until=pd.Timestamp(row.valid_until).date(),
            questionnaire_version=row.questionnaire_version,
            notches=scored.notches,
        )
    for version, count in skipped.items():
        notes.append(
            f"{count} valid assessment(s) under questionnaire {version}, not the configured "
            f"{config.qualitative.version}: not applied"
        )
    return result


def _overrides(frame: pd.DataFrame) -> list[Override]:
    def day(value: object) -> date | None:
        return None if pd.isna(value) else pd.Timestamp(value).date()

    return [
        Override(
            override_id=str(r.override_id),
            customer_id=str(r.customer_id),
            kind=r.kind,
            proposer=str(r.proposer),
            proposed_on=pd.Timestamp(r.proposed_on).date(),
            base_grade=str(r.base_grade),
            proposed_grade=str(r.proposed_grade),
            reason_code=str(r.reason_code),
            status=r.status,
            approver=None if pd.isna(r.approver) else str(r.approver),
            decided_on=day(r.decided_on),
            valid_until=day(r.valid_until),
        )
        for r in frame.itertuples(index=False)
    ]


def _valid_overrides(overrides: list[Override], as_of: date) -> dict[str, Override]:
    """The latest override approved and valid at ``as_of`` per customer."""
    valid = [
        o
        for o in overrides
        if o.status is OverrideStatus.APPROVED
        and o.decided_on is not None
        and o.decided_on <= as_of
        and o.valid_until is not None
        and as_of < o.valid_until
    ]
    valid.sort(key=lambda o: (o.customer_id, o.decided_on, o.override_id))
    return {o.customer_id: o for o in valid}


def judge_ratings(
    ratings: pd.DataFrame,
    judgement: JudgementTables,
    as_of: date,
    scale: MasterScale,
    policy: RatingPolicy,
    config: JudgementConfig,
    sufficiency: pd.DataFrame | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Every customer of a rating run through the rating chain at ``as_of``.

    Args:
        ratings: the run's ratings (``customer_id``, ``pd``, ``grade``, ``in_default``,
            ``hard_rules`` as ``;``-joined codes; ``industry`` optional).
        judgement: assessments and overrides (only those known at ``as_of`` are used).
        as_of: the run's date.
        scale: master scale of the run's model.
        policy: tiers and hard rules of the run's model.
        config: questionnaire, override and data-sufficiency settings.
        sufficiency: `rating.sufficiency.data_sufficiency` of the customers (None: all
            sufficient).
        notes: receives a line for every assessment that could not be applied.

    Returns:
        `JUDGED_COLUMNS`, in the order of ``ratings``.
    """
    notes = notes if notes is not None else []
    assessments = _valid_assessments(judgement.assessments, as_of, config, notes)
    known = judgement.overrides[
        pd.to_datetime(judgement.overrides["proposed_on"]) <= pd.Timestamp(as_of)
    ]
    overrides = _valid_overrides(_overrides(known), as_of)
    rules = {r.code: HardRuleHit(**r.model_dump()) for r in policy.hard_rules}
    enough: dict[str, Sufficiency] = {}
    if sufficiency is not None:
        for _, row in sufficiency[~sufficiency["sufficient"]].iterrows():
            enough[str(row["customer_id"])] = sufficiency_from_row(row, config.data_sufficiency)
    industry = ratings["industry"] if "industry" in ratings else pd.Series([""] * len(ratings))
    rows = []
    for r, sector in zip(ratings.itertuples(index=False), industry, strict=True):
        customer = str(r.customer_id)
        codes = [c for c in str(r.hard_rules or "").split(";") if c]
        rated = rate_customer(
            ModelDecision(
                customer_id=customer,
                pd=float(r.pd),
                model_grade=str(r.grade),
                hard_rules=tuple(rules[c] for c in codes if c in rules),
                in_default=bool(r.in_default),
                sufficiency=enough.get(customer, Sufficiency()),
            ),
            scale,
            policy,
            assessment=assessments.get(customer),
            override=overrides.get(customer),
            sufficiency=config.data_sufficiency,
        )
        moved = scale.index_of(rated.adjusted_grade) - scale.index_of(rated.final_grade)
        applied = rated.override
        rows.append(
            {
                "customer_id": customer,
                "industry": sector,
                "pd": float(r.pd),
                "in_default": rated.in_default,
                "model_grade": rated.model_grade,
                "assessment_id": rated.assessment_id,
                "analyst": assessments[customer].analyst if rated.assessment_id else None,
                "qualitative_notches": rated.qualitative_notches,
                "adjusted_grade": rated.adjusted_grade,
                "override_id": applied.override_id if applied else None,
                "proposer": overrides[customer].proposer if applied else None,
                "override_notches": moved if applied else 0,
                "direction": "none" if not applied else "up" if moved > 0 else "down",
                "final_grade": rated.final_grade,
                "final_pd": _final_pd(float(r.pd), rated.final_grade, scale),
                "tier": rated.tier.value,
                "insufficient_data": rated.insufficient_data,
                "provisional": rated.provisional,
            }
        )
    return pd.DataFrame(rows, columns=JUDGED_COLUMNS)


def _rates(judged: pd.DataFrame, key: str) -> pd.DataFrame:
    frame = judged.assign(
        overridden=judged["direction"] != "none",
        up=judged["direction"] == "up",
        down=judged["direction"] == "down",
        assessed=judged["assessment_id"].notna(),
    )
    table = (
        frame.groupby(key, sort=True)
        .agg(
            customers=("customer_id", "size"),
            assessed=("assessed", "sum"),
            mean_notches_qualitative=("qualitative_notches", "mean"),
            overridden=("overridden", "sum"),
            up=("up", "sum"),
            down=("down", "sum"),
        )
        .reset_index()
    )
    table["override_rate"] = table["overridden"] / table["customers"]
    return table


def _analysts(
    judged: pd.DataFrame,
    assessments: pd.DataFrame,
    overrides: list[Override],
    as_of: date,
    config: JudgementConfig,
    window_months: int,
    scale: MasterScale,
) -> tuple[pd.DataFrame, dict[str, float]]:
    start = (pd.Timestamp(as_of) - pd.DateOffset(months=window_months)).date()
    recent = [o for o in overrides if start < o.proposed_on <= as_of]
    rows = []
    for o in recent:
        status = override_status_at(o, as_of, config.overrides).value
        decided = o.decided_on is not None and o.decided_on <= as_of
        if status == OverrideStatus.EXPIRED and o.status is OverrideStatus.APPROVED and decided:
            status = LAPSED
        notches = scale.index_of(o.base_grade) - scale.index_of(o.proposed_grade)
        rows.append({"proposer": o.proposer, "status": status, "notches": notches})
    proposals = pd.DataFrame(rows, columns=["proposer", "status", "notches"])
    counts = proposals["status"].value_counts()
    total = len(proposals)
    status_counts: dict[str, float] = {"proposals": float(total)}
    for value in (*(s.value for s in OverrideStatus), LAPSED):
        n = int(counts.get(value, 0))
        status_counts[value] = float(n)
        status_counts[f"{value}_share"] = n / total if total else float("nan")
    made = assessments[
        (pd.to_datetime(assessments["assessed_on"]) > pd.Timestamp(start))
        & (pd.to_datetime(assessments["assessed_on"]) <= pd.Timestamp(as_of))
    ]
    assessed = made.drop_duplicates("assessment_id").groupby("analyst").size().rename("assessments")
    in_force = (
        judged.dropna(subset=["proposer"])
        .groupby("proposer")
        .agg(
            in_force=("customer_id", "size"),
            up_in_force=("direction", lambda d: int((d == "up").sum())),
            mean_notches_in_force=("override_notches", "mean"),
        )
    )
    by_proposer = (
        proposals.assign(
            up=proposals["notches"] > 0,
            approved=proposals["status"] == OverrideStatus.APPROVED.value,
            pending=proposals["status"] == OverrideStatus.PROPOSED.value,
            expired=proposals["status"] == OverrideStatus.EXPIRED.value,
            size=proposals["notches"].abs(),
        )
        .groupby("proposer")
        .agg(
            proposals=("status", "size"),
            approved=("approved", "sum"),
            pending=("pending", "sum"),
            expired=("expired", "sum"),
            up_share=("up", "mean"),
            mean_size=("size", "mean"),
        )
    )
    table = (
        pd.concat([assessed, by_proposer, in_force], axis=1)
        .rename_axis("analyst")
        .reset_index()
        .fillna({"assessments": 0, "proposals": 0, "in_force": 0})
    )
    table["override_rate"] = table["proposals"] / table["assessments"].where(
        table["assessments"] > 0
    )
    return table.sort_values("analyst").reset_index(drop=True), status_counts


def discrimination(
    y: np.ndarray,
    model_grade_index: np.ndarray,
    final_grade_index: np.ndarray,
    config: JudgementMonitoringConfig | None = None,
) -> pd.DataFrame:
    """AUC and accuracy ratio of the model grade, the final grade and their difference.

    The grade index is the score (higher = riskier); the confidence intervals come from a
    paired bootstrap of the customers (seeded), percentile method.

    Returns:
        Rows ``model``, ``final``, ``difference`` (final minus model) with ``auc``,
        ``accuracy_ratio``, ``ci_low``, ``ci_high`` (of the AUC) and ``customers``, ``defaults``.
    """
    config = config or JudgementMonitoringConfig()
    y = np.asarray(y, dtype=bool)
    model = np.asarray(model_grade_index, dtype=np.float64)
    final = np.asarray(final_grade_index, dtype=np.float64)
    point = np.array([auc(y, model), auc(y, final)])
    rng = np.random.default_rng(config.seed)
    n = y.size
    samples = np.full((config.bootstrap, 2), np.nan)
    if n and 0 < y.sum() < n:
        for b in range(config.bootstrap):
            pick = rng.integers(0, n, n)
            samples[b] = auc(y[pick], model[pick]), auc(y[pick], final[pick])
    diffs = samples[:, 1] - samples[:, 0]
    tail = 100 * config.alpha / 2
    rows = []
    for name, value, draws in (
        ("model", point[0], samples[:, 0]),
        ("final", point[1], samples[:, 1]),
        ("difference", point[1] - point[0], diffs),
    ):
        finite = draws[np.isfinite(draws)]
        low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
        rows.append(
            {
                "grade": name,
                "auc": float(value),
                "accuracy_ratio": float(2 * value - (0 if name == "difference" else 1)),
                "ci_low": float(low),
                "ci_high": float(high),
                "customers": int(n),
                "defaults": int(y.sum()),
            }
        )
    return pd.DataFrame(rows)


def judgement_outcomes(
    judged: pd.DataFrame,
    as_of: date,
    defaults: pd.DataFrame,
    horizon_months: int,
    scale: MasterScale,
    config: JudgementMonitoringConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Realised outcomes of the judgement in force at ``as_of`` (performing customers).

    Returns:
        Per override direction (customers, defaults, default_rate, mean_model_pd,
        mean_final_pd) and the `discrimination` table.
    """
    performing = judged[~judged["in_default"].astype(bool)].reset_index(drop=True)
    y = realised_defaults(performing["customer_id"], as_of, defaults, horizon_months)
    frame = performing.assign(defaulted=y)
    by_direction = (
        frame.groupby("direction")
        .agg(
            customers=("customer_id", "size"),
            defaults=("defaulted", "sum"),
            mean_model_pd=("pd", "mean"),
            mean_final_pd=("final_pd", "mean"),
        )
        .reindex(list(DIRECTIONS))
        .dropna(subset=["customers"])
        .reset_index()
    )
    by_direction["default_rate"] = by_direction["defaults"] / by_direction["customers"]
    index = {name: i for i, name in enumerate(scale.names)}
    table = discrimination(
        y,
        performing["model_grade"].map(index).to_numpy(),
        performing["final_grade"].map(index).to_numpy(),
        config,
    )
    return by_direction, table


def monitor_judgement(
    ratings: pd.DataFrame,
    as_of: date,
    judgement: JudgementTables,
    scale: MasterScale,
    policy: RatingPolicy,
    config: JudgementConfig,
    monitoring: JudgementMonitoringConfig | None = None,
    *,
    sufficiency: pd.DataFrame | None = None,
    past: tuple[pd.DataFrame, date] | None = None,
    defaults: pd.DataFrame | None = None,
    horizon_months: int = 12,
) -> JudgementFindings:
    """Activity of human judgement at ``as_of`` and, given a past run, its outcomes.

    Args:
        ratings: this run's ratings (see `judge_ratings`).
        as_of: this run's date.
        judgement: the judgement tables (records after a date are ignored at that date).
        scale: master scale.
        policy: tiers and hard rules.
        config: judgement settings.
        monitoring: activity window and bootstrap settings.
        sufficiency: data sufficiency of this run's customers.
        past: ratings and date of a run whose outcome window has closed.
        defaults: the raw ``defaults`` table (needed with ``past``).
        horizon_months: outcome window.
    """
    monitoring = monitoring or JudgementMonitoringConfig()
    notes: list[str] = []
    judged = judge_ratings(ratings, judgement, as_of, scale, policy, config, sufficiency, notes)
    known = judgement.overrides[
        pd.to_datetime(judgement.overrides["proposed_on"]) <= pd.Timestamp(as_of)
    ]
    by_analyst, status = _analysts(
        judged,
        judgement.assessments,
        _overrides(known),
        as_of,
        config,
        monitoring.activity_months,
        scale,
    )
    overridden = judged[judged["direction"] != "none"]
    size = (
        overridden.groupby("override_notches")
        .size()
        .rename("overrides")
        .rename_axis("notches")
        .reset_index()
    )
    findings = JudgementFindings(
        as_of=as_of,
        judged=judged,
        by_grade=_rates(judged, "adjusted_grade").rename(columns={"adjusted_grade": "grade"}),
        by_analyst=by_analyst,
        size=size,
        status=status,
        insufficient=int(judged["insufficient_data"].sum()),
        notes=notes,
    )
    if past is None or defaults is None:
        return findings
    past_ratings, past_as_of = past
    past_judged = judge_ratings(past_ratings, judgement, past_as_of, scale, policy, config)
    outcomes, table = judgement_outcomes(
        past_judged, past_as_of, defaults, horizon_months, scale, monitoring
    )
    return JudgementFindings(
        **{
            **findings.__dict__,
            "outcomes_as_of": past_as_of,
            "outcomes": outcomes,
            "discrimination": table,
        }
    )
