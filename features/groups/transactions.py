"""Transaction features: flows, their stability and trend, concentration and activity.

A transaction is known at ``as_of`` when booked before the end of the as-of day. Windows are
calendar months counted back from ``as_of`` (``1m`` = month bucket 0, ``3m`` = buckets 0-2,
``12m`` = 0-11; see :func:`features.groups.common.months_back`). Amounts stay in yuan; the
scale-free features (ratios, shares, CV, trend) carry the signal across firm sizes.

Definitions worth stating:

* ``inflow_cv_12m``: population std / mean of the 12 monthly inflow sums, empty months as 0.
* ``inflow_trend``: mean monthly inflow of the last 3 months over that of the 9 before.
* ``active_months_12m``: months with at least one inflow (money coming in);
  ``dormant_months_12m``: months with no transaction in either direction.
* ``inflow_hhi_12m`` / ``top1_inflow_share_12m``: Herfindahl index and largest share of
  inflow by counterparty.
* ``large_txn_share_12m``: share of transactions whose amount is at least
  ``large_txn_multiple`` times the customer's mean transaction amount over the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache

import polars as pl

from features.groups.common import (
    BY_CUSTOMER,
    ENGINE,
    FeatureConfig,
    FeatureFrames,
    aggregate_by,
    as_date,
    customer_base,
    end_of_day,
    fen,
    finish_group,
    months_back,
    over,
    safe_ratio,
    side_by_side,
    window_start,
)

WINDOWS: dict[str, int] = {"1m": 1, "3m": 3, "12m": 12}
"""Window name -> number of month buckets."""

FEATURES: tuple[str, ...] = (
    *(f"inflow_{w}" for w in WINDOWS),
    *(f"outflow_{w}" for w in WINDOWS),
    *(f"netflow_{w}" for w in WINDOWS),
    "netflow_to_inflow_3m",
    "netflow_to_inflow_12m",
    "inflow_cv_12m",
    "inflow_trend",
    "active_months_12m",
    "dormant_months_12m",
    "inflow_hhi_12m",
    "top1_inflow_share_12m",
    "large_txn_share_12m",
)

_MONTHS = 12

_YUAN = 0.01
_YUAN_SQ = 1e-4
"""Fen to yuan (and fen squared to yuan squared). Constants divide by multiplying with their
reciprocal: polars' in-memory kernels divide a long column by a literal that way but a one-row
column exactly, so a true division would make online (one row) and batch values differ in the
last bit."""


def _sum_of_squares(column: str) -> pl.Expr:
    """Sum of squared fen amounts, in yuan squared.

    Summed exactly in 128-bit integers, so the result does not depend on row order (which a
    query optimiser is free to change between runs) and features stay bit-reproducible.
    """
    fen_value = pl.col(column).cast(pl.Int128)
    return (fen_value * fen_value).sum().cast(pl.Float64) * _YUAN_SQ


@dataclass(frozen=True)
class _Exprs:
    keep: pl.Expr
    rows: tuple[pl.Expr | str, ...]
    """Key columns by name, then expressions."""
    monthly: tuple[pl.Expr, ...]
    flows: tuple[pl.Expr, ...]
    concentration: tuple[pl.Expr, ...]


@lru_cache(maxsize=256)
def _exprs(as_of: date, config: FeatureConfig, by: tuple[str, ...]) -> _Exprs:
    """The group's expressions for one (as_of, config, keys), built once and reused."""
    month = months_back("ts", as_of)
    is_in = pl.col("direction") == "in"
    mean_amount = over(pl.col("amount").mean(), by)
    in_window = {w: pl.col("month") < n for w, n in WINDOWS.items()}
    return _Exprs(
        # Same rows as ``0 <= month < 12``, by comparing against constants.
        keep=(pl.col("ts") >= datetime.combine(window_start(as_of, _MONTHS), time()))
        & (pl.col("ts") < end_of_day(as_of)),
        rows=(
            *by,
            "counterparty_id",
            month.alias("month"),
            pl.when(is_in).then(fen("amount")).otherwise(0).alias("inflow"),
            pl.when(is_in).then(0).otherwise(fen("amount")).alias("outflow"),
            (pl.col("amount") >= config.large_txn_multiple * mean_amount).alias("large"),
        ),
        monthly=(pl.col("inflow").sum(), pl.col("outflow").sum(), pl.len(), pl.col("large").sum()),
        flows=(
            *(
                pl.when(inside).then(pl.col(flow)).otherwise(0).sum().alias(f"{flow}_{w}")
                for flow in ("inflow", "outflow")
                for w, inside in in_window.items()
            ),
            _sum_of_squares("inflow").alias("inflow_sq"),
            (pl.col("inflow") > 0).sum().alias("active_months_12m"),
            pl.len().alias("months_with_txn"),
            pl.col("len").sum().alias("n_txn"),
            pl.col("large").sum().alias("n_large"),
        ),
        concentration=(
            _sum_of_squares("inflow").alias("cp_sq"),
            (pl.col("inflow").max() * _YUAN).alias("cp_max"),
            (pl.col("inflow").sum() * _YUAN).alias("cp_total"),
        ),
    )


def _query(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    by: tuple[str, ...],
    lazy: bool,
) -> pl.DataFrame | pl.LazyFrame:
    e = _exprs(as_of, config, by)
    source = frames.transactions.lazy() if lazy else frames.transactions
    window = source.filter(e.keep).select(e.rows)
    monthly = window.group_by(*by, "month", maintain_order=True).agg(*e.monthly)
    per_counterparty = (
        window.filter(pl.col("inflow") > 0)
        .group_by(*by, "counterparty_id", maintain_order=True)
        .agg(pl.col("inflow").sum())
    )
    return side_by_side(
        [aggregate_by(monthly, by, e.flows), aggregate_by(per_counterparty, by, e.concentration)],
        by,
    )


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
    """Per customer with transactions in the window: flow sums by window and concentration.

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
    del as_of, config
    # Aggregates are fen (null when the customer has no transaction in the window). Ratios
    # are scale-free, so they divide fen by fen; a null operand leaves them null, exactly as
    # a zero inflow does, so only the amounts need ``fill_null`` (small trees: cheap online).
    inflow = {w: pl.col(f"inflow_{w}") for w in WINDOWS}
    outflow = {w: pl.col(f"outflow_{w}") for w in WINDOWS}
    mean = inflow["12m"] * (_YUAN / _MONTHS)
    variance = (pl.col("inflow_sq") * (1.0 / _MONTHS) - mean * mean).clip(lower_bound=0.0)
    positive = {"positive_den": True}
    return (
        *(inflow[w].fill_null(0) * _YUAN for w in WINDOWS),
        *(outflow[w].fill_null(0) * _YUAN for w in WINDOWS),
        *((inflow[w] - outflow[w]).fill_null(0).alias(f"netflow_{w}") * _YUAN for w in WINDOWS),
        *(
            safe_ratio(inflow[w] - outflow[w], inflow[w], -10.0, 1.0, **positive).alias(
                f"netflow_to_inflow_{w}"
            )
            for w in ("3m", "12m")
        ),
        safe_ratio(variance.sqrt(), mean, 0.0, 10.0, **positive).alias("inflow_cv_12m"),
        safe_ratio(
            inflow["3m"] * (1.0 / 3),
            (inflow["12m"] - inflow["3m"]) * (1.0 / 9),
            0.0,
            100.0,
            **positive,
        ).alias("inflow_trend"),
        pl.col("active_months_12m").fill_null(0),
        (_MONTHS - pl.col("months_with_txn").fill_null(0)).alias("dormant_months_12m"),
        safe_ratio(
            pl.col("cp_sq"), pl.col("cp_total") * pl.col("cp_total"), 0.0, 1.0, **positive
        ).alias("inflow_hhi_12m"),
        safe_ratio(pl.col("cp_max"), pl.col("cp_total"), 0.0, 1.0, **positive).alias(
            "top1_inflow_share_12m"
        ),
        safe_ratio(pl.col("n_large"), pl.col("n_txn"), 0.0, 1.0, **positive).alias(
            "large_txn_share_12m"
        ),
    )


def compute(
    frames: FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """Transaction features for every customer onboarded by ``as_of``.

    Returns:
        One row per customer (sorted): ``customer_id`` then :data:`FEATURES` (all Float64).
        Flows are 0 and ratios null for a customer without transactions in the window.
    """
    config = config or FeatureConfig()
    as_of = as_date(as_of)
    return finish_group(
        customer_base(frames, as_of), aggregate(frames, as_of, config), finish(as_of, config)
    )
