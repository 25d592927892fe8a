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

from datetime import date

import polars as pl

from features.groups.common import (
    FeatureConfig,
    FeatureFrames,
    as_date,
    customer_base,
    end_of_day,
    fen,
    finish_group,
    months_back,
    safe_ratio,
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


def aggregate(frames: FeatureFrames, as_of: date, config: FeatureConfig) -> pl.DataFrame:
    """Per customer with transactions in the window: flow sums by window and concentration."""
    month = months_back("ts", as_of)
    is_in = pl.col("direction") == "in"
    mean_amount = pl.col("amount").mean().over("customer_id")
    window = frames.transactions.filter((pl.col("ts") < end_of_day(as_of)) & (month < _MONTHS))
    window = window.select(
        "customer_id",
        "counterparty_id",
        month.alias("month"),
        pl.when(is_in).then(fen("amount")).otherwise(0).alias("inflow"),
        pl.when(is_in).then(0).otherwise(fen("amount")).alias("outflow"),
        (pl.col("amount") >= config.large_txn_multiple * mean_amount).alias("large"),
    )
    in_window = {w: pl.col("month") < n for w, n in WINDOWS.items()}
    flows = (
        window.group_by("customer_id", "month", maintain_order=True)
        .agg(pl.col("inflow").sum(), pl.col("outflow").sum(), pl.len(), pl.col("large").sum())
        .group_by("customer_id", maintain_order=True)
        .agg(
            *(
                pl.when(inside).then(pl.col(flow)).otherwise(0).sum().alias(f"{flow}_{w}")
                for flow in ("inflow", "outflow")
                for w, inside in in_window.items()
            ),
            ((pl.col("inflow") / 100.0) ** 2).sum().alias("inflow_sq"),
            (pl.col("inflow") > 0).sum().alias("active_months_12m"),
            pl.len().alias("months_with_txn"),
            pl.col("len").sum().alias("n_txn"),
            pl.col("large").sum().alias("n_large"),
        )
    )
    concentration = (
        window.filter(pl.col("inflow") > 0)
        .group_by("customer_id", "counterparty_id", maintain_order=True)
        .agg(pl.col("inflow").sum())
        .group_by("customer_id", maintain_order=True)
        .agg(
            ((pl.col("inflow") / 100.0) ** 2).sum().alias("cp_sq"),
            (pl.col("inflow").max() / 100.0).alias("cp_max"),
            (pl.col("inflow").sum() / 100.0).alias("cp_total"),
        )
    )
    return flows.join(concentration, on="customer_id", how="left", maintain_order="left")


def finish(as_of: date, config: FeatureConfig) -> list[pl.Expr]:
    """Expressions turning the joined aggregates into :data:`FEATURES`."""
    del as_of, config
    flow = {
        f"{d}_{w}": pl.col(f"{d}_{w}").fill_null(0) / 100.0
        for d in ("inflow", "outflow")
        for w in WINDOWS
    }
    net = {w: flow[f"inflow_{w}"] - flow[f"outflow_{w}"] for w in WINDOWS}
    mean = flow["inflow_12m"] / _MONTHS
    variance = (pl.col("inflow_sq") / _MONTHS - mean**2).clip(lower_bound=0.0)
    positive = {"positive_den": True}
    return [
        *(expr.alias(name) for name, expr in flow.items()),
        *(expr.alias(f"netflow_{w}") for w, expr in net.items()),
        *(
            safe_ratio(net[w], flow[f"inflow_{w}"], -10.0, 1.0, **positive).alias(
                f"netflow_to_inflow_{w}"
            )
            for w in ("3m", "12m")
        ),
        safe_ratio(variance.sqrt(), mean, 0.0, 10.0, **positive).alias("inflow_cv_12m"),
        safe_ratio(
            pl.col("inflow_3m") / 3,
            (pl.col("inflow_12m") - pl.col("inflow_3m")) / 9,
            0.0,
            100.0,
            **positive,
        ).alias("inflow_trend"),
        pl.col("active_months_12m").fill_null(0),
        (_MONTHS - pl.col("months_with_txn").fill_null(0)).alias("dormant_months_12m"),
        safe_ratio(pl.col("cp_sq"), pl.col("cp_total") ** 2, 0.0, 1.0, **positive).alias(
            "inflow_hhi_12m"
        ),
        safe_ratio(pl.col("cp_max"), pl.col("cp_total"), 0.0, 1.0, **positive).alias(
            "top1_inflow_share_12m"
        ),
        safe_ratio(pl.col("n_large"), pl.col("n_txn"), 0.0, 1.0, **positive).alias(
            "large_txn_share_12m"
        ),
    ]


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
