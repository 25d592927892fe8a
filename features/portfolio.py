"""Portfolio summaries: segments and observed default rates by year."""

from __future__ import annotations

import pandas as pd

from features.io import RawTables


def segment_counts(customers: pd.DataFrame, rows: str, columns: str) -> pd.DataFrame:
    """Customers per segment as a cross table with totals.

    Args:
        customers: the customers table.
        rows: column for the rows (e.g. ``industry``).
        columns: column for the columns (e.g. ``size_class``).
    """
    return pd.crosstab(customers[rows], customers[columns], margins=True, margins_name="total")


def default_rate_by_year(raw: RawTables) -> pd.DataFrame:
    """Yearly default rate of the cohort alive at each 1 January.

    The cohort of year Y is every customer onboarded before Y-01-01 who has not defaulted
    before then; its default rate is the share that defaults during Y. Years start with the
    first year the extract observes (its earliest statement or transaction).

    Returns:
        One row per year: ``year``, ``customers``, ``defaults``, ``default_rate``.
    """
    customers = raw.customers[["customer_id", "onboarding_date"]]
    first_default = raw.defaults.groupby("customer_id")["default_date"].min()
    default_date = customers["customer_id"].map(first_default)
    if customers.empty:
        return pd.DataFrame(columns=["year", "customers", "defaults", "default_rate"])
    observed_from = pd.Series(
        [
            raw.financial_statements["period_end"].min(),
            raw.transactions["ts"].min(),
            customers["onboarding_date"].max(),
        ]
    ).min()
    first_year = observed_from.year
    last_year = max(default_date.max().year if default_date.notna().any() else 0, first_year)
    rows = []
    for year in range(first_year, last_year + 1):
        start, end = pd.Timestamp(year, 1, 1), pd.Timestamp(year + 1, 1, 1)
        alive = (customers["onboarding_date"] < start) & ~(default_date < start)
        defaulted = alive & (default_date >= start) & (default_date < end)
        count, defaults = int(alive.sum()), int(defaulted.sum())
        rate = defaults / count if count else float("nan")
        rows.append({"year": year, "customers": count, "defaults": defaults, "default_rate": rate})
    return pd.DataFrame(rows)
