"""Data sufficiency: whether the model has enough of a customer's records to go on.

A customer whose records fall below the rule of `rating.judgement.DataSufficiencyConfig` (by
default: no statement published in the last 18 months and no credit facility ever) is marked
``insufficient_data`` with its reasons; the rating chain then gives it the stricter of its
hard-rule tier or the provisional tier until an expert rating is approved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from rating.judgement import DataSufficiencyConfig

SUFFICIENCY_COLUMNS: Final[list[str]] = [
    "customer_id",
    "sufficient",
    "months_since_statement",
    "facilities",
    "transaction_months",
    "reasons",
]
"""Columns of `data_sufficiency` (``reasons``: codes joined by ``;``)."""

_DAYS_PER_MONTH = 365.25 / 12


class SufficiencyReason(BaseModel):
    """Why a customer's data is insufficient."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    text_en: str
    text_zh: str


class Sufficiency(BaseModel):
    """One customer's data sufficiency at a rating date."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sufficient: bool = True
    reasons: tuple[SufficiencyReason, ...] = ()


SUFFICIENT: Final[Sufficiency] = Sufficiency()


def _reason(code: str, config: DataSufficiencyConfig) -> SufficiencyReason:
    texts = {
        "DS01": (
            f"No financial statement published in the last {config.max_months_since_statement} "
            "months",
            f"近{config.max_months_since_statement}个月未披露财务报表",
        ),
        "DS02": ("No credit facility history", "无授信历史"),
        "DS03": (
            f"Fewer than {config.min_transaction_months} of the last 12 months with transactions",
            f"近12个月中有交易的月份少于{config.min_transaction_months}个",
        ),
    }
    text_en, text_zh = texts[code]
    return SufficiencyReason(code=code, text_en=text_en, text_zh=text_zh)


def sufficiency_of(
    months_since_statement: float | None,
    facilities: int,
    transaction_months: int,
    config: DataSufficiencyConfig,
) -> Sufficiency:
    """The rule for one customer, from what is known about its records at the rating date.

    Args:
        months_since_statement: months since its latest published statement (None: none).
        facilities: credit facilities opened on or before the rating date.
        transaction_months: months of the last 12 with at least one transaction.
        config: the rule.
    """
    has = {
        "statement": months_since_statement is not None
        and months_since_statement <= config.max_months_since_statement,
        "facility": facilities > 0,
    }
    reasons: list[SufficiencyReason] = []
    if not any(has[source] for source in config.any_of):
        codes = {"statement": "DS01", "facility": "DS02"}
        reasons.extend(_reason(codes[source], config) for source in config.any_of)
    if transaction_months < config.min_transaction_months:
        reasons.append(_reason("DS03", config))
    return Sufficiency(sufficient=not reasons, reasons=tuple(reasons))


def data_sufficiency(
    customer_ids: Iterable[str],
    statements: pd.DataFrame,
    facilities: pd.DataFrame,
    transactions: pd.DataFrame,
    as_of: date,
    config: DataSufficiencyConfig | None = None,
) -> pd.DataFrame:
    """Data sufficiency of customers at ``as_of`` from their raw records (only those known then).

    Args:
        customer_ids: the customers to judge.
        statements: ``financial_statements`` (``customer_id``, ``published_date``).
        facilities: ``credit_facilities`` (``customer_id``, ``opened``).
        transactions: ``transactions`` (``customer_id``, ``ts``).
        as_of: rating date; records after it are ignored.
        config: the rule.

    Returns:
        One row per customer in the given order (`SUFFICIENCY_COLUMNS`).
    """
    config = config or DataSufficiencyConfig()
    ids = pd.Index([str(c) for c in customer_ids], name="customer_id")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    published = pd.to_datetime(statements["published_date"])
    known = statements.loc[published < end]
    latest = pd.to_datetime(known["published_date"]).groupby(known["customer_id"].astype(str)).max()
    months = (pd.Timestamp(as_of) - latest.reindex(ids)).dt.days / _DAYS_PER_MONTH
    opened = pd.to_datetime(facilities["opened"]) < end
    n_facilities = (
        facilities.loc[opened, "customer_id"].astype(str).value_counts().reindex(ids, fill_value=0)
    )
    ts = pd.to_datetime(transactions["ts"])
    window = (ts < end) & (ts >= pd.Timestamp(as_of) - pd.DateOffset(months=12))
    recent = transactions.loc[window]
    month_keys = ts[window].dt.to_period("M")
    active = (
        pd.DataFrame({"customer_id": recent["customer_id"].astype(str), "month": month_keys})
        .drop_duplicates()
        .groupby("customer_id")
        .size()
        .reindex(ids, fill_value=0)
    )
    rows = []
    for customer, since, n_fac, n_months in zip(
        ids, months.to_numpy(), n_facilities.to_numpy(), active.to_numpy(), strict=True
    ):
        since_value = None if np.isnan(since) else float(since)
        result = sufficiency_of(since_value, int(n_fac), int(n_months), config)
        rows.append(
            {
                "customer_id": customer,
                "sufficient": result.sufficient,
                "months_since_statement": np.nan if since_value is None else round(since_value, 1),
                "facilities": int(n_fac),
                "transaction_months": int(n_months),
                "reasons": ";".join(r.code for r in result.reasons),
            }
        )
    return pd.DataFrame(rows, columns=SUFFICIENCY_COLUMNS)


def sufficiency_from_row(
    row: pd.Series | Mapping[str, Any], config: DataSufficiencyConfig
) -> Sufficiency:
    """The `Sufficiency` of one row of `data_sufficiency` (with its reason texts)."""
    since = row["months_since_statement"]
    return sufficiency_of(
        None if pd.isna(since) else float(since),
        int(row["facilities"]),
        int(row["transaction_months"]),
        config,
    )


def record_sufficiency(
    published: Iterable[date | pd.Timestamp],
    opened: Iterable[date | pd.Timestamp],
    transaction_times: Iterable[date | pd.Timestamp],
    as_of: date,
    config: DataSufficiencyConfig | None = None,
) -> Sufficiency:
    """The rule for one customer from the dates of its records (one request's, say).

    The same answer as `data_sufficiency` gives that customer's row, without building tables:
    months since the latest statement published by ``as_of`` (to one decimal), facilities
    opened by ``as_of``, months of the 12 before ``as_of`` with a transaction.

    Args:
        published: statements' ``published_date``.
        opened: facilities' ``opened``.
        transaction_times: transactions' ``ts``.
        as_of: rating date; records after it are ignored.
        config: the rule.
    """
    config = config or DataSufficiencyConfig()
    day = pd.Timestamp(as_of)
    end = day + pd.Timedelta(days=1)
    known = [t for t in map(pd.Timestamp, published) if t < end]
    since = round((day - max(known)).days / _DAYS_PER_MONTH, 1) if known else None
    facilities = sum(1 for t in map(pd.Timestamp, opened) if t < end)
    # Transactions are thousands per request: compared as datetimes, not made Timestamps.
    start, stop = (day - pd.DateOffset(months=12)).to_pydatetime(), end.to_pydatetime()
    months = {(t.year, t.month) for t in map(_moment, transaction_times) if start <= t < stop}
    return sufficiency_of(since, facilities, len(months), config)


def _moment(value: date | pd.Timestamp) -> datetime | pd.Timestamp:
    """``value`` as something comparable with a datetime (a date is its midnight)."""
    if isinstance(value, datetime):  # pd.Timestamp included
        return value
    if isinstance(value, date):
        return datetime.combine(value, time.min)
    return pd.Timestamp(value)
