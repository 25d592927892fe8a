"""A raw portfolio read customer range by customer range: each range cut at as-of and validated.

Every feature, score and contract check of a customer depends on that customer's rows only
(the keys of the contract start with ``customer_id``), so a portfolio splits into ranges of
customer ids. :func:`iter_known_chunks` reads one range of every table at a time (Parquet row
groups whose statistics lie outside the range are skipped; a file written in customer order
is read about once), applies the point-in-time cut of :mod:`features.asof` and validates the
rows with the contract's pandera schemas (:func:`features.validate.validate_tables`): peak
memory follows the range, not the portfolio.

The ranges cover every possible id: the first starts below the lowest customer id and takes
the rows without an id, the last runs past the highest, and each range ends where the next
begins. A row whose ``customer_id`` is unknown in ``customers`` therefore lands in exactly one
range and the cross-table checks see it. Only the uniqueness of ``facility_id`` and ``txn_id``
across two customers' ranges is left out of this read (``riskgrade validate`` checks the
whole extract).

A problem found in one range does not stop the read: the later ranges are still validated
(nothing more is yielded) and one :class:`features.validate.RawValidationError` lists every
problem of every range, their counts summed and the first examples kept. Row examples name the
row of the file (``row 12``), as the whole-table read does.

CSV folders and databases are read whole (:func:`features.validate.load_raw_at`), then split into
the same ranges, so every source writes the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Literal

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from features.asof import AsOfCut, cut_tables
from features.io import ChunkedFileWriter, RawDataError, RawTables, table_path
from features.schema import TABLES
from features.source import FolderSource, RawSource, open_raw_source
from features.validate import (
    MAX_EXAMPLES,
    Problem,
    RawValidationError,
    ValidationReport,
    load_raw,
    load_raw_at,
    validate_tables,
)

_ROW = "__row_of_file"


@dataclass(frozen=True)
class CustomerRange:
    """Customer ids ``start <= id < stop``; ``None`` bounds are open (the first takes null ids)."""

    start: str | None
    stop: str | None

    def expr(self) -> pl.Expr:
        """The polars filter of this range on ``customer_id``."""
        column = pl.col("customer_id")
        conditions = []
        if self.start is not None:
            conditions.append(column >= pl.lit(self.start, dtype=pl.String))
        if self.stop is not None:
            conditions.append(column < pl.lit(self.stop, dtype=pl.String))
        if not conditions:
            return pl.lit(True)
        inside = conditions[0] if len(conditions) == 1 else conditions[0] & conditions[1]
        return inside | column.is_null() if self.start is None else inside


def customer_ranges(customer_ids: Sequence[str], chunk_customers: int) -> list[CustomerRange]:
    """Split the id space into ranges of at most ``chunk_customers`` of the given ids.

    Args:
        customer_ids: the distinct customer ids, sorted.
        chunk_customers: ids per range.

    Returns:
        Contiguous ranges covering every string (and null): one open range when there are
        no more ids than ``chunk_customers``.

    Raises:
        ValueError: if ``chunk_customers`` < 1.
    """
    if chunk_customers < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_customers}")
    starts = [customer_ids[i] for i in range(chunk_customers, len(customer_ids), chunk_customers)]
    bounds: list[str | None] = [None, *starts, None]
    return [CustomerRange(a, b) for a, b in pairwise(bounds)]


@dataclass(frozen=True)
class KnownChunk:
    """The raw tables of one customer range as known at ``as_of``, validated and coerced."""

    tables: RawTables
    cut: AsOfCut
    """What the point-in-time read left out of this range."""


def merge_cuts(cuts: Sequence[AsOfCut], as_of: date) -> AsOfCut:
    """The cut of a whole portfolio from the cuts of its ranges."""
    dropped: dict[str, int] = {}
    for cut in cuts:
        for table, n in cut.dropped.items():
            dropped[table] = dropped.get(table, 0) + n
    late = frozenset().union(*(cut.late_customers for cut in cuts))
    return AsOfCut(as_of, dropped, sum(cut.unpaid for cut in cuts), late)


class _Problems:
    """Problems of every range, merged by (table, column, check) in order of first sight."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str, str], Problem] = {}

    def add(self, problems: Sequence[Problem]) -> None:
        for p in problems:
            key = (p.table, p.column, p.check)
            seen = self.found.get(key)
            if seen is None:
                self.found[key] = p
            else:
                examples = (*seen.examples, *p.examples)[:MAX_EXAMPLES]
                self.found[key] = Problem(
                    p.table, p.column, p.check, seen.count + p.count, examples
                )

    def report(self, row_counts: dict[str, int]) -> ValidationReport:
        return ValidationReport(problems=list(self.found.values()), row_counts=dict(row_counts))


class _ParquetFolder:
    """A raw folder of Parquet files, read one customer range at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = {table: table_path(path, table) for table in TABLES}
        self.schemas = {table: pq.read_schema(f) for table, f in self.files.items()}

    def customer_ids(self, as_of: date) -> list[str]:
        """The distinct ids of the customers known at ``as_of`` (or of undated ones), sorted.

        The ranges split these, so a folder and the same folder cut at ``as_of`` split alike.
        """
        customers = pl.scan_parquet(self.files["customers"]).select(
            "customer_id", "onboarding_date"
        )
        frame = customers.collect()
        onboarded = frame.get_column("onboarding_date")
        if onboarded.dtype.is_temporal():
            day = onboarded.cast(pl.Date)
            frame = frame.filter(day.is_null() | (day <= as_of))
        return frame.get_column("customer_id").drop_nulls().unique().sort().to_list()

    def read(self, table: str, where: CustomerRange) -> pd.DataFrame:
        """The rows of ``table`` in the range, typed as the file's Arrow schema, indexed by row."""
        schema = self.schemas[table]
        scan = pl.scan_parquet(self.files[table], row_index_name=_ROW)
        if "customer_id" in schema.names:
            scan = scan.filter(where.expr())
        try:
            found = scan.collect()
        except (OSError, pl.exceptions.PolarsError) as error:
            raise RawDataError(f"cannot read {self.files[table]}: {error}") from error
        rows = found.get_column(_ROW).to_numpy()
        data = found.drop(_ROW).to_arrow()
        fields = [schema.field(name) for name in schema.names if name in data.column_names]
        target = pa.schema(fields)
        arrow = data.select(target.names).cast(target)
        frame = arrow.to_pandas()
        frame.index = pd.Index(rows.astype("int64"))
        return frame


def _whole(source: RawSource | Path | str) -> bool:
    """Whether the source is read as one range: a database, or a folder holding a CSV table."""
    if not isinstance(source, FolderSource):
        return True
    try:
        return any(table_path(source.path, t).suffix != ".parquet" for t in TABLES)
    except RawDataError:
        return True


def _ranges_of(tables: RawTables, cut: AsOfCut, chunk_customers: int) -> Iterator[KnownChunk]:
    """A portfolio read whole, split into the customer ranges a Parquet folder is read in.

    The same ranges give the same output files (one row group per range) from every source.
    """
    ids = sorted(tables.customers["customer_id"].dropna().astype(str).unique())
    for number, where in enumerate(customer_ranges(ids, chunk_customers)):
        part = {}
        for name, frame in tables.items():
            column = frame["customer_id"].astype(object)
            inside = pd.Series(True, index=frame.index)
            if where.start is not None:
                inside &= column.ge(where.start).fillna(False).astype(bool)
            if where.stop is not None:
                inside &= column.lt(where.stop).fillna(False).astype(bool)
            if where.start is not None:
                inside &= column.notna()
            part[name] = frame[inside]
        yield KnownChunk(RawTables.from_mapping(part), cut if number == 0 else AsOfCut(cut.as_of))


def iter_known_chunks(
    raw: RawSource | Path | str,
    as_of: date,
    chunk_customers: int,
    mode: Literal["cut", "strict"] = "cut",
) -> Iterator[KnownChunk]:
    """The portfolio as known at ``as_of``, one validated customer range at a time.

    Args:
        raw: a raw folder or database URL (see :mod:`features.source`).
        as_of: the point in time (later records are left out, as :func:`load_raw_at` does).
        chunk_customers: customers known at ``as_of`` per range (the rows of later customers
            go with the range their id falls in, and are left out there).
        mode: ``cut`` leaves later records out; ``strict`` keeps every record and reports
            one dated after ``as_of`` as a problem, as :func:`load_raw` does (the training
            set's extract: each snapshot takes its own point in time).

    Yields:
        One :class:`KnownChunk` per range, in customer-id order.

    Raises:
        RawValidationError: after the last range, listing every problem of every range, when
            any check failed (no range is yielded after the first failing one).
        ValueError: if ``chunk_customers`` < 1.
    """
    if chunk_customers < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_customers}")
    source = open_raw_source(raw)
    if _whole(source):
        if mode == "strict":
            yield from _ranges_of(load_raw(source, as_of), AsOfCut(as_of), chunk_customers)
            return
        known = load_raw_at(source, as_of)
        yield from _ranges_of(known.tables, known.cut, chunk_customers)
        return
    assert isinstance(source, FolderSource)
    try:
        folder = _ParquetFolder(source.path)
        ids = folder.customer_ids(as_of)
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError):
        # an unreadable file or customers without their columns: the whole read reports it
        if mode == "strict":
            yield KnownChunk(load_raw(source, as_of), AsOfCut(as_of))
            return
        known = load_raw_at(source, as_of)
        yield KnownChunk(known.tables, known.cut)
        return
    problems = _Problems()
    counts: dict[str, int] = {}
    for where in customer_ranges(ids, chunk_customers):
        read_problems: list[Problem] = []
        frames: list[tuple[str, pd.DataFrame]] = []
        for table in TABLES:
            try:
                frames.append((table, folder.read(table, where)))
            except RawDataError as error:
                read_problems.append(
                    Problem(table, "(file)", "readable table file", 1, (str(error),))
                )
        if mode == "strict":
            tables, cut = dict(frames), AsOfCut(as_of)
        else:
            tables, cut = cut_tables(frames, as_of)
        report = validate_tables(tables, as_of)
        for table, n in report.row_counts.items():
            if table in tables:
                counts[table] = counts.get(table, 0) + n
        problems.add(read_problems)
        problems.add(
            [
                p
                for p in report.problems
                if not (p.check == "table present" and p.column == "(table)")
            ]
        )
        if problems.found:
            continue
        yield KnownChunk(RawTables.from_mapping(report.tables), cut)
    if problems.found:
        raise RawValidationError(problems.report(counts))


@dataclass(frozen=True)
class WrittenFeatures:
    """What :func:`write_features_at` wrote."""

    rows: int
    features: int
    cut: AsOfCut


def write_features_at(
    raw: RawSource | Path | str,
    as_of: date,
    out: Path,
    *,
    chunk_customers: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> WrittenFeatures:
    """Features of every customer at ``as_of`` into ``out`` (Parquet, or CSV by suffix).

    Range by range (:func:`iter_known_chunks`): each is read as known at ``as_of``,
    validated, computed (:func:`features.catalog.compute_features`) and appended; the file
    appears only when complete and equals ``compute_features`` of the whole portfolio.

    Raises:
        RawValidationError: listing every problem (nothing is written).
        ValueError: if ``chunk_customers`` < 1.
    """
    from features.catalog import FEATURE_SPEC, compute_features

    cuts = []
    with ChunkedFileWriter(out) as writer:
        for chunk in iter_known_chunks(raw, as_of, chunk_customers):
            cuts.append(chunk.cut)
            writer.write(compute_features(chunk.tables, as_of))
            if progress is not None:
                progress(writer.rows)
        rows = writer.rows
    return WrittenFeatures(rows, len(FEATURE_SPEC.names), merge_cuts(cuts, as_of))
