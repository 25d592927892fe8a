"""Relationship records in the sample portfolio: credit reviews and contract terms.

Officers review each customer on the cycle of its tier (the tier of a noisy view of its true
12-month PD at the review, as the bank's rating would show it) and record the next review date.
Most customers are reviewed on time (a few days early or late); a minority of relationships is
neglected: each of their reviews is late with some chance, by up to several months. A share of
the portfolio has a contract with covenants, written at the first review from the tier template
of that day (`features.covenants`), reporting no more often than the customer files statements:
as the customer's health moves, its ratios cross them.
Everything here draws from its own random stream (seed, 3, chunk), so the other tables are the
same with or without records.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit, logit

from features.covenants import CovenantConfig, template_terms
from features.schema import arrow_schema

REVIEWS_ARROW: Final[pa.Schema] = arrow_schema("reviews")
CONTRACT_TERMS_ARROW: Final[pa.Schema] = arrow_schema("contract_terms")
_VIEW_NOISE = 0.3
"""Noise of the officer's view of the true PD, in log-odds."""


class RecordGrade(BaseModel):
    """A non-default grade: PD upper bound and tier (review frequency, covenant template)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    upper: float
    tier: str
    review_days: int = Field(ge=1)


class RecordsSpec(BaseModel):
    """What the generator needs to write reviews and contract terms (built by the caller)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grades: tuple[RecordGrade, ...] = Field(min_length=2)
    covenants: CovenantConfig = CovenantConfig()
    terms_share: float = Field(default=0.6, ge=0.0, le=1.0)
    """Share of customers whose contract carries covenants."""
    neglected_share: float = Field(default=0.05, ge=0.0, le=1.0)
    """Share of relationships whose reviews are often late."""
    late_chance: float = Field(default=0.5, ge=0.0, le=1.0)
    """Chance a neglected relationship's review is late."""
    max_late_days: int = Field(default=150, ge=1)


def simulate_records(
    rng: np.random.Generator,
    spec: RecordsSpec,
    *,
    customer_ids: np.ndarray,
    onboarding: np.ndarray,
    pd12: np.ndarray,
    month_start: np.ndarray,
    end_day: int,
    default_day: np.ndarray,
    statement_months: np.ndarray,
) -> dict[str, pa.Table]:
    """Reviews and contract terms of one chunk of customers (see the module docstring).

    Args:
        rng: the records stream of the chunk.
        spec: grades with their tiers, covenant templates and lateness.
        customer_ids: customer id strings.
        onboarding: onboarding day number per customer.
        pd12: true 12-month PD, customers x months.
        month_start: day number of the first day of each month (n_months + 1 entries).
        end_day: extract date (day number).
        default_day: default day number per customer (a large number if none).
        statement_months: months each customer's statements cover (its reporting cycle); a
            contract never asks for reports more often than the customer files them.
    """
    n, n_months = pd12.shape
    uppers = np.array([g.upper for g in spec.grades])
    review = np.array([g.review_days for g in spec.grades], dtype=np.int64)
    tiers = np.array([g.tier for g in spec.grades], dtype=object)
    rows = np.arange(n)
    stop = np.minimum(default_day, end_day + 1)
    neglected = np.asarray(rng.random(n) < spec.neglected_share)
    with_terms = rng.random(n) < spec.terms_share

    day = np.maximum(onboarding, month_start[0]) + rng.integers(0, 30, n)
    first_tier = np.full(n, None, dtype=object)
    first_day = np.full(n, -1, dtype=np.int64)
    parts: list[dict[str, np.ndarray]] = []
    while True:
        active = day < stop
        if not active.any():
            break
        i = rows[active]
        d = day[active]
        m = np.clip(np.searchsorted(month_start[:-1], d, side="right") - 1, 0, n_months - 1)
        view = expit(logit(pd12[i, m]) + rng.normal(0.0, _VIEW_NOISE, i.size))
        g = np.searchsorted(uppers[:-1], view, side="right")
        due = d + review[g]
        outcome = np.select(
            [g >= len(uppers) - 1, tiers[g] == "restricted", tiers[g] == "high"],
            ["exit", "tighten", "watch"],
            "satisfactory",
        )
        parts.append({"customer": i, "review_date": d, "outcome": outcome, "next": due})
        new = first_day[i] < 0
        first_day[i[new]] = d[new]
        first_tier[i[new]] = tiers[g[new]]
        late = neglected[i] & (rng.random(i.size) < spec.late_chance)
        shift = np.where(
            late, rng.integers(15, spec.max_late_days + 1, i.size), -rng.integers(0, 8, i.size)
        )
        day[active] = np.maximum(due + shift, d + 1)

    if parts:
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        order = np.lexsort((merged["review_date"], merged["customer"]))
        reviews = pa.table(
            [
                pa.array(customer_ids[merged["customer"][order]], type=pa.string()),
                _timestamps(merged["review_date"][order]),
                pa.array(merged["outcome"][order].astype(str), type=pa.string()),
                _timestamps(merged["next"][order]),
            ],
            schema=REVIEWS_ARROW,
        )
    else:
        reviews = REVIEWS_ARROW.empty_table()
    signed = np.flatnonzero(with_terms & (first_day >= 0))
    terms = template_terms(
        [str(c) for c in customer_ids[signed]],
        [str(t) for t in first_tier[signed]],
        list(first_day[signed].astype("datetime64[D]").astype(object)),
        spec.covenants,
    )
    cycle = dict(zip(customer_ids, statement_months, strict=True))
    reporting = terms["covenant"] == "reporting_months"
    terms.loc[reporting, "threshold"] = np.maximum(
        terms.loc[reporting, "threshold"].to_numpy(),
        terms.loc[reporting, "customer_id"].map(cycle).to_numpy(dtype=float),
    )
    return {
        "reviews": reviews,
        "contract_terms": pa.Table.from_pandas(
            terms, schema=CONTRACT_TERMS_ARROW, preserve_index=False
        ),
    }


def _timestamps(days: np.ndarray) -> pa.Array:
    stamps = np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ns]")
    return pa.array(stamps, type=pa.timestamp("ns"))
