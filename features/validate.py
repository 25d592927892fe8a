"""Validation of a raw folder against the contract: every problem in one report.

Each table is checked lazily against its pandera schema (types, bounds, keys, row
checks): first by the fast verdict derived from that schema (`features.contract_check`), which
only ever says "valid"; on any failure or doubt pandera validates and reports. Then the
cross-table rules are checked (known customer and facility ids, no event after the
as-of date). Nothing stops at the first problem.

``validate_raw_dir`` (the ``validate`` command) reads a folder a chunk of rows at a time:
each chunk goes through the same pandera schema, keys are checked across chunks by a hash
per row (repeats are compared by value), and between tables only ids are kept, so memory
does not grow with the portfolio. Its report is the whole-table report, but for one thing:
a column pandera cannot type at all skips its other checks only in the chunks concerned.

Two readers: ``load_raw_at`` is the point-in-time read of every command that takes an
as-of date (records after it are left out, then what remains is validated);
``load_raw`` reads the whole folder, which may hold nothing after its date (default today).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import polars as pl

from features.asof import AsOfCut, LaterCount, count_later
from features.contract_check import fast_coerce
from features.errors import RiskgradeError
from features.io import RawDataError, RawTables
from features.schema import AS_OF_COLUMNS, SCHEMAS, TABLES
from features.source import RawSource, open_raw_source

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Problem:
    """One failed check: where, what, how often, and a few failing values."""

    table: str
    column: str
    check: str
    count: int
    examples: tuple[str, ...] = ()


@dataclass
class ValidationReport:
    """The outcome of validating a raw folder."""

    problems: list[Problem] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    """The tables as coerced by their schemas (usable only when ``ok``)."""
    later: AsOfCut | None = None
    """Information, not a problem: the records after the as-of date (non-strict check)."""

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems

    def add(self, table: str, column: str, check: str, failing: pd.Series | list) -> None:
        """Record a problem from the failing values (nothing when there are none)."""
        values = list(failing)
        if values:
            examples = tuple(_show(value) for value in values[:MAX_EXAMPLES])
            self.problems.append(Problem(table, column, check, len(values), examples))

    def summary(self) -> str:
        """A plain-text rendering, one problem a line."""
        if self.ok:
            return "ok: " + ", ".join(f"{t}={n}" for t, n in self.row_counts.items())
        return "\n".join(
            f"{p.table}.{p.column}: {p.check} ({p.count} failing, e.g. {', '.join(p.examples)})"
            for p in self.problems
        )


class RawValidationError(RiskgradeError, ValueError):
    """Raw data broke the contract; ``report`` lists every problem."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__("raw data failed validation:\n" + report.summary())
        self.report = report


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class _Tally:
    """One failed check being counted: its report column, check, count and first examples."""

    column: str
    check: str
    count: int = 0
    examples: list[object] = field(default_factory=list)

    def add(self, count: int, values: list[object]) -> None:
        self.count += count
        self.examples.extend(values[: MAX_EXAMPLES - len(self.examples)])

    def problem(self, table: str) -> Problem:
        return Problem(
            table, self.column, self.check, self.count, tuple(_show(v) for v in self.examples)
        )


_TallyKey = tuple[int, str, str]
"""Report order of a table's failed checks: row checks by name, then (column, check)."""


def _case_tallies(table: str, cases: pd.DataFrame) -> dict[_TallyKey, _Tally]:
    """Pandera's failure cases of one table (or one chunk of it) as counted checks."""
    cases = cases.copy()
    cases["column"] = cases["column"].fillna(table).astype(str)
    cases["check"] = cases["check"].astype(str)
    tallies: dict[_TallyKey, _Tally] = {}
    # A row-level check fails once per column of the row: report it once, by row number.
    row_level = (cases["schema_context"] == "DataFrameSchema") & cases["index"].notna()
    for check, group in cases[row_level].groupby("check", sort=True):
        columns = ",".join(sorted(set(group["column"]))) if "unique" in check else "(row)"
        rows: list[object] = [f"row {int(i)}" for i in pd.unique(group["index"])]
        tallies[0, str(check), ""] = _Tally(columns, str(check), len(rows), rows[:MAX_EXAMPLES])
    for (column, check), group in cases[~row_level].groupby(["column", "check"], sort=True):
        values = group["failure_case"].tolist()
        column_name = "(table)" if column == table else str(column)
        tallies[1, str(column), str(check)] = _Tally(
            column_name, str(check), len(values), values[:MAX_EXAMPLES]
        )
    return tallies


def _schema_problems(table: str, frame: pd.DataFrame, report: ValidationReport) -> pd.DataFrame:
    """Validate one table; record its problems and return the coerced frame (best effort)."""
    schema = SCHEMAS[table]
    passed = fast_coerce(schema, frame)
    if passed is not None:
        return passed
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        for _, tally in sorted(_case_tallies(table, errors.failure_cases).items()):
            report.problems.append(tally.problem(table))
        return _coerce_leniently(table, frame)


def _coerce_leniently(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce what can be coerced so the cross-table checks still run on a broken table."""
    result = frame.copy()
    for name, column in SCHEMAS[table].columns.items():
        if name not in result.columns:
            continue
        if str(column.dtype).startswith("datetime64"):
            result[name] = pd.to_datetime(result[name], errors="coerce")
        elif column.dtype.type is str:
            result[name] = result[name].astype("string")
        elif str(column.dtype).startswith("str") and result[name].dtype == object:
            result[name] = _as_text(result[name])
    return result


def _as_text(values: pd.Series) -> pd.Series:
    """Non-text values of an object column as their text (nulls kept): ids compare as text."""
    other = values.notna() & ~values.map(lambda v: isinstance(v, str)).astype(bool)
    if not other.any():
        return values
    values = values.copy()
    values[other] = values[other].astype(str)
    return values


def _among(values: pd.Series, known: pd.Index) -> pd.Series:
    """Whether each value is in ``known`` (unique); a hash lookup, as ``isin`` of a set."""
    return pd.Series(known.get_indexer(values) >= 0, index=values.index)


class _CrossTable:
    """The rules across tables, fed table by table in contract order and chunk by chunk.

    Known customer ids, facility owners, no event after ``as_of`` (when given). Only the ids
    are kept between tables, never the rows.
    """

    def __init__(self, as_of: date | None) -> None:
        self.as_of = as_of
        self.limit = None if as_of is None else pd.Timestamp(as_of) + pd.Timedelta(days=1)
        self.known: pd.Index | None = None
        self.owner: pd.Series | None = None
        self._ids: set[str] | None = None
        self._customer_rows = 0
        self._owners: list[pd.DataFrame] | None = None
        self._tallies: dict[tuple[int, int, int], _Tally] = {}
        self._tables: dict[tuple[int, int, int], str] = {}

    def _add(
        self,
        key: tuple[int, int, int],
        table: str,
        column: str,
        check: str,
        failing: pd.Series | list[str],
    ) -> None:
        values = list(failing.iloc[:MAX_EXAMPLES] if isinstance(failing, pd.Series) else failing)
        if len(failing):
            tally = self._tallies.setdefault(key, _Tally(column, check))
            tally.add(len(failing), values)
            self._tables[key] = table

    def add(self, table: str, frame: pd.DataFrame) -> None:
        """Check one (coerced) chunk of ``table``."""
        position = TABLES.index(table)
        if table == "customers" and "customer_id" in frame:
            self._ids = set() if self._ids is None else self._ids
            self._ids.update(frame["customer_id"].dropna())
            self._customer_rows += len(frame)
        if table != "customers" and self.known is not None and "customer_id" in frame:
            unknown = ~_among(frame["customer_id"], self.known)
            if unknown.any():
                check = "customer_id known in customers"
                failing = frame.loc[unknown, "customer_id"]
                self._add((1, position, 0), table, "customer_id", check, failing)
        pair = {"facility_id", "customer_id"}
        if table == "credit_facilities" and pair <= set(frame.columns):
            self._owners = [] if self._owners is None else self._owners
            self._owners.append(frame[["facility_id", "customer_id"]])
        if table == "repayments" and self.owner is not None and pair <= set(frame.columns):
            known_facility = _among(frame["facility_id"], self.owner.index)
            if not known_facility.all():
                self._add(
                    (2, position, 0),
                    table,
                    "facility_id",
                    "facility_id known in credit_facilities",
                    frame.loc[~known_facility, "facility_id"],
                )
            expected_owner = frame["facility_id"].map(self.owner)
            mismatch = known_facility & (expected_owner != frame["customer_id"])
            if mismatch.any():
                self._add(
                    (3, position, 0),
                    table,
                    "customer_id",
                    "customer_id equals the facility's customer_id",
                    frame.loc[mismatch, "facility_id"],
                )
        if self.as_of is None:
            return
        for index, column in enumerate(AS_OF_COLUMNS.get(table, ())):
            if column in frame and pd.api.types.is_datetime64_any_dtype(frame[column]):
                after = frame[column] >= self.limit
                if after.any():
                    check = f"not after as-of {self.as_of.isoformat()}"
                    self._add((4, position, index), table, column, check, frame.loc[after, column])

    def end(self, table: str) -> None:
        """Close ``table``: its ids become the reference of the tables after it."""
        if table == "customers" and self._ids is not None:
            if not self._customer_rows:
                self._add((0, 0, 0), table, "(table)", "at least one customer", ["0 rows"])
            self.known, self._ids = pd.Index(list(self._ids), dtype=object), None
        if table == "credit_facilities" and self._owners is not None:
            owners = pd.concat(self._owners).drop_duplicates("facility_id")
            by_facility = pd.Index(owners["facility_id"], dtype=object)
            self.owner = pd.Series(owners["customer_id"].to_numpy(), index=by_facility)
            self._owners = None

    def discard(self, table: str) -> None:
        """Forget ``table`` (it could not be read to its end)."""
        if table == "customers":
            self._ids, self._customer_rows = None, 0
        if table == "credit_facilities":
            self._owners = None
        for key in [k for k, t in self._tables.items() if t == table]:
            del self._tallies[key], self._tables[key]

    def problems(self) -> list[Problem]:
        """The failed rules, in report order."""
        return [self._tallies[k].problem(self._tables[k]) for k in sorted(self._tallies)]


def _cross_table_problems(
    tables: dict[str, pd.DataFrame], as_of: date | None, report: ValidationReport
) -> None:
    cross = _CrossTable(as_of)
    for table in TABLES:
        if table in tables:
            cross.add(table, tables[table])
            cross.end(table)
    report.problems.extend(cross.problems())


def validate_tables(
    raw: RawTables | dict[str, pd.DataFrame], as_of: date | None
) -> ValidationReport:
    """Validate in-memory raw tables against the contract.

    Args:
        raw: the tables (a ``RawTables`` or a name -> frame mapping; missing names are reported).
        as_of: extract date; no event may lie after it (``None``: dates are not checked).

    Returns:
        The report; ``report.ok`` tells whether the data may be used.
    """
    report = ValidationReport()
    given = dict(raw.items()) if isinstance(raw, RawTables) else dict(raw)
    coerced: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        if table not in given:
            report.add(table, "(table)", "table present", ["missing"])
            continue
        report.row_counts[table] = len(given[table])
        coerced[table] = _schema_problems(table, given[table], report)
    _cross_table_problems(coerced, as_of, report)
    report.tables = coerced
    return report


def _validate_source(
    source: RawSource, as_of: date, mode: Literal["strict", "inform", "cut"]
) -> ValidationReport:
    """Validate a raw source against ``as_of`` in one of three modes.

    ``strict``: nothing may lie after ``as_of``; ``inform``: what lies after it is counted in
    ``report.later``; ``cut``: it is left out before validating (a database leaves it out in
    the query).
    """
    missing = source.missing()
    if missing is not None:
        report = ValidationReport()
        report.add("(folder)", source.label, "raw folder exists", [missing])
        return report
    read_problems: list[Problem] = []

    def unreadable(table: str, error: RawDataError) -> None:
        read_problems.append(Problem(table, "(file)", "readable table file", 1, (str(error),)))

    later = None
    if mode == "cut":
        tables, later = source.read_at(as_of, unreadable)
    else:
        tables = dict(source.read_each(unreadable))
    report = validate_tables(tables, None if mode == "inform" else as_of)
    report.row_counts = {t: n for t, n in report.row_counts.items() if t in tables}
    report.problems = read_problems + [
        p for p in report.problems if not (p.check == "table present" and p.column == "(table)")
    ]
    if mode == "inform":
        later = count_later(report.tables.items(), as_of)
    report.later = later
    return report


CHUNK_ROWS = 500_000
"""Rows of a table validated at a time by :func:`validate_raw_dir`."""


@cache
def _without_keys(table: str) -> pa.DataFrameSchema:
    """The table's schema without its uniqueness rules (checked across chunks instead)."""
    schema = SCHEMAS[table]
    stripped = schema.update_columns(
        {name: {"unique": False} for name, column in schema.columns.items() if column.unique}
    )
    stripped.unique = None
    return stripped


def _keys(table: str) -> list[tuple[str, ...]]:
    """The uniqueness rules of a table: each unique column, then its unique column set."""
    schema = SCHEMAS[table]
    keys = [(name,) for name, column in schema.columns.items() if column.unique]
    return keys + ([tuple(schema.unique)] if schema.unique else [])


class _TableTallies:
    """The failed checks of one table, merged over its chunks."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.tallies: dict[_TallyKey, _Tally] = {}
        self._seen: set[tuple[str, ...]] = set()

    def add(self, cases: pd.DataFrame) -> None:
        """Count pandera's failure cases of one chunk.

        A case without a row (a column missing or extra, a check that could not run) is the
        same in every chunk: it counts once.
        """
        cases = cases.reset_index(drop=True)
        whole = cases["index"].isna()
        if whole.any():
            fresh = []
            for case in cases.loc[whole].itertuples():
                fields = (case.schema_context, case.column, case.check, case.failure_case)
                signature = tuple(str(value) for value in fields)
                if signature not in self._seen:
                    self._seen.add(signature)
                    fresh.append(case.Index)
            cases = cases[~whole | cases.index.isin(fresh)]
        for key, tally in _case_tallies(self.table, cases).items():
            merged = self.tallies.setdefault(key, _Tally(tally.column, tally.check))
            merged.add(tally.count, tally.examples)

    def problems(self) -> list[Problem]:
        return [self.tallies[key].problem(self.table) for key in sorted(self.tallies)]


def _row_hashes(values: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row (stable within the process; nulls hash alike)."""
    return pl.from_pandas(values, include_index=False).hash_rows().to_numpy()


class _KeyHashes:
    """Uniqueness of a table's keys across chunks: a 64-bit hash per row, then exact values.

    Only the hashes are kept (8 bytes a row per key); rows whose hash repeats are read again
    and compared by value, so a hash collision is never reported.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self.hashes: dict[tuple[str, ...], list[np.ndarray]] = {key: [] for key in _keys(table)}

    def _values(self, chunk: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame | None:
        if not set(key) <= set(chunk.columns):
            return None
        return _coerce_leniently(self.table, chunk[list(key)])

    def add(self, chunk: pd.DataFrame) -> None:
        """Hash the keys of one chunk."""
        for key, hashes in self.hashes.items():
            values = self._values(chunk, key)
            if values is not None:
                hashes.append(_row_hashes(values))

    def cases(self, source: RawSource, rows: int) -> pd.DataFrame | None:
        """Pandera-style failure cases of every repeated key (None when all are unique)."""
        repeated = {}
        for key, parts in self.hashes.items():
            if parts:
                hashes = np.sort(np.concatenate(parts))
                twice = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
                if twice.size:
                    repeated[key] = twice
        self.hashes = {}
        if not repeated:
            return None
        found: dict[tuple[str, ...], list[pd.DataFrame]] = {key: [] for key in repeated}
        for chunk in source.read_chunks(self.table, rows):
            for key, twice in repeated.items():
                values = self._values(chunk, key)
                if values is not None:
                    hashes = _row_hashes(values)
                    found[key].append(values[np.isin(hashes, twice)])
        cases = []
        for key, parts in found.items():
            candidates = pd.concat(parts)
            duplicated = candidates[candidates.duplicated(list(key), keep=False)]
            single = len(key) == 1
            for column in key:
                cases.append(
                    pd.DataFrame(
                        {
                            "schema_context": "Column" if single else "DataFrameSchema",
                            "column": column,
                            "check": "field_uniqueness" if single else "multiple_fields_uniqueness",
                            "failure_case": duplicated[column].astype(object),
                            "index": duplicated.index,
                        }
                    )
                )
        return pd.concat(cases, ignore_index=True)


def _stream_table(
    source: RawSource, table: str, rows: int, cross: _CrossTable, later: LaterCount | None
) -> tuple[list[Problem], int]:
    """Validate one table chunk by chunk: its problems and its number of rows.

    Raises:
        RawDataError: if the table cannot be read to its end.
    """
    schema = _without_keys(table)
    tallies = _TableTallies(table)
    keys = _KeyHashes(table)
    count = 0
    for chunk in source.read_chunks(table, rows):
        count += len(chunk)
        coerced = fast_coerce(schema, chunk)
        if coerced is None:
            try:
                coerced = schema.validate(chunk, lazy=True)
            except pa.errors.SchemaErrors as errors:
                tallies.add(errors.failure_cases)
                coerced = _coerce_leniently(table, chunk)
        keys.add(chunk)
        cross.add(table, coerced)
        if later is not None:
            later.add(table, coerced)
    repeated = keys.cases(source, rows)
    if repeated is not None:
        tallies.add(repeated)
    return tallies.problems(), count


def _validate_chunked(
    source: RawSource, as_of: date, *, strict: bool, rows: int
) -> ValidationReport:
    """:func:`_validate_source` (strict or inform) one chunk of each table at a time.

    What is kept between chunks: counts, the first examples of each failed check, the key
    hashes of each table, the ids of customers and facilities (the references of the tables
    after them) and, without ``strict``, the columns of customers and facilities that name
    the records after ``as_of``.
    """
    report = ValidationReport()
    missing = source.missing()
    if missing is not None:
        report.add("(folder)", source.label, "raw folder exists", [missing])
        return report
    read_problems: list[Problem] = []
    schema_problems: list[Problem] = []
    cross = _CrossTable(as_of if strict else None)
    later = None if strict else LaterCount(as_of)
    for table in TABLES:
        try:
            problems, count = _stream_table(source, table, rows, cross, later)
        except RawDataError as error:
            read_problems.append(Problem(table, "(file)", "readable table file", 1, (str(error),)))
            cross.discard(table)
            if later is not None:
                later.discard(table)
            continue
        cross.end(table)
        if later is not None:
            later.end(table)
        report.row_counts[table] = count
        schema_problems.extend(problems)
    report.problems = read_problems + schema_problems + cross.problems()
    report.later = None if later is None else later.result()
    return report


RawInput = RawSource | Path | str
"""What ``--raw`` names: a folder path, a database URL, or an opened source."""


def validate_raw_dir(
    raw_dir: RawInput,
    as_of: date | None = None,
    *,
    strict: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationReport:
    """Read and validate every table of a raw folder or database, collecting all problems.

    A missing or unreadable file is reported as a problem of its table, never raised. A
    folder is read ``chunk_rows`` rows at a time (memory does not grow with the portfolio;
    ``report.tables`` stays empty); a database table is read whole.

    Args:
        raw_dir: the raw folder, or a database URL (see :mod:`features.source`).
        as_of: the date to check against (default today).
        strict: a record after ``as_of`` is a problem. Otherwise, when ``as_of`` is given, the
            records after it are information (``report.later``: what a command at ``as_of``
            leaves out); without ``as_of`` a record after today is always a problem.
        chunk_rows: rows of a table checked at a time.
    """
    source = open_raw_source(raw_dir)
    strict = strict or as_of is None
    return _validate_chunked(source, as_of or date.today(), strict=strict, rows=chunk_rows)


def load_raw(raw_dir: RawInput, as_of: date | None = None) -> RawTables:
    """Read the whole raw folder (or database), validate it and return the coerced tables.

    No record may lie after ``as_of`` (default today): for the extract as a whole (the
    training set's snapshots each take their own point in time). Commands at an as-of date
    read with :func:`load_raw_at` instead.

    Raises:
        RawValidationError: listing every problem when any check fails.
    """
    report = _validate_source(open_raw_source(raw_dir), as_of or date.today(), "strict")
    if not report.ok:
        raise RawValidationError(report)
    return RawTables.from_mapping(report.tables)


@dataclass(frozen=True)
class PointInTimeRaw:
    """The tables of a raw folder as known at one date, and what was left out."""

    tables: RawTables
    cut: AsOfCut


def load_raw_at(raw_dir: RawInput, as_of: date) -> PointInTimeRaw:
    """Read a raw folder or database as known at ``as_of``, then validate what remains.

    The point-in-time read of every command that takes an as-of date: later records are left
    out (see :mod:`features.asof`), not refused, and the contract is checked on what the
    command uses. Folder tables are read and cut one at a time; a database cuts in the query.

    Raises:
        RawValidationError: listing every problem of the records known at ``as_of``.
    """
    report = _validate_source(open_raw_source(raw_dir), as_of, "cut")
    if not report.ok:
        raise RawValidationError(report)
    return PointInTimeRaw(RawTables.from_mapping(report.tables), report.later or AsOfCut(as_of))
