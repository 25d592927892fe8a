"""Profile features: who the customer is (classification, age, tenure, compliance flags).

The customers table is a current snapshot: the compliance flags carry no date, so they are
taken as in force at any ``as_of`` (they are facts the bank holds about the customer now).
A customer onboarded after ``as_of`` does not exist yet and gets no row.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import polars as pl

from features.groups.common import (
    BY_CUSTOMER,
    DAYS_PER_YEAR,
    FeatureConfig,
    FeatureFrames,
    as_date,
    customer_base,
    days_between,
    finish_group,
    months_back,
)
from features.schema import INDUSTRIES, REGIONS, SIZE_CLASSES

CATEGORIES: dict[str, tuple[str, ...]] = {
    "industry": INDUSTRIES,
    "region": REGIONS,
    "size_class": SIZE_CLASSES,
}
"""Categorical features and their levels; the integer code is the index (null if unknown)."""

FLAGS: tuple[str, ...] = ("sanctions_hit", "legal_enforcement", "fraud")

FEATURES: tuple[str, ...] = (
    *CATEGORIES,
    "company_age_years",
    "months_as_customer",
    *(f"flag_{flag}" for flag in FLAGS),
)


def _code(column: str, levels: tuple[str, ...]) -> pl.Expr:
    mapping = {level: float(code) for code, level in enumerate(levels)}
    return pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.Float64)


@lru_cache(maxsize=256)
def _exprs(as_of: date) -> tuple[pl.Expr, ...]:
    """The group's per-customer expressions for one as_of, built once and reused."""
    return (
        *(_code(column, levels).alias(column) for column, levels in CATEGORIES.items()),
        (days_between("founded_date", as_of) * (1.0 / DAYS_PER_YEAR)).alias("company_age_years"),
        months_back("onboarding_date", as_of).cast(pl.Float64).alias("months_as_customer"),
        *(pl.col(flag).cast(pl.Float64).alias(f"flag_{flag}") for flag in FLAGS),
    )


def plan(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    by: tuple[str, ...] = BY_CUSTOMER,
) -> pl.LazyFrame:
    """The lazy query of :func:`aggregate` (the batch path)."""
    del config  # no tunable constant in this group; the signature is shared by all groups
    return frames.customers.lazy().select(*by, *_exprs(as_of))


def aggregate(
    frames: FeatureFrames,
    as_of: date,
    config: FeatureConfig,
    *,
    by: tuple[str, ...] = BY_CUSTOMER,
) -> pl.DataFrame:
    """Per-customer profile features (one customers row each, so no aggregation is needed).

    With ``by=()`` the frames hold one customer's row and the result is its one row (no key).
    """
    del config
    return frames.customers.select(*by, *_exprs(as_of))


def finish(as_of: date, config: FeatureConfig) -> list[pl.Expr]:
    """Expressions turning the joined aggregates into :data:`FEATURES`."""
    del as_of, config
    return [pl.col(name) for name in FEATURES]


def compute(
    frames: FeatureFrames, as_of: date, config: FeatureConfig | None = None
) -> pl.DataFrame:
    """Profile features for every customer onboarded by ``as_of``.

    Returns:
        One row per customer (sorted): ``customer_id`` then :data:`FEATURES` (all Float64).
    """
    config = config or FeatureConfig()
    as_of = as_date(as_of)
    return finish_group(
        customer_base(frames, as_of), aggregate(frames, as_of, config), finish(as_of, config)
    )
