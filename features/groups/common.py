"""Shared pieces of the feature groups: polars views of the raw tables and window arithmetic.

Every feature definition is a polars expression over these frames. The same code runs in
batch (the whole portfolio) and online (the rows of one scoring request): polars is eager
on small frames, so the online path pays no query-planning cost.

Time conventions, shared by all groups (``as_of`` is a calendar date):

* A record dated ``d`` is known at ``as_of`` when ``d <= as_of``; a transaction booked at
  timestamp ``ts`` is known when ``ts < as_of + 1 day`` (the whole as-of day counts).
* Month windows are counted back from ``as_of``: ``months_back(d)`` is the number of whole
  months between ``d`` and ``as_of`` (``d`` in ``(as_of - (k+1) months, as_of - k months]``
  gives ``k``, month-end to month-end when ``as_of`` is a month end, so at the usual
  quarter-end snapshots the buckets are calendar months). "Last n months" means
  ``0 <= months_back(d) < n``. It is integer arithmetic on year, month and day, so SQL
  engines compute it identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, cast

import pandas as pd
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from features.io import RawDataError, RawTables, read_table, table_path
from features.schema import STATEMENT_AMOUNTS

DAYS_PER_YEAR = 365.25

BY_CUSTOMER: tuple[str, ...] = ("customer_id",)
"""Grouping keys of the batch path; the one-customer path groups by ``()`` (the whole frame)."""

_ROWS = "__rows"

ENGINE: Final = "streaming"
"""Polars engine of the batch queries: on a portfolio the streaming engine was ~4x faster than
the in-memory one at the same peak memory (1M customers: 33 s against 141 s). The one-customer
path is eager (no query planning). Engines could round differently (the in-memory one divides a
long column by a literal as a product with the reciprocal, the streaming one exactly), so
constants are applied as reciprocal products and money is summed in integers: batch and online
values are equal bit for bit (tested, ``tests/features/test_feature_paths.py``)."""

_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "industry",
        "region",
        "size_class",
        "founded_date",
        "onboarding_date",
        "sanctions_hit",
        "legal_enforcement",
        "fraud",
    ),
    "financial_statements": (
        "customer_id",
        "period_end",
        "published_date",
        "period_months",
        *STATEMENT_AMOUNTS,
    ),
    "credit_facilities": ("facility_id", "customer_id", "opened", "maturity_date", "limit"),
    "repayments": (
        "facility_id",
        "customer_id",
        "due_date",
        "amount_due",
        "paid_date",
        "amount_paid",
    ),
    "transactions": ("customer_id", "ts", "amount", "direction", "counterparty_id"),
}
"""Columns each group reads; everything else in a raw table is ignored."""

FRAME_TABLES: tuple[str, ...] = tuple(_COLUMNS)
"""Fields of :class:`FeatureFrames`, ``customers`` first."""

_DATE_COLUMNS = {
    "founded_date",
    "onboarding_date",
    "period_end",
    "published_date",
    "opened",
    "maturity_date",
    "due_date",
    "paid_date",
}
_STRING_COLUMNS = {
    "customer_id",
    "facility_id",
    "industry",
    "region",
    "size_class",
    "direction",
    "counterparty_id",
}


class FeatureInputError(ValueError):
    """Raw tables cannot be turned into features (a needed column is missing or mistyped)."""


@dataclass(frozen=True)
class FeatureFrames:
    """The raw tables the features read, as polars frames with normalised types.

    Dates are ``pl.Date``, ``transactions.ts`` is ``pl.Datetime``, ids are strings and
    amounts ``Float64``. Build with :func:`to_frames` (once per dataset, then reuse).
    """

    customers: pl.DataFrame
    financial_statements: pl.DataFrame
    credit_facilities: pl.DataFrame
    repayments: pl.DataFrame
    transactions: pl.DataFrame


_DTYPES: dict[str, pl.DataType] = {
    **dict.fromkeys(_DATE_COLUMNS, pl.Date()),
    **dict.fromkeys(_STRING_COLUMNS, pl.String()),
    **dict.fromkeys(("sanctions_hit", "legal_enforcement", "fraud"), pl.Boolean()),
    "ts": pl.Datetime("us"),
    "period_months": pl.Int64(),
}
"""Normalised type per column (anything else is Float64)."""


def frame_schema(table: str) -> dict[str, pl.DataType]:
    """The columns a feature table is read with and their normalised polars types, in order."""
    return {column: _DTYPES.get(column, pl.Float64()) for column in _COLUMNS[table]}


def empty_frames() -> FeatureFrames:
    """Frames with the normalised schemas and no rows: enough to build the feature queries."""
    return FeatureFrames(**{table: pl.DataFrame(schema=frame_schema(table)) for table in _COLUMNS})


def _series(column: str, values: pd.Series) -> pl.Series:
    """One column as a polars series of its normalised type, built from numpy.

    Faster than ``pl.from_pandas`` on small frames (which costs ~0.5 ms per table).
    """
    if column in _DATE_COLUMNS:
        days = pd.to_datetime(values).to_numpy().astype("datetime64[D]")
        return pl.Series(column, days, dtype=pl.Date)
    if column == "ts":
        return pl.Series(column, pd.to_datetime(values).to_numpy().astype("datetime64[us]"))
    if column in _STRING_COLUMNS:
        return pl.Series(column, values.to_numpy(dtype=object), dtype=pl.String)
    if column in {"sanctions_hit", "legal_enforcement", "fraud"}:
        return pl.Series(column, values.to_numpy(dtype=bool), dtype=pl.Boolean)
    if column == "period_months":
        return pl.Series(column, values.to_numpy(dtype="int64"), dtype=pl.Int64)
    return pl.Series(column, values.to_numpy(dtype="float64"), dtype=pl.Float64)


def _convert(table: str, frame: pd.DataFrame) -> pl.DataFrame:
    wanted = _COLUMNS[table]
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        raise FeatureInputError(f"table '{table}' lacks column(s) {', '.join(missing)}")
    try:
        return pl.DataFrame([_series(column, frame[column]) for column in wanted])
    except (pl.exceptions.PolarsError, TypeError, ValueError) as error:
        raise FeatureInputError(
            f"table '{table}' has a column of the wrong type: {error}"
        ) from error


def to_frames(raw: RawTables | FeatureFrames) -> FeatureFrames:
    """Convert raw pandas tables to the polars frames the groups read (no-op if converted).

    Raises:
        FeatureInputError: if a needed column is missing or cannot be cast to its type.
    """
    if isinstance(raw, FeatureFrames):
        return raw
    return FeatureFrames(**{table: _convert(table, getattr(raw, table)) for table in _COLUMNS})


def read_frames(
    raw_dir: Path | str,
    as_of: date | None = None,
    *,
    customers: tuple[str, str] | None = None,
) -> FeatureFrames:
    """Read a raw folder straight into :class:`FeatureFrames` (Parquet via polars, no pandas).

    The batch path: only the columns the features read are loaded. With ``as_of``, the frames
    serve that one snapshot only: transactions outside the 12 months up to ``as_of`` (which no
    feature at ``as_of`` reads) are skipped at scan time. With ``customers=(first, last)``
    only the rows of customer ids in that inclusive range are read (Parquet row groups whose
    statistics lie outside it are skipped, so a file written in customer order is read only
    where needed). CSV tables go through ``features.io.read_table``. Validate the folder first
    (``features.validate``).

    Raises:
        RawDataError: if a table is missing or unreadable.
        FeatureInputError: if a needed column is missing or mistyped.
    """
    raw_dir = Path(raw_dir)
    in_range = None
    if customers is not None:
        first, last = (pl.lit(bound, dtype=pl.String) for bound in customers)
        in_range = pl.col("customer_id").is_between(first, last)
    frames = {}
    for table, columns in _COLUMNS.items():
        path = table_path(raw_dir, table)
        if path.suffix != ".parquet":
            frame = _convert(table, read_table(raw_dir, table))
            frames[table] = frame if in_range is None else frame.filter(in_range)
            continue
        scan = pl.scan_parquet(path).select(columns)
        if in_range is not None:
            scan = scan.filter(in_range)
        if as_of is not None and table == "transactions":
            # A little wider than 12 months: months_back() decides exactly which rows count.
            start = datetime(as_of.year - 1, as_of.month, 1) - timedelta(days=1)
            scan = scan.filter((pl.col("ts") >= start) & (pl.col("ts") < end_of_day(as_of)))
        try:
            frame = scan.collect()
        except pl.exceptions.ColumnNotFoundError as error:
            raise FeatureInputError(f"table '{table}' lacks a column: {error}") from error
        except (OSError, pl.exceptions.PolarsError) as error:
            raise RawDataError(f"cannot read {path}: {error}") from error
        try:
            frames[table] = frame.select(
                pl.col(c).cast(_DTYPES.get(c, pl.Float64)) for c in columns
            )
        except pl.exceptions.PolarsError as error:
            raise FeatureInputError(
                f"table '{table}' has a column of the wrong type: {error}"
            ) from error
    return FeatureFrames(**frames)


def read_customer_ids(raw_dir: Path | str, as_of: date | None = None) -> list[str]:
    """The sorted customer ids of a raw folder (onboarded by ``as_of`` when given).

    Raises:
        RawDataError: if the customers table is missing or unreadable.
    """
    raw_dir = Path(raw_dir)
    path = table_path(raw_dir, "customers")
    try:
        if path.suffix == ".parquet":
            customers = pl.scan_parquet(path).select("customer_id", "onboarding_date").collect()
        else:
            table = read_table(raw_dir, "customers")
            customers = _convert("customers", table).select("customer_id", "onboarding_date")
    except (OSError, pl.exceptions.PolarsError) as error:
        raise RawDataError(f"cannot read {path}: {error}") from error
    customers = customers.with_columns(
        pl.col("customer_id").cast(pl.String), pl.col("onboarding_date").cast(pl.Date)
    )
    if as_of is not None:
        customers = customers.filter(pl.col("onboarding_date") <= as_of)
    return customers.get_column("customer_id").drop_nulls().sort().to_list()


def customer_chunks(customer_ids: Sequence[str], chunk_customers: int) -> list[tuple[str, str]]:
    """Split sorted customer ids into inclusive ``(first, last)`` ranges of at most n ids.

    Raises:
        ValueError: if ``chunk_customers`` is not positive or the ids are not sorted.
    """
    if chunk_customers < 1:
        raise ValueError(f"chunk_customers must be at least 1, got {chunk_customers}")
    if any(a > b for a, b in pairwise(customer_ids)):
        raise ValueError("customer_ids must be sorted")
    return [
        (customer_ids[i], customer_ids[min(i + chunk_customers, len(customer_ids)) - 1])
        for i in range(0, len(customer_ids), chunk_customers)
    ]


def as_date(as_of: date) -> date:
    """Normalise an as-of value to a calendar date.

    A datetime (or pandas Timestamp) loses its time of day: the whole as-of day counts.

    Raises:
        FeatureInputError: if ``as_of`` is not a date.
    """
    if isinstance(as_of, datetime):
        return as_of.date()
    if not isinstance(as_of, date):
        raise FeatureInputError(f"as_of must be a date, got {type(as_of).__name__} {as_of!r}")
    return as_of


def customer_base(frames: FeatureFrames, as_of: date) -> pl.DataFrame:
    """Ids of the customers that exist at ``as_of`` (onboarded on or before it), sorted."""
    return customer_base_plan(frames.customers.lazy(), as_of).collect()


def customer_base_plan(customers: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """The lazy query of :func:`customer_base` over the customers table."""
    return (
        customers.filter(pl.col("onboarding_date") <= as_of)
        .select("customer_id")
        .sort("customer_id")
    )


def finish_group(
    base: pl.DataFrame, aggregates: pl.DataFrame, finish: list[pl.Expr]
) -> pl.DataFrame:
    """Join a group's per-customer aggregates onto the customer base and apply its finish."""
    joined = base.join(aggregates, on="customer_id", how="left", maintain_order="left")
    return joined.select("customer_id", *(expr.cast(pl.Float64) for expr in finish))


def over(expr: pl.Expr, by: Sequence[str]) -> pl.Expr:
    """A per-customer window aggregate: ``expr.over(by)``, or plain ``expr`` for one customer."""
    return expr.over(list(by)) if by else expr


def aggregate_by(
    frame: pl.DataFrame | pl.LazyFrame, by: Sequence[str], exprs: Sequence[pl.Expr]
) -> pl.DataFrame | pl.LazyFrame:
    """Aggregate ``exprs`` per ``by`` keys, or over the whole frame when ``by`` is empty.

    The same aggregation expressions serve both paths. Per key (batch), a customer without rows
    gets no row, which the left join onto the customer base turns into nulls; over the whole
    frame (one customer), an empty frame gives the same all-null row, so both paths agree.
    Eager frames stay eager (the one-customer path), lazy frames stay lazy.
    """
    if by:
        return frame.group_by(*by, maintain_order=True).agg(*exprs)
    if isinstance(frame, pl.DataFrame):
        out = frame.select(*exprs)
        return out.clear(1) if frame.height == 0 else out
    return frame.select(*exprs, pl.len().alias(_ROWS)).select(
        pl.when(pl.col(_ROWS) > 0).then(pl.all().exclude(_ROWS))
    )


def side_by_side(
    frames: Sequence[pl.DataFrame | pl.LazyFrame], by: Sequence[str], how: str = "left"
) -> pl.DataFrame | pl.LazyFrame:
    """Combine per-customer aggregates: joined on ``by``, or (one row each) concatenated."""
    # The frames are all lazy or all eager (built with one ``lazy`` flag), a pairing the
    # checker cannot see in the union.
    if not by:
        return pl.concat(cast(Sequence[Any], frames), how="horizontal")
    out: Any = frames[0]
    for other in frames[1:]:
        if how == "full":
            out = out.join(
                other, on=list(by), how="full", coalesce=True, maintain_order="left_right"
            )
        else:
            out = out.join(other, on=list(by), how="left", maintain_order="left")
    return out


def end_of_day(as_of: date) -> datetime:
    """First instant after the as-of day: transactions strictly before it are known."""
    return datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)


def _as_of_day(as_of: date) -> int:
    # At a month end every day of a month is "on or before" it: windows are calendar months.
    return 31 if (as_of + timedelta(days=1)).day == 1 else as_of.day


def months_back(column: str | pl.Expr, as_of: date) -> pl.Expr:
    """Whole calendar months between a date column and ``as_of`` (0 for the last month).

    Negative for dates after ``as_of``.
    """
    expr = pl.col(column) if isinstance(column, str) else column
    diff = (as_of.year * 12 + as_of.month) - (expr.dt.year() * 12 + expr.dt.month())
    return (diff - (expr.dt.day() > _as_of_day(as_of)).cast(pl.Int32)).cast(pl.Int32)


@lru_cache(maxsize=1024)
def window_start(as_of: date, months: int) -> date:
    """The first date ``d`` with ``months_back(d) < months``: the window's opening day.

    ``months_back`` never increases with the date, so "``0 <= months_back(d) < n``" is the
    plain range ``window_start(as_of, n) <= d <= as_of``: a cheap comparison against a constant
    instead of date-part arithmetic on every row (a test checks the equivalence day by day).
    """
    if months < 1:
        raise ValueError(f"a window spans at least one month, got {months}")
    index = as_of.year * 12 + as_of.month - 1 - months  # the month ``months`` before as_of
    year, month = divmod(index, 12)
    next_year, next_month = divmod(index + 1, 12)
    first_of_next = date(next_year, next_month + 1, 1)
    day = _as_of_day(as_of) + 1
    if day <= (first_of_next - timedelta(days=1)).day:
        return date(year, month + 1, day)
    return first_of_next


def days_between(column: str | pl.Expr, as_of: date) -> pl.Expr:
    """Days from a date column to ``as_of`` (positive when the date is earlier)."""
    expr = pl.col(column) if isinstance(column, str) else column
    return (pl.lit(as_of, dtype=pl.Date) - expr).dt.total_days().cast(pl.Float64)


def fen(column: str) -> pl.Expr:
    """An amount in yuan as integer fen (1/100 yuan).

    Money is summed in integer minor units: integer sums do not depend on the order in
    which polars' threads combine partial results, so features are bit-reproducible.
    """
    return (pl.col(column) * 100.0).round().cast(pl.Int64)


def safe_ratio(
    numerator: pl.Expr, denominator: pl.Expr, low: float, high: float, *, positive_den: bool = False
) -> pl.Expr:
    """``numerator / denominator`` clipped to ``[low, high]``; null where undefined.

    Undefined means a null operand or a zero denominator (or a non-positive one when
    ``positive_den``).
    """
    valid = denominator > 0 if positive_den else denominator != 0
    return pl.when(valid).then((numerator / denominator).clip(low, high)).otherwise(None)


class FeatureConfig(BaseModel):
    """Tunable constants of the feature definitions (defaults are the documented ones)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    statement_match_tolerance_days: int = Field(default=46, ge=0, le=120)
    """The year-earlier statement has a period_end 12 months (+/- this many days) before."""
    interest_coverage_cap: float = Field(default=100.0, gt=0)
    """Interest coverage is clipped to +/- this; no interest with positive profit gives +cap."""
    large_txn_multiple: float = Field(default=5.0, gt=1)
    """A transaction is large when its amount is >= this multiple of the customer's mean
    transaction amount over the last 12 months (scale-free across firm sizes)."""
    never_delinquent_days: float = Field(default=3650.0, gt=0)
    """days_since_last_delinquency for a customer never delinquent, and its upper cap."""
