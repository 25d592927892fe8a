"""Validation of a raw folder against the contract: every problem in one report.

Each table is checked lazily against its pandera schema (types, bounds, keys, row
checks); then the cross-table rules are checked (known customer and facility ids,
no event after the as-of date). Nothing stops at the first problem.

Two readers: ``load_raw_at`` is the point-in-time read of every command that takes an
as-of date (records after it are left out, then what remains is validated);
``load_raw`` reads the whole folder, which may hold nothing after its date (default today).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd
import pandera.pandas as pa

from features.asof import AsOfCut, count_later
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


def _schema_problems(table: str, frame: pd.DataFrame, report: ValidationReport) -> pd.DataFrame:
    """Validate one table; record its problems and return the coerced frame (best effort)."""
    schema = SCHEMAS[table]
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.copy()
        cases["column"] = cases["column"].fillna(table).astype(str)
        cases["check"] = cases["check"].astype(str)
        # A row-level check fails once per column of the row: report it once, by row number.
        row_level = (cases["schema_context"] == "DataFrameSchema") & cases["index"].notna()
        for check, group in cases[row_level].groupby("check", sort=True):
            columns = ",".join(sorted(set(group["column"]))) if "unique" in check else "(row)"
            rows = [f"row {int(i)}" for i in pd.unique(group["index"])]
            report.add(table, columns, check, rows)
        for (column, check), group in cases[~row_level].groupby(["column", "check"], sort=True):
            column_name = "(table)" if column == table else column
            report.add(table, column_name, check, group["failure_case"].tolist())
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
    return result


def _cross_table_problems(
    tables: dict[str, pd.DataFrame], as_of: date | None, report: ValidationReport
) -> None:
    customers = tables.get("customers")
    if customers is not None and "customer_id" in customers:
        if customers.empty:
            report.add("customers", "(table)", "at least one customer", ["0 rows"])
        known = set(customers["customer_id"].dropna())
        for table in TABLES[1:]:
            frame = tables.get(table)
            if frame is not None and "customer_id" in frame:
                unknown = frame.loc[~frame["customer_id"].isin(known), "customer_id"]
                report.add(table, "customer_id", "customer_id known in customers", unknown)

    facilities = tables.get("credit_facilities")
    repayments = tables.get("repayments")
    if (
        facilities is not None
        and repayments is not None
        and {"facility_id", "customer_id"} <= set(facilities.columns)
        and {"facility_id", "customer_id"} <= set(repayments.columns)
    ):
        owner = facilities.drop_duplicates("facility_id").set_index("facility_id")["customer_id"]
        known_facility = repayments["facility_id"].isin(owner.index)
        report.add(
            "repayments",
            "facility_id",
            "facility_id known in credit_facilities",
            repayments.loc[~known_facility, "facility_id"],
        )
        expected_owner = repayments["facility_id"].map(owner)
        mismatch = known_facility & (expected_owner != repayments["customer_id"])
        report.add(
            "repayments",
            "customer_id",
            "customer_id equals the facility's customer_id",
            repayments.loc[mismatch, "facility_id"],
        )

    if as_of is None:
        return
    limit = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    for table, columns in AS_OF_COLUMNS.items():
        frame = tables.get(table)
        if frame is None:
            continue
        for column in columns:
            if column in frame and pd.api.types.is_datetime64_any_dtype(frame[column]):
                late = frame.loc[frame[column] >= limit, column]
                report.add(table, column, f"not after as-of {as_of.isoformat()}", late)


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


RawInput = RawSource | Path | str
"""What ``--raw`` names: a folder path, a database URL, or an opened source."""


def validate_raw_dir(
    raw_dir: RawInput, as_of: date | None = None, *, strict: bool = False
) -> ValidationReport:
    """Read and validate every table of a raw folder or database, collecting all problems.

    A missing or unreadable file is reported as a problem of its table, never raised.

    Args:
        raw_dir: the raw folder, or a database URL (see :mod:`features.source`).
        as_of: the date to check against (default today).
        strict: a record after ``as_of`` is a problem. Otherwise, when ``as_of`` is given, the
            records after it are information (``report.later``: what a command at ``as_of``
            leaves out); without ``as_of`` a record after today is always a problem.
    """
    mode: Literal["strict", "inform"] = "strict" if strict or as_of is None else "inform"
    return _validate_source(open_raw_source(raw_dir), as_of or date.today(), mode)


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
