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

from datetime import date

import polars as pl

from features.groups.common import (
    FeatureConfig,
    FeatureFrames,
    as_date,
    customer_base,
    days_between,
    fen,
    finish_group,
    months_back,
    safe_ratio,
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


def _instalments(repayments: pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """Per instalment: outstanding and overdue amounts, dpd, window and delinquency columns."""
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
    back = months_back("due_date", as_of)
    return repayments.select(
        "customer_id",
        "facility_id",
        unpaid.alias("outstanding"),
        pl.when(pl.col("due_date") < as_of).then(unpaid).otherwise(0).alias("overdue_amount"),
        dpd.alias("dpd"),
        (is_due & (back < 12)).alias("in_12m"),
        (is_due & (back < 3)).alias("in_3m"),
        pl.when(settled).then(days_between("paid_date", as_of)).otherwise(0.0).alias("since"),
    ).with_columns(
        pl.when(pl.col("dpd") > 0).then(pl.col("since")).otherwise(None).alias("since"),
    )


def aggregate(frames: FeatureFrames, as_of: date, config: FeatureConfig) -> pl.DataFrame:
    """Per customer with facilities or instalments: exposure, limits and dpd statistics."""
    del config
    instalments = _instalments(frames.repayments, as_of)
    per_facility = instalments.group_by("facility_id", maintain_order=True).agg(
        pl.col("outstanding").sum(), pl.col("overdue_amount").sum()
    )
    active = pl.col("active")
    facility_totals = (
        frames.credit_facilities.filter(pl.col("opened") <= as_of)
        .join(per_facility, on="facility_id", how="left", maintain_order="left")
        .with_columns(
            ((pl.col("maturity_date") > as_of) | (pl.col("outstanding") > 0)).alias("active")
        )
        .group_by("customer_id", maintain_order=True)
        .agg(
            active.sum().alias("active_facilities"),
            pl.when(active).then(fen("limit")).otherwise(0).sum().alias("limit"),
            pl.when(active).then(pl.col("outstanding")).otherwise(0).sum(),
            pl.when(active).then(pl.col("overdue_amount")).otherwise(0).sum(),
            (months_back("opened", as_of) < 6).sum().alias("facilities_opened_6m"),
        )
    )
    dpd_12m = pl.when(pl.col("in_12m")).then(pl.col("dpd"))
    behaviour = instalments.group_by("customer_id", maintain_order=True).agg(
        pl.col("in_12m").sum().alias("due_12m"),
        (dpd_12m > 0).sum().alias("overdue_12m"),
        pl.when(pl.col("in_3m")).then(pl.col("dpd")).max().alias("max_dpd_3m"),
        dpd_12m.max().alias("max_dpd_12m"),
        *((dpd_12m >= days).sum().alias(f"dpd{days}_count_12m") for days in _DPD_LEVELS),
        pl.col("since").min().alias("since"),
    )
    return facility_totals.join(
        behaviour, on="customer_id", how="full", coalesce=True, maintain_order="left_right"
    )


def finish(as_of: date, config: FeatureConfig) -> list[pl.Expr]:
    """Expressions turning the joined aggregates into :data:`FEATURES`."""
    del as_of
    never = config.never_delinquent_days
    limit = pl.col("limit")
    return [
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
    ]


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
