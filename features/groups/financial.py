"""Financial features: ratios of the latest statement known at ``as_of`` and their 1-year change.

A statement is known from its ``published_date`` on. The latest statement is the known one with
the latest ``period_end``; the year-earlier statement is the known one whose ``period_end`` lies
closest to 12 months before that (within ``statement_match_tolerance_days``; on a tie the later
one). Flow items are annualised with ``period_months`` before they meet stock items or each
other across periods. Every ratio is null when undefined (zero or missing denominator) and
clipped to sane bounds; ``interest_coverage`` is +cap when there is no interest expense and the
operating result is positive, null when both are zero or negative.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any

import polars as pl

from features.groups.common import (
    BY_CUSTOMER,
    ENGINE,
    FeatureConfig,
    FeatureFrames,
    aggregate_by,
    as_date,
    customer_base,
    finish_group,
    months_back,
    over,
    safe_ratio,
)

RATIOS: tuple[str, ...] = (
    "debt_ratio",
    "current_ratio",
    "cash_ratio",
    "net_margin",
    "return_on_assets",
    "ocf_to_liabilities",
    "interest_coverage",
)
CHANGES: tuple[str, ...] = ("debt_ratio", "current_ratio", "net_margin")

FEATURES: tuple[str, ...] = (
    *RATIOS,
    "revenue_growth_yoy",
    "months_since_period_end",
    "no_statement",
    *(f"{name}_change_1y" for name in CHANGES),
)


def _ratios(config: FeatureConfig) -> list[pl.Expr]:
    """Per-statement ratio expressions (one value per statement row)."""
    annual = 12.0 / pl.col("period_months")
    ebit = pl.col("revenue") - pl.col("operating_costs")
    cap = config.interest_coverage_cap
    coverage = (
        pl.when(pl.col("interest_expense") > 0)
        .then((ebit / pl.col("interest_expense")).clip(-cap, cap))
        .when(ebit > 0)
        .then(pl.lit(cap))
        .otherwise(None)
    )
    return [
        safe_ratio(pl.col("total_liabilities"), pl.col("total_assets"), 0.0, 10.0).alias(
            "debt_ratio"
        ),
        safe_ratio(pl.col("current_assets"), pl.col("current_liabilities"), 0.0, 100.0).alias(
            "current_ratio"
        ),
        safe_ratio(pl.col("cash"), pl.col("current_liabilities"), 0.0, 100.0).alias("cash_ratio"),
        safe_ratio(pl.col("net_income"), pl.col("revenue"), -10.0, 10.0).alias("net_margin"),
        safe_ratio(pl.col("net_income") * annual, pl.col("total_assets"), -10.0, 10.0).alias(
            "return_on_assets"
        ),
        safe_ratio(
            pl.col("operating_cash_flow") * annual, pl.col("total_liabilities"), -10.0, 10.0
        ).alias("ocf_to_liabilities"),
        coverage.alias("interest_coverage"),
        (pl.col("revenue") * annual).alias("revenue_annual"),
    ]


@lru_cache(maxsize=256)
def _exprs(
    as_of: date, config: FeatureConfig, by: tuple[str, ...]
) -> tuple[pl.Expr, tuple[pl.Expr | str, ...], tuple[pl.Expr, ...]]:
    """(known filter, per-statement columns, per-customer aggregates), built once per key."""
    latest_end = over(pl.col("period_end").max(), by)
    distance = (pl.col("period_end") - latest_end.dt.offset_by("-12mo")).dt.total_days().abs()
    is_prior = distance <= config.statement_match_tolerance_days
    rows: tuple[pl.Expr | str, ...] = (
        *by,
        "period_end",
        *_ratios(config),
        pl.when(is_prior).then(distance).alias("prior_distance"),
    )
    latest = pl.col("period_end").arg_max()
    # The best year-earlier candidate sorts first; with no candidate the first row is a
    # non-candidate, which ``finish`` masks out via the null ``prior_distance``.
    prior_order: dict[str, Any] = {
        "by": ["prior_distance", "period_end"],
        "descending": [False, True],
        "nulls_last": True,
    }
    aggs = (
        pl.col("period_end").max(),
        pl.col("prior_distance").min(),
        *(pl.col(name).get(latest) for name in (*RATIOS, "revenue_annual")),
        *(
            pl.col(name).sort_by(**prior_order).first().alias(f"{name}_prior")
            for name in (*CHANGES, "revenue_annual")
        ),
    )
    return pl.col("published_date") <= as_of, rows, aggs


def _query(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    by: tuple[str, ...],
    lazy: bool,
) -> pl.DataFrame | pl.LazyFrame:
    known, rows, aggs = _exprs(as_of, config, by)
    source = frames.financial_statements.lazy() if lazy else frames.financial_statements
    return aggregate_by(source.filter(known).select(rows), by, aggs)


def plan(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    by: tuple[str, ...] = BY_CUSTOMER,
) -> pl.LazyFrame:
    """The lazy query of :func:`aggregate` (the batch path)."""
    return _query(frames, as_of, config, by, lazy=True)  # type: ignore[return-value]  # lazy in, lazy out


def aggregate(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    *,
    by: tuple[str, ...] = BY_CUSTOMER,
) -> pl.DataFrame:
    """Per customer with a known statement: the latest ratios and the year-earlier ones.

    With ``by=()`` the frames hold one customer's rows and the result is its one row (no key),
    computed eagerly with the same expressions (the online path).
    """
    if by:
        return plan(frames, as_of, config, by).collect(engine=ENGINE)
    return _query(frames, as_of, config, by, lazy=False)  # type: ignore[return-value]  # eager in, eager out


def finish(as_of: date, config: FeatureConfig) -> list[pl.Expr]:
    """Expressions turning the joined aggregates into :data:`FEATURES`."""
    return list(_finish(as_of, config))


@lru_cache(maxsize=256)
def _finish(as_of: date, config: FeatureConfig) -> tuple[pl.Expr, ...]:
    del config
    has_prior = pl.col("prior_distance").is_not_null()
    prior = {name: pl.when(has_prior).then(pl.col(f"{name}_prior")) for name in CHANGES}
    revenue_prior = pl.when(has_prior).then(pl.col("revenue_annual_prior"))
    return (
        *(pl.col(name) for name in RATIOS),
        safe_ratio(
            pl.col("revenue_annual") - revenue_prior,
            revenue_prior,
            -1.0,
            10.0,
            positive_den=True,
        ).alias("revenue_growth_yoy"),
        months_back("period_end", as_of).alias("months_since_period_end"),
        pl.col("period_end").is_null().alias("no_statement"),
        *((pl.col(c) - prior[c]).alias(f"{c}_change_1y") for c in CHANGES),
    )


def compute(
    frames: FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """Financial features for every customer onboarded by ``as_of``.

    Returns:
        One row per customer (sorted): ``customer_id`` then :data:`FEATURES` (all Float64;
        ratios null when no statement is known, ``no_statement`` then 1).
    """
    config = config or FeatureConfig()
    as_of = as_date(as_of)
    return finish_group(
        customer_base(frames, as_of), aggregate(frames, as_of, config), finish(as_of, config)
    )
