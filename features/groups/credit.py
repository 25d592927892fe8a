"""Credit features: facilities, utilisation and repayment behaviour known at ``as_of``.

Point in time, instalment by instalment: a payment counts only if ``paid_date <= as_of`` (paid
later means unpaid as of ``as_of``); instalments due after ``as_of`` are not yet due. An
instalment is settled when the payment known at ``as_of`` covers ``amount_due`` (1 fen
tolerance). Days past due (dpd) of a due instalment: ``paid_date - due_date`` if settled, else
``as_of - due_date`` (floored at 0). Windows ("12m", "3m") select instalments by ``due_date``
(see :func:`features.groups.common.months_back`).

Exposure is rebuilt from the schedule, never from ``credit_facilities.outstanding`` (a value at
the extract date, which would leak the future into a past ``as_of``): what remains scheduled
plus what is past due (due before ``as_of``) and unpaid. A facility is active when opened by
``as_of`` and either not yet matured or still carrying exposure. Instalments are assumed to
fall after their facility's opening date (the raw-data contract).

``days_since_last_delinquency`` is 0 while an instalment is past due and unpaid, else the days
since the payment that ended the latest delinquency; a customer never delinquent gets the
``never_delinquent_days`` sentinel (also the cap), so "longer ago" stays "less risky".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, cast

import polars as pl

from features.groups.common import (
    BY_CUSTOMER,
    ENGINE,
    FeatureConfig,
    FeatureFrames,
    aggregate_by,
    as_date,
    customer_base,
    days_between,
    fen,
    finish_group,
    safe_ratio,
    side_by_side,
    window_start,
)

FEATURES: tuple[str, ...] = (
    "active_facilities",
    "utilisation",
    "overdue_rate_12m",
    "max_dpd_3m",
    "max_dpd_12m",
    "dpd30_count_12m",
    "dpd60_count_12m",
    "dpd90_count_12m",
    "days_since_last_delinquency",
    "overdue_amount_to_limit",
    "facilities_opened_6m",
)

_DPD_LEVELS: tuple[int, ...] = (30, 60, 90)

_SETTLE_TOLERANCE = 0.01
"""Yuan: a payment within 1 fen of the amount due settles the instalment."""


@dataclass(frozen=True)
class _Exprs:
    instalment: tuple[pl.Expr | str, ...]
    """Key columns by name, then expressions."""
    opened: pl.Expr
    facility: tuple[pl.Expr, ...]
    behaviour: tuple[pl.Expr, ...]


@lru_cache(maxsize=256)
def _exprs(as_of: date, by: tuple[str, ...]) -> _Exprs:
    """The group's expressions for one (as_of, keys), built once and reused."""
    paid_known = pl.col("paid_date").is_not_null() & (pl.col("paid_date") <= as_of)
    paid = pl.when(paid_known).then(fen("amount_paid")).otherwise(0)
    unpaid = (fen("amount_due") - paid).clip(lower_bound=0)
    settled = paid_known & (pl.col("amount_paid") >= pl.col("amount_due") - _SETTLE_TOLERANCE)
    is_due = pl.col("due_date") <= as_of
    late_days = (pl.col("paid_date") - pl.col("due_date")).dt.total_days().cast(pl.Float64)
    dpd = (
        pl.when(~is_due)
        .then(None)
        .when(settled)
        .then(late_days.clip(lower_bound=0.0))
        .otherwise(days_between("due_date", as_of).clip(lower_bound=0.0))
    )
    since = pl.when(settled).then(days_between("paid_date", as_of)).otherwise(0.0)
    # dpd > 0, without evaluating dpd again: paid late, or due before as_of and not settled.
    delinquent = is_due & pl.when(settled).then(pl.col("paid_date") > pl.col("due_date")).otherwise(
        pl.col("due_date") < as_of
    )
    # ``is_due & months_back(due_date) < n`` as a range against constants (same rows).
    instalment: tuple[pl.Expr | str, ...] = (
        *by,
        "facility_id",
        unpaid.alias("outstanding"),
        pl.when(pl.col("due_date") < as_of).then(unpaid).otherwise(0).alias("overdue_amount"),
        dpd.alias("dpd"),
        (is_due & (pl.col("due_date") >= window_start(as_of, 12))).alias("in_12m"),
        (is_due & (pl.col("due_date") >= window_start(as_of, 3))).alias("in_3m"),
        pl.when(delinquent).then(since).otherwise(None).alias("since"),
    )
    active = (pl.col("maturity_date") > as_of) | (pl.col("outstanding") > 0)
    facility = (
        active.sum().alias("active_facilities"),
        pl.when(active).then(fen("limit")).otherwise(0).sum().alias("limit"),
        pl.when(active).then(pl.col("outstanding")).otherwise(0).sum(),
        pl.when(active).then(pl.col("overdue_amount")).otherwise(0).sum(),
        (pl.col("opened") >= window_start(as_of, 6)).sum().alias("facilities_opened_6m"),
    )
    dpd_12m = pl.when(pl.col("in_12m")).then(pl.col("dpd"))
    behaviour = (
        pl.col("in_12m").sum().alias("due_12m"),
        (dpd_12m > 0).sum().alias("overdue_12m"),
        pl.when(pl.col("in_3m")).then(pl.col("dpd")).max().alias("max_dpd_3m"),
        dpd_12m.max().alias("max_dpd_12m"),
        *((dpd_12m >= days).sum().alias(f"dpd{days}_count_12m") for days in _DPD_LEVELS),
        pl.col("since").min().alias("since"),
    )
    return _Exprs(
        instalment=instalment,
        opened=pl.col("opened") <= as_of,
        facility=facility,
        behaviour=behaviour,
    )


def _query(
    frames: FeatureFrames, as_of: date, by: tuple[str, ...], lazy: bool
) -> pl.DataFrame | pl.LazyFrame:
    e = _exprs(as_of, by)
    repayments = frames.repayments.lazy() if lazy else frames.repayments
    facilities = frames.credit_facilities.lazy() if lazy else frames.credit_facilities
    instalments = repayments.select(e.instalment)
    per_facility = instalments.group_by("facility_id", maintain_order=True).agg(
        pl.col("outstanding").sum(), pl.col("overdue_amount").sum()
    )
    # Both sides are lazy or both eager (the one ``lazy`` flag): a union the checker cannot pair.
    opened = facilities.filter(e.opened).join(
        cast(Any, per_facility), on="facility_id", how="left", maintain_order="left"
    )
    return side_by_side(
        [aggregate_by(opened, by, e.facility), aggregate_by(instalments, by, e.behaviour)],
        by,
        how="full",
    )


def plan(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    by: tuple[str, ...] = BY_CUSTOMER,
) -> pl.LazyFrame:
    """The lazy query of :func:`aggregate` (the batch path)."""
    del config
    return _query(frames, as_of, by, lazy=True)  # type: ignore[return-value]  # lazy in, lazy out


def aggregate(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    *,
    by: tuple[str, ...] = BY_CUSTOMER,
) -> pl.DataFrame:
    """Per customer with facilities or instalments: exposure, limits and dpd statistics.

    With ``by=()`` the frames hold one customer's rows and the result is its one row (no key),
    computed eagerly with the same expressions (the online path).
    """
    if by:
        return plan(frames, as_of, config, by).collect(engine=ENGINE)
    return _query(frames, as_of, by, lazy=False)  # type: ignore[return-value]  # eager in, eager out


def finish(as_of: date, config: FeatureConfig) -> list[pl.Expr]:
    """Expressions turning the joined aggregates into :data:`FEATURES`."""
    return list(_finish(as_of, config))


@lru_cache(maxsize=256)
def _finish(as_of: date, config: FeatureConfig) -> tuple[pl.Expr, ...]:
    del as_of
    never = config.never_delinquent_days
    limit = pl.col("limit")
    return (
        pl.col("active_facilities").fill_null(0),
        safe_ratio(pl.col("outstanding"), limit, 0.0, 10.0, positive_den=True).alias("utilisation"),
        safe_ratio(pl.col("overdue_12m"), pl.col("due_12m"), 0.0, 1.0, positive_den=True).alias(
            "overdue_rate_12m"
        ),
        pl.col("max_dpd_3m"),
        pl.col("max_dpd_12m"),
        *(pl.col(f"dpd{days}_count_12m").fill_null(0) for days in _DPD_LEVELS),
        pl.col("since")
        .fill_null(never)
        .clip(upper_bound=never)
        .alias("days_since_last_delinquency"),
        safe_ratio(pl.col("overdue_amount"), limit, 0.0, 10.0, positive_den=True).alias(
            "overdue_amount_to_limit"
        ),
        pl.col("facilities_opened_6m").fill_null(0),
    )


def compute(
    frames: FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """Credit features for every customer onboarded by ``as_of``.

    Returns:
        One row per customer (sorted): ``customer_id`` then :data:`FEATURES` (all Float64).
        Counts are 0 and ratios null for a customer without facilities or instalments due.
    """
    config = config or FeatureConfig()
    as_of = as_date(as_of)
    return finish_group(
        customer_base(frames, as_of), aggregate(frames, as_of, config), finish(as_of, config)
    )
