"""Contract tests: the raw-data validator finds every problem and reports it clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.io import read_raw
from features.schema import SCHEMAS
from features.validate import RawValidationError, load_raw, validate_raw_dir
from tests.conftest import SAMPLE_AS_OF


@pytest.fixture
def raw_copy(sample_raw_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "raw"
    shutil.copytree(sample_raw_dir, target, ignore=shutil.ignore_patterns("_truth"))
    return target


def _rewrite(raw_dir: Path, table: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(raw_dir / f"{table}.parquet", index=False)


def test_generated_portfolio_passes_every_schema(sample_raw_dir: Path) -> None:
    # Given a generated portfolio
    raw = read_raw(sample_raw_dir)
    # When each table is validated against its schema, then none raises
    for name, frame in raw.items():
        SCHEMAS[name].validate(frame, lazy=True)
    # and the whole folder (cross-table rules included) is valid
    report = validate_raw_dir(sample_raw_dir, SAMPLE_AS_OF)
    assert report.ok, report.summary()
    assert report.row_counts["customers"] == 400


def test_corrupted_copy_lists_both_problems(raw_copy: Path) -> None:
    # Given negative total assets in one statement and a duplicated transaction id
    statements = pd.read_parquet(raw_copy / "financial_statements.parquet")
    statements.loc[3, "total_assets"] = -1.0
    _rewrite(raw_copy, "financial_statements", statements)
    txns = pd.read_parquet(raw_copy / "transactions.parquet")
    txns.loc[10, "txn_id"] = txns.loc[11, "txn_id"]
    _rewrite(raw_copy, "transactions", txns)
    # When the folder is validated
    report = validate_raw_dir(raw_copy, SAMPLE_AS_OF)
    # Then both problems are listed, with table, column, count and the failing values
    found = {(p.table, p.column): p for p in report.problems}
    assert ("financial_statements", "total_assets") in found
    assert found["financial_statements", "total_assets"].examples == ("-1.0",)
    assert ("transactions", "txn_id") in found
    assert found["transactions", "txn_id"].count == 2
    assert not report.ok


def test_cross_table_rules(raw_copy: Path) -> None:
    # Given an instalment of an unknown facility, a transaction of an unknown customer and
    # a transaction dated after the as-of date
    repayments = pd.read_parquet(raw_copy / "repayments.parquet")
    repayments.loc[0, "facility_id"] = "F_UNKNOWN"
    _rewrite(raw_copy, "repayments", repayments)
    txns = pd.read_parquet(raw_copy / "transactions.parquet")
    txns.loc[0, "customer_id"] = "C_UNKNOWN"
    txns.loc[1, "ts"] = pd.Timestamp("2030-01-01")
    _rewrite(raw_copy, "transactions", txns)
    # When validated strictly (nothing may lie after the as-of date)
    report = validate_raw_dir(raw_copy, SAMPLE_AS_OF, strict=True)
    checks = {(p.table, p.column, p.check) for p in report.problems}
    # Then each rule names its table and column
    assert ("repayments", "facility_id", "facility_id known in credit_facilities") in checks
    assert ("transactions", "customer_id", "customer_id known in customers") in checks
    assert ("transactions", "ts", "not after as-of 2025-12-31") in checks
    # And without --strict the later transaction is information, not a problem
    lenient = validate_raw_dir(raw_copy, SAMPLE_AS_OF)
    assert "ts" not in {p.column for p in lenient.problems}
    assert lenient.later is not None and lenient.later.dropped["transactions"] == 1


def test_missing_unreadable_and_wrong_type_are_reported_not_raised(raw_copy: Path) -> None:
    # Given a missing table, a truncated Parquet file and a column of the wrong type
    (raw_copy / "defaults.parquet").unlink()
    data = (raw_copy / "repayments.parquet").read_bytes()
    (raw_copy / "repayments.parquet").write_bytes(data[: len(data) // 2])
    customers = pd.read_parquet(raw_copy / "customers.parquet")
    customers["founded_date"] = "not a date"
    _rewrite(raw_copy, "customers", customers)
    # When validated
    report = validate_raw_dir(raw_copy, SAMPLE_AS_OF)
    by_table = {(p.table, p.column) for p in report.problems}
    # Then every problem is in the one report
    assert ("defaults", "(file)") in by_table
    assert ("repayments", "(file)") in by_table
    assert ("customers", "founded_date") in by_table


def test_csv_folder_is_accepted(sample_raw_dir: Path, tmp_path: Path) -> None:
    # Given the same portfolio as CSV files
    for name, frame in read_raw(sample_raw_dir).items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    # When loaded, then it validates and keeps its ids as strings
    raw = load_raw(tmp_path, SAMPLE_AS_OF)
    assert raw.customers["customer_id"].str.startswith("C").all()
    assert len(raw.transactions) == len(read_raw(sample_raw_dir).transactions)


def test_load_raw_raises_with_the_report(raw_copy: Path) -> None:
    # Given an extract with a future onboarding date
    customers = pd.read_parquet(raw_copy / "customers.parquet")
    customers.loc[0, "onboarding_date"] = pd.Timestamp("2031-05-01")
    _rewrite(raw_copy, "customers", customers)
    # When loaded, then the error carries the report naming the column
    with pytest.raises(RawValidationError) as caught:
        load_raw(raw_copy, SAMPLE_AS_OF)
    assert "customers.onboarding_date" in str(caught.value)
