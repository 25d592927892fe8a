"""The portfolio by segment (industry, region, size class): tiers, statuses, migration, warnings.

One row per (dimension, segment): customers, customers in default, customers per tier and per
status (``normal`` when no status is recorded), tier downgrades and upgrades since the previous
run (customers rated in both), early warnings and those of high or critical severity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.config import CUSTOMER_STATUSES, Severity
from monitoring.warnings import customer_statuses
from rating.policy import Tier

DIMENSIONS: tuple[str, ...] = ("industry", "region", "size_class")
TIER_NAMES: tuple[str, ...] = tuple(t.value for t in Tier)
SEGMENT_COLUMNS = [
    "dimension",
    "segment",
    "customers",
    "in_default",
    *(f"tier_{t}" for t in TIER_NAMES),
    *(f"status_{s}" for s in CUSTOMER_STATUSES),
    "downgrades",
    "upgrades",
    "warnings",
    "warnings_high",
]


def segment_table(
    ratings: pd.DataFrame,
    previous: pd.DataFrame | None,
    warnings: pd.DataFrame,
    statuses: pd.Series | None = None,
) -> pd.DataFrame:
    """Counts per segment of each dimension (see the module docstring).

    Args:
        ratings: current ratings (`monitoring.store.RATING_COLUMNS`).
        previous: the previous run's ratings (None: no migration counts, all zero).
        warnings: the early-warning list of the run.
        statuses: customer id -> status; absent customers count as ``normal``.

    Returns:
        Columns `SEGMENT_COLUMNS`, dimensions in `DIMENSIONS` order, segments by name.
    """
    frame = ratings[["customer_id", *DIMENSIONS, "tier", "tier_rank", "in_default"]].copy()
    frame["status"] = customer_statuses(frame["customer_id"], statuses)
    moved = np.zeros(len(frame), dtype=np.int64)
    if previous is not None:
        before = previous.set_index("customer_id")["tier_rank"].reindex(frame["customer_id"])
        delta = frame["tier_rank"].to_numpy() - before.to_numpy(dtype=float)
        moved = np.where(np.isnan(delta), 0, np.sign(delta)).astype(np.int64)
    frame["downgrades"] = moved > 0
    frame["upgrades"] = moved < 0
    listed = warnings.set_index("customer_id")["severity"].reindex(frame["customer_id"])
    frame["warnings"] = listed.notna().to_numpy()
    serious = {Severity.HIGH.value, Severity.CRITICAL.value}
    frame["warnings_high"] = listed.isin(serious).to_numpy()
    for t in TIER_NAMES:
        frame[f"tier_{t}"] = frame["tier"].astype(str) == t
    for s in CUSTOMER_STATUSES:
        frame[f"status_{s}"] = frame["status"] == s
    counted = [c for c in SEGMENT_COLUMNS if c not in ("dimension", "segment", "customers")]
    parts = []
    for dimension in DIMENSIONS:
        grouped = frame.groupby(frame[dimension].astype(str), sort=True)
        part = grouped[counted].sum().astype(np.int64)
        part.insert(0, "customers", grouped.size().astype(np.int64))
        part.insert(0, "segment", part.index.to_numpy())
        part.insert(0, "dimension", dimension)
        parts.append(part.reset_index(drop=True))
    return pd.concat(parts, ignore_index=True)[SEGMENT_COLUMNS]
