"""Human judgement in the sample portfolio: assessments and overrides from the latent health.

Analysts review each customer on a cycle set by the tier of its grade. At each review they
answer the questionnaire and sometimes propose an override. Their answers carry signal and
noise: the customer's long-run quality (its mean health: management, governance, market
position) and where its health stands against it now, blurred by noise. Most analysts are
skilled: they propose an override when their view of the PD a few months ahead disagrees with
the grade by two notches or more. One analyst, who covers a favoured industry, is biased: for
its customers they answer too kindly and upgrade weak ones by two or three notches whatever
their health.

The "model grade" recorded with each review is a noisy view of the true 12-month PD (the
generator has no model). Everything here draws from its own random stream (seed, 2, chunk),
so the six contract tables are the same with or without judgement.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit, logit

from features.schema import arrow_schema

ASSESSMENTS_ARROW: Final[pa.Schema] = arrow_schema("assessments")
OVERRIDES_ARROW: Final[pa.Schema] = arrow_schema("overrides")

BIASED_ANALYST: Final[str] = "AN03"
"""The analyst who favours one industry."""
_ANALYSTS = tuple(f"AN{i:02d}" for i in range(1, 9))
_APPROVERS = ("AP01", "AP02", "AP03", "AP04")
_SENIOR_APPROVERS = ("SA01", "SA02")
_MIN_REVIEW_DAYS = 90
MODEL_NOISE: Final[float] = 0.8
"""Noise of the stand-in model grade, in log-odds of the true PD (a model sees lagged, noisy
records; the analysts see the customer now)."""
_QUALITY_WEIGHT = 1.0
_CURRENT_WEIGHT = 0.5
_ANSWER_NOISE = 0.4
"""An answer's latent: weights on the customer's long-run quality (its mean health) and on where
its health stands against it now; and the noise."""
_VIEW_AHEAD_MONTHS = 3
"""A skilled analyst's override follows the true PD this many months ahead, blurred."""
_FAVOURED_COVERAGE = 0.6
"""Share of the favoured industry's reviews the biased analyst (who covers it) makes."""


class SpecFactor(BaseModel):
    """A questionnaire factor as the generator needs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    weight: float = Field(gt=0.0)
    answers: tuple[str, ...] = Field(min_length=2)
    """Answer codes, best first."""
    scores: tuple[float, ...]


class SpecGrade(BaseModel):
    """A non-default grade: its PD upper bound and its tier's review frequency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    upper: float
    review_days: int = Field(ge=1)


class JudgementSpec(BaseModel):
    """What the generator needs of the rating's judgement settings (built by the caller)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    questionnaire_version: str
    factors: tuple[SpecFactor, ...] = Field(min_length=1)
    steps: tuple[tuple[float, int], ...] = Field(min_length=1)
    """(min score, notches), highest first."""
    grades: tuple[SpecGrade, ...] = Field(min_length=2)
    reason_codes: tuple[str, ...] = Field(min_length=1)
    """Codes skilled analysts give; the biased analyst gives the first."""
    max_approver_notches: int = Field(ge=1)
    pending_days: int = Field(ge=1)
    favoured_industry: str = "real_estate"
    override_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    """Chance a skilled analyst proposes when the forward view differs by two notches or more."""


def _notches(score: np.ndarray, steps: tuple[tuple[float, int], ...]) -> np.ndarray:
    result = np.full(score.shape, steps[-1][1], dtype=np.int64)
    for min_score, notches in reversed(steps):
        result = np.where(score >= min_score, notches, result)
    return result


def _grade_index(pd: np.ndarray, uppers: np.ndarray) -> np.ndarray:
    return np.searchsorted(uppers[:-1], pd, side="right").astype(np.int64)


def simulate_judgement(
    rng: np.random.Generator,
    spec: JudgementSpec,
    *,
    numbers: np.ndarray,
    customer_ids: np.ndarray,
    industry: np.ndarray,
    onboarding: np.ndarray,
    health: np.ndarray,
    quality: np.ndarray,
    pd12: np.ndarray,
    month_start: np.ndarray,
    end_day: int,
    default_day: np.ndarray,
    industries: tuple[str, ...],
) -> dict[str, pa.Table]:
    """Assessments and overrides of one chunk of customers (see the module docstring).

    Args:
        rng: the judgement stream of the chunk.
        spec: questionnaire, grades and approval rules.
        numbers: global customer numbers (for stable ids).
        customer_ids: customer id strings.
        industry: industry code per customer (index into ``industries``).
        onboarding: onboarding day number per customer.
        health: latent health, customers x months.
        quality: the customer's long-run mean health (what management, governance and market
            position reflect).
        pd12: true 12-month PD, customers x months.
        month_start: day number of the first day of each month (n_months + 1 entries).
        end_day: extract date (day number).
        default_day: default day number per customer (a large number if none).
        industries: industry codes.
    """
    n, n_months = health.shape
    uppers = np.array([g.upper for g in spec.grades])
    review = np.array([g.review_days for g in spec.grades], dtype=np.int64)
    names = np.array([g.name for g in spec.grades], dtype=object)
    weights = np.array([f.weight for f in spec.factors])
    favoured = industry == industries.index(spec.favoured_industry)
    rows = np.arange(n)
    stop = np.minimum(default_day, end_day + 1)

    day = np.maximum(onboarding, month_start[0]) + rng.integers(30, 200, n)
    assessments: list[dict[str, np.ndarray]] = []
    overrides: list[dict[str, np.ndarray]] = []
    review_round = 0
    while True:
        active = day < stop
        if not active.any():
            break
        i = rows[active]
        d = day[active]
        m = np.clip(np.searchsorted(month_start[:-1], d, side="right") - 1, 0, n_months - 1)
        h_now = health[i, m]
        analyst = np.where(
            favoured[i] & (rng.random(i.size) < _FAVOURED_COVERAGE),
            _ANALYSTS.index(BIASED_ANALYST),
            rng.integers(0, len(_ANALYSTS), i.size),
        )
        biased = (np.asarray(_ANALYSTS)[analyst] == BIASED_ANALYST) & favoured[i]
        model_pd = expit(logit(pd12[i, m]) + rng.normal(0.0, MODEL_NOISE, i.size))
        model_idx = _grade_index(model_pd, uppers)

        levels = np.empty((i.size, len(spec.factors)), dtype=np.int64)
        score = np.zeros(i.size)
        for j, factor in enumerate(spec.factors):
            z = (
                _QUALITY_WEIGHT * (quality[i] + 0.2)
                + _CURRENT_WEIGHT * (h_now - quality[i])
                + rng.normal(0.0, _ANSWER_NOISE, i.size)
            )
            z = z + np.where(biased, 1.5, 0.0)
            k = len(factor.answers)
            cuts = np.linspace(0.9, -0.9, k - 1)
            levels[:, j] = (z[:, None] <= cuts[None, :]).sum(axis=1)
            score += weights[j] * np.asarray(factor.scores)[levels[:, j]]
        score /= weights.sum()
        base_idx = np.clip(model_idx - _notches(score, spec.steps), 0, len(uppers) - 1)
        valid = d + review[base_idx]
        ids = np.array([f"A{c:08d}{review_round:03d}" for c in numbers[i]], dtype=object)
        for j, factor in enumerate(spec.factors):
            assessments.append(
                {
                    "customer": i,
                    "round": np.full(i.size, review_round),
                    "factor_no": np.full(i.size, j),
                    "assessment_id": ids,
                    "customer_id": customer_ids[i],
                    "assessed_on": d,
                    "valid_until": valid,
                    "analyst": np.asarray(_ANALYSTS, dtype=object)[analyst],
                    "factor": np.full(i.size, factor.code, dtype=object),
                    "answer": np.asarray(factor.answers, dtype=object)[levels[:, j]],
                }
            )

        forward_m = np.minimum(m + _VIEW_AHEAD_MONTHS, n_months - 1)
        view = expit(logit(pd12[i, forward_m]) + rng.normal(0.0, 0.3, i.size))
        view_idx = _grade_index(view, uppers)
        gap = view_idx - base_idx
        skilled_propose = (np.abs(gap) >= 2) & (rng.random(i.size) < spec.override_rate)
        biased_propose = biased & (base_idx >= 3) & (rng.random(i.size) < 0.6)
        propose = np.where(biased, biased_propose, skilled_propose)
        upgrade = rng.integers(2, 4, i.size)
        proposed_idx = np.where(
            biased, np.maximum(base_idx - upgrade, 0), base_idx + np.clip(gap, -4, 4)
        )
        propose &= proposed_idx != base_idx
        if propose.any():
            p = np.flatnonzero(propose)
            k = p.size
            notches = np.abs(base_idx[p] - proposed_idx[p])
            senior = notches > spec.max_approver_notches
            approver = np.where(
                senior,
                np.asarray(_SENIOR_APPROVERS, dtype=object)[
                    rng.integers(0, len(_SENIOR_APPROVERS), k)
                ],
                np.asarray(_APPROVERS, dtype=object)[rng.integers(0, len(_APPROVERS), k)],
            )
            u = rng.random(k)
            decided = d[p] + rng.integers(1, 15, k)
            outcome = np.where(u < 0.8, "approved", np.where(u < 0.9, "rejected", "undecided"))
            known = decided <= end_day
            status = np.where(
                (outcome == "undecided") | ~known,
                np.where(d[p] + spec.pending_days <= end_day, "expired", "proposed"),
                outcome,
            ).astype(object)
            has_decision = np.isin(status, ["approved", "rejected"])
            reason = np.where(
                biased[p],
                spec.reason_codes[0],
                np.asarray(spec.reason_codes, dtype=object)[
                    rng.integers(0, len(spec.reason_codes), k)
                ],
            )
            overrides.append(
                {
                    "customer": i[p],
                    "round": np.full(k, review_round),
                    "factor_no": np.zeros(k, dtype=np.int64),
                    "override_id": np.array(
                        [f"O{c:08d}{review_round:03d}" for c in numbers[i[p]]], dtype=object
                    ),
                    "customer_id": customer_ids[i[p]],
                    "kind": np.full(k, "override", dtype=object),
                    "proposed_on": d[p],
                    "proposer": np.asarray(_ANALYSTS, dtype=object)[analyst[p]],
                    "model_grade": names[model_idx[p]],
                    "base_grade": names[base_idx[p]],
                    "proposed_grade": names[proposed_idx[p]],
                    "reason_code": reason.astype(object),
                    "status": status,
                    "approver": np.where(has_decision, approver, np.array(None, dtype=object)),
                    "decided_on": np.where(has_decision, decided, -1),
                    "valid_until": np.where(
                        status == "approved", decided + review[proposed_idx[p]], -1
                    ),
                }
            )
        day[active] = d + np.maximum(review[base_idx], _MIN_REVIEW_DAYS)
        review_round += 1

    return {
        "assessments": _table(assessments, ASSESSMENTS_ARROW, spec.questionnaire_version),
        "overrides": _table(overrides, OVERRIDES_ARROW, spec.questionnaire_version),
    }


def _timestamps(days: np.ndarray) -> pa.Array:
    values = np.asarray(days, dtype=np.int64)
    stamps = values.astype("datetime64[D]").astype("datetime64[ns]")
    return pa.array(stamps, type=pa.timestamp("ns"), mask=values < 0)


def _table(parts: list[dict[str, np.ndarray]], schema: pa.Schema, version: str) -> pa.Table:
    if not parts:
        return schema.empty_table()
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    order = np.lexsort((merged["factor_no"], merged["round"], merged["customer"]))
    columns = []
    for field in schema:
        if field.name == "questionnaire_version":
            columns.append(pa.array([version] * order.size, type=pa.string()))
        elif pa.types.is_timestamp(field.type):
            columns.append(_timestamps(merged[field.name][order]))
        else:
            columns.append(pa.array(list(merged[field.name][order]), type=pa.string()))
    return pa.table(columns, schema=schema)
