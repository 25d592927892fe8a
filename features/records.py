"""The optional raw tables of the customer relationship: credit reviews and contract terms.

A raw folder may hold ``reviews`` and ``contract_terms`` (see `features.schema`); a folder
without them is valid. They are the tables the management store can later feed: monitoring
reads the same frames. Read at an as-of date they show what was known then: a review from its
``review_date``, a contract term from its ``effective_date`` (and only until its expiry).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.judgement import empty_table, read_optional, validate_optional
from features.schema import RECORD_TABLES
from features.validate import RawValidationError, ValidationReport


@dataclass(frozen=True)
class RecordTables:
    """Reviews and contract terms (either may be empty)."""

    reviews: pd.DataFrame
    contract_terms: pd.DataFrame

    def items(self) -> Iterable[tuple[str, pd.DataFrame]]:
        """(table name, frame) in contract order."""
        yield "reviews", self.reviews
        yield "contract_terms", self.contract_terms


def empty_records() -> RecordTables:
    """No reviews and no contract terms."""
    return RecordTables(empty_table("reviews"), empty_table("contract_terms"))


def cut_records(tables: RecordTables, as_of: date) -> RecordTables:
    """The tables as known at ``as_of``: later reviews and terms not yet in effect left out."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    reviews = tables.reviews.loc[pd.to_datetime(tables.reviews["review_date"]) < end]
    terms = tables.contract_terms.loc[pd.to_datetime(tables.contract_terms["effective_date"]) < end]
    return RecordTables(reviews.reset_index(drop=True), terms.reset_index(drop=True))


def validate_records(
    frames: dict[str, pd.DataFrame], customer_ids: Iterable[str] | None = None
) -> tuple[ValidationReport, RecordTables]:
    """Validate the record tables given (a missing one is empty) against the contract.

    Returns:
        The report (every problem) and the coerced tables.
    """
    report, coerced = validate_optional(frames, RECORD_TABLES, customer_ids)
    return report, RecordTables(coerced["reviews"], coerced["contract_terms"])


def load_records(
    raw_dir: Path | str, as_of: date | None = None, customer_ids: Iterable[str] | None = None
) -> RecordTables:
    """Read, validate and (given ``as_of``) cut the record tables of a raw folder.

    Returns:
        The tables; both empty when the folder holds neither.

    Raises:
        RawValidationError: listing every problem of the tables.
        RawDataError: if a table file cannot be read.
    """
    report, tables = validate_records(read_optional(raw_dir, RECORD_TABLES), customer_ids)
    if not report.ok:
        raise RawValidationError(report)
    return tables if as_of is None else cut_records(tables, as_of)
