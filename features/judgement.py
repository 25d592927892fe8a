"""The optional raw tables of human judgement: qualitative assessments and overrides.

A raw folder may hold ``assessments`` and ``overrides`` (see `features.schema`); a folder
without them is valid and simply has no human judgement. Read at an as-of date they show what
was known then: an assessment from ``assessed_on``, an override from ``proposed_on``, and a
decision made after ``as_of`` is not known yet (the override is still ``proposed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.io import RawDataError, read_table, table_path
from features.schema import OPTIONAL_TABLES, SCHEMAS
from features.validate import RawValidationError, ValidationReport, _schema_problems


@dataclass(frozen=True)
class JudgementTables:
    """Assessments and overrides (either may be empty)."""

    assessments: pd.DataFrame
    overrides: pd.DataFrame

    def items(self) -> Iterable[tuple[str, pd.DataFrame]]:
        """(table name, frame) in contract order."""
        yield "assessments", self.assessments
        yield "overrides", self.overrides


def empty_table(table: str) -> pd.DataFrame:
    """An empty frame with the columns and dtypes of a contract table."""
    schema = SCHEMAS[table]
    return schema.coerce_dtype(pd.DataFrame({name: [] for name in schema.columns}))


def has_judgement(raw_dir: Path | str) -> bool:
    """Whether a raw folder holds either optional judgement table."""
    for table in OPTIONAL_TABLES:
        try:
            table_path(Path(raw_dir), table)
        except RawDataError:
            continue
        return True
    return False


def cut_judgement(tables: JudgementTables, as_of: date) -> JudgementTables:
    """The tables as known at ``as_of``: later records left out, later decisions undone."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    assessments = tables.assessments.loc[
        pd.to_datetime(tables.assessments["assessed_on"]) < end
    ].reset_index(drop=True)
    overrides = tables.overrides.loc[
        pd.to_datetime(tables.overrides["proposed_on"]) < end
    ].reset_index(drop=True)
    later = pd.to_datetime(overrides["decided_on"]) >= end
    if later.any():
        overrides = overrides.copy()
        overrides.loc[later, "status"] = "proposed"
        for column in ("approver", "decided_on", "valid_until"):
            overrides.loc[later, column] = None
        overrides = SCHEMAS["overrides"].coerce_dtype(overrides)
    return JudgementTables(assessments=assessments, overrides=overrides)


def validate_optional(
    frames: dict[str, pd.DataFrame],
    tables: Iterable[str],
    customer_ids: Iterable[str] | None = None,
) -> tuple[ValidationReport, dict[str, pd.DataFrame]]:
    """Validate optional tables (a missing one is empty) against the contract.

    Args:
        frames: table name -> frame, for the tables the folder holds.
        tables: the optional tables expected.
        customer_ids: known customers; a record of another customer is a problem.

    Returns:
        The report (every problem) and the coerced tables by name.
    """
    report = ValidationReport()
    coerced: dict[str, pd.DataFrame] = {}
    known = None if customer_ids is None else {str(c) for c in customer_ids}
    for table in tables:
        if table not in frames:
            coerced[table] = empty_table(table)
            continue
        report.row_counts[table] = len(frames[table])
        coerced[table] = _schema_problems(table, frames[table], report)
        frame = coerced[table]
        if known is not None and "customer_id" in frame:
            unknown = frame.loc[~frame["customer_id"].astype(str).isin(known), "customer_id"]
            report.add(table, "customer_id", "customer_id known in customers", unknown)
    report.tables = coerced
    return report, coerced


def read_optional(raw_dir: Path | str, tables: Iterable[str]) -> dict[str, pd.DataFrame]:
    """The optional tables a raw folder holds, read without validation (absent ones left out).

    Raises:
        RawDataError: if a table file cannot be read.
    """
    frames = {}
    for table in tables:
        try:
            table_path(Path(raw_dir), table)
        except RawDataError:
            continue
        frames[table] = read_table(Path(raw_dir), table)
    return frames


def validate_judgement(
    frames: dict[str, pd.DataFrame], customer_ids: Iterable[str] | None = None
) -> tuple[ValidationReport, JudgementTables]:
    """Validate the judgement tables given (a missing one is empty) against the contract.

    Args:
        frames: table name -> frame, for the tables the folder holds.
        customer_ids: known customers; a record of another customer is a problem.

    Returns:
        The report (every problem) and the coerced tables.
    """
    report, coerced = validate_optional(frames, OPTIONAL_TABLES, customer_ids)
    return report, JudgementTables(coerced["assessments"], coerced["overrides"])


def load_judgement(
    raw_dir: Path | str, as_of: date | None = None, customer_ids: Iterable[str] | None = None
) -> JudgementTables | None:
    """Read, validate and (given ``as_of``) cut the judgement tables of a raw folder.

    Returns:
        None when the folder holds neither table.

    Raises:
        RawValidationError: listing every problem of the tables.
        RawDataError: if a table file cannot be read.
    """
    frames = read_optional(raw_dir, OPTIONAL_TABLES)
    if not frames:
        return None
    report, tables = validate_judgement(frames, customer_ids)
    if not report.ok:
        raise RawValidationError(report)
    return tables if as_of is None else cut_judgement(tables, as_of)
