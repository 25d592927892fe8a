"""The chunked validator reports exactly what the whole-table validator reports.

`validate_raw_dir` reads a folder a few rows at a time (pandera per chunk, keys by hash across
chunks, cross-table rules by ids); `load_raw` and the point-in-time reads validate whole tables.
A folder with seeded faults of every kind must give the same report either way, whatever the
chunk size.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.io import RawTables, iter_table, read_table
from features.source import open_raw_source
from features.validate import ValidationReport, _validate_source, validate_raw_dir
from reliability.hostile import AS_OF as HOSTILE_AS_OF
from reliability.hostile import CASES, Case, base_tables, write_case
from tests.conftest import SAMPLE_AS_OF

SMALL_CHUNK = 997
"""Rows per chunk in the tests: every table of the sample spans several chunks."""


def _copy(sample_raw_dir: Path, target: Path) -> Path:
    shutil.copytree(sample_raw_dir, target, ignore=shutil.ignore_patterns("_truth"))
    return target


def _edit(raw: Path, table: str, change: Callable[[pd.DataFrame], None]) -> None:
    path = raw / f"{table}.parquet"
    frame = pd.read_parquet(path)
    change(frame)
    frame.to_parquet(path, index=False)


def _seed_row_faults(raw: Path) -> None:
    """Every kind of row fault: type, null, range, allowed value, key, row rule, reference, date."""

    def customers(c: pd.DataFrame) -> None:
        c.loc[5, "customer_id"] = c.loc[6, "customer_id"]  # duplicate key
        c.loc[7, "industry"] = ""  # string length
        c.loc[8, "size_class"] = "huge"  # allowed values
        c.loc[9, "founded_date"] = pd.NaT  # not nullable
        c.loc[10, "onboarding_date"] = c.loc[10, "founded_date"] - pd.Timedelta(days=3)  # row rule
        c.loc[11, "founded_date"] = pd.Timestamp("1850-01-01")  # date bound
        c.loc[12, "onboarding_date"] = pd.Timestamp("2030-01-01")  # after as-of
        c["extra"] = 1  # strict columns

    def statements(s: pd.DataFrame) -> None:
        s.loc[3, "total_assets"] = -1.0
        s.loc[4, "revenue"] = np.nan
        s.loc[5, "net_income"] = np.inf
        s.loc[6, ["customer_id", "period_end"]] = s.loc[7, ["customer_id", "period_end"]].values
        far = len(s) - 1  # the same (customer, period) in another chunk
        s.loc[far, ["customer_id", "period_end"]] = s.loc[20, ["customer_id", "period_end"]].values
        s.loc[8, "period_months"] = 5
        s.loc[9, "published_date"] = s.loc[9, "period_end"] - pd.Timedelta(days=1)
        s.loc[10, "cash"] = s.loc[10, "current_assets"] * 2 + 1
        s.drop(columns=["audited"], inplace=True)  # missing column

    def facilities(f: pd.DataFrame) -> None:
        f.loc[1, "currency"] = "USD"
        f.loc[2, "limit"] = 0.0
        f.loc[3, "maturity_date"] = f.loc[3, "opened"]
        f.loc[4, "facility_id"] = f.loc[5, "facility_id"]
        f.loc[6, "customer_id"] = None

    def repayments(r: pd.DataFrame) -> None:
        r.loc[0, "facility_id"] = "F_UNKNOWN"
        r.loc[1, "customer_id"] = "C_OTHER"
        r.loc[2, "instalment_no"] = 0
        paid, unpaid = r.index[r["paid_date"].notna()], r.index[r["paid_date"].isna()]
        r.loc[paid[0], "amount_paid"] = 0.0
        r.loc[unpaid[0], "amount_paid"] = 5.0
        r.loc[20, ["facility_id", "instalment_no"]] = r.loc[21, ["facility_id", "instalment_no"]]

    def transactions(t: pd.DataFrame) -> None:
        t.loc[0, "customer_id"] = "C_UNKNOWN"
        t.loc[1, "ts"] = pd.Timestamp("2030-01-01")
        t.loc[10, "txn_id"] = t.loc[11, "txn_id"]
        t.loc[5000, "txn_id"] = t.loc[12, "txn_id"]  # a duplicate across chunks
        t.loc[13, "direction"] = "sideways"
        t["amount"] = t["amount"].astype(str)  # wrong type, and one value that is no number
        t.loc[4000, "amount"] = "abc"

    def defaults(d: pd.DataFrame) -> None:
        d.loc[0, "default_type"] = "bankrupt"
        d.loc[1, "customer_id"] = "C_NOBODY"

    for table, change in [
        ("customers", customers),
        ("financial_statements", statements),
        ("credit_facilities", facilities),
        ("repayments", repayments),
        ("transactions", transactions),
        ("defaults", defaults),
    ]:
        _edit(raw, table, change)


@pytest.fixture(scope="module")
def faulty(sample_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = _copy(sample_raw_dir, tmp_path_factory.mktemp("faulty") / "raw")
    _seed_row_faults(raw)
    return raw


@pytest.fixture(scope="module")
def broken(sample_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A missing table, a truncated file, a column that is no date at all."""
    raw = _copy(sample_raw_dir, tmp_path_factory.mktemp("broken") / "raw")
    (raw / "defaults.parquet").unlink()
    data = (raw / "repayments.parquet").read_bytes()
    (raw / "repayments.parquet").write_bytes(data[: len(data) // 2])
    _edit(raw, "customers", lambda c: c.__setitem__("founded_date", "not a date"))
    return raw


def _whole(raw: Path, *, strict: bool) -> ValidationReport:
    """The whole-table validator (as `load_raw` and the point-in-time reads run it)."""
    return _validate_source(open_raw_source(raw), SAMPLE_AS_OF, "strict" if strict else "inform")


def _assert_same(chunked: ValidationReport, whole: ValidationReport) -> None:
    assert chunked.problems == whole.problems
    assert chunked.row_counts == whole.row_counts
    assert chunked.later == whole.later


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("rows", [SMALL_CHUNK, 10**7])
def test_given_seeded_faults_when_validated_in_chunks_then_the_same_report(
    faulty: Path, strict: bool, rows: int
) -> None:
    # Given a folder with faults of every kind, validated whole
    whole = _whole(faulty, strict=strict)
    # When it is validated in chunks
    chunked = validate_raw_dir(faulty, SAMPLE_AS_OF, strict=strict, chunk_rows=rows)
    # Then the report is the same: checks, counts, examples, row counts, later records
    _assert_same(chunked, whole)
    found = {(p.table, p.column, p.check): p for p in chunked.problems}
    txn_ids = found["transactions", "txn_id", "field_uniqueness"]
    assert txn_ids.count == 4  # two pairs, one of them across chunks
    keys = found["financial_statements", "customer_id,period_end", "multiple_fields_uniqueness"]
    assert keys.count == 4
    assert found["customers", "(row)", "onboarding_date >= founded_date"].examples[-1] == "row 10"
    assert found["transactions", "amount", "coerce_dtype('float64')"].examples == ("abc",)
    assert found["repayments", "facility_id", "facility_id known in credit_facilities"].count >= 1
    assert found["financial_statements", "(table)", "column_in_dataframe"].count == 1
    assert found["customers", "(table)", "column_in_schema"].count == 1
    late = ("transactions", "ts", "not after as-of 2025-12-31")
    assert (late in found) is strict
    assert (chunked.later is None) is strict
    if not strict:
        assert chunked.later is not None and chunked.later.dropped["transactions"] >= 1


@pytest.mark.parametrize("strict", [False, True])
def test_given_missing_truncated_and_untyped_when_chunked_then_the_same_report(
    broken: Path, strict: bool
) -> None:
    # Given a folder missing a table, with a truncated file and a column of the wrong type
    whole = _whole(broken, strict=strict)
    # When validated in chunks
    chunked = validate_raw_dir(broken, SAMPLE_AS_OF, strict=strict, chunk_rows=SMALL_CHUNK)
    # Then the same report, each of them in it
    _assert_same(chunked, whole)
    columns = {(p.table, p.column) for p in chunked.problems}
    assert {("defaults", "(file)"), ("repayments", "(file)"), ("customers", "founded_date")} <= (
        columns
    )


def test_given_a_csv_folder_with_faults_when_chunked_then_the_same_report(
    faulty: Path, tmp_path: Path
) -> None:
    # Given the faulty folder as CSV files
    for table in ("customers", "financial_statements", "credit_facilities", "repayments",
                  "transactions", "defaults"):  # fmt: skip
        pd.read_parquet(faulty / f"{table}.parquet").to_csv(tmp_path / f"{table}.csv", index=False)
    # When validated whole and in chunks, then the reports are the same
    whole = _whole(tmp_path, strict=True)
    chunked = validate_raw_dir(tmp_path, SAMPLE_AS_OF, strict=True, chunk_rows=SMALL_CHUNK)
    _assert_same(chunked, whole)
    assert len(chunked.problems) > 20


def test_given_an_untyped_column_then_a_chunk_that_types_it_is_range_checked(
    sample_raw_dir: Path, tmp_path: Path
) -> None:
    # Given amounts stored as text: one is no number, another (in a later chunk) is zero
    raw = _copy(sample_raw_dir, tmp_path / "raw")

    def amounts(t: pd.DataFrame) -> None:
        t["amount"] = t["amount"].astype(str)
        t.loc[14, "amount"] = "abc"
        t.loc[4000, "amount"] = "0.0"

    _edit(raw, "transactions", amounts)
    # When validated whole: pandera cannot range-check a column it could not type at all
    whole = {(p.column, p.check): p for p in _whole(raw, strict=True).problems}
    in_range = ("amount", "in_range(0.0, 10000000000000.0)")
    assert whole[in_range].examples[0].startswith("TypeError")
    assert whole[in_range].count == 1
    # Then in chunks the same type failure, and the zero amount too: its chunk could be typed
    chunked = validate_raw_dir(raw, SAMPLE_AS_OF, strict=True, chunk_rows=SMALL_CHUNK)
    found = {(p.column, p.check): p for p in chunked.problems}
    assert found["amount", "coerce_dtype('float64')"] == whole["amount", "coerce_dtype('float64')"]
    assert found[in_range].count == 2
    assert found[in_range].examples == (whole[in_range].examples[0], "0.0")
    assert [p for p in chunked.problems if p.column != "amount"] == [
        p for p in _whole(raw, strict=True).problems if p.column != "amount"
    ]


def test_given_a_table_when_read_in_chunks_then_the_rows_and_numbers_of_the_file(
    sample_raw_dir: Path,
) -> None:
    # Given a table of several thousand rows
    whole = read_table(sample_raw_dir, "transactions")
    # When read in chunks
    chunks = list(iter_table(sample_raw_dir, "transactions", SMALL_CHUNK))
    # Then no chunk is larger than asked, and together they are the table, row numbers kept
    assert max(len(c) for c in chunks) == SMALL_CHUNK and len(chunks) > 5
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)


def test_given_a_clean_folder_when_chunked_then_valid_with_its_row_counts(
    sample_raw_dir: Path,
) -> None:
    # Given the generated portfolio; when validated in small chunks
    report = validate_raw_dir(sample_raw_dir, SAMPLE_AS_OF, chunk_rows=SMALL_CHUNK)
    # Then it is valid, with the row count of each table, and nothing is kept in memory
    assert report.ok, report.summary()
    assert report.row_counts == {
        name: len(read_table(sample_raw_dir, name)) for name in report.row_counts
    }
    assert report.tables == {}


@pytest.fixture(scope="module")
def hostile_base() -> RawTables:
    return base_tables()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_given_each_hostile_case_when_chunked_then_the_whole_table_report(
    case: Case, hostile_base: RawTables, tmp_path: Path
) -> None:
    # Given a folder broken as in the hostile catalogue (its large tables span several chunks)
    folder = write_case(case, hostile_base, tmp_path / "raw")
    for strict in (False, True):
        # When validated whole and in chunks of 200 rows
        whole = _validate_source(
            open_raw_source(folder), HOSTILE_AS_OF, "strict" if strict else "inform"
        )
        chunked = validate_raw_dir(folder, HOSTILE_AS_OF, strict=strict, chunk_rows=200)
        # Then the same report
        _assert_same(chunked, whole)
    assert not chunked.ok


def test_given_customers_over_several_chunks_when_chunked_then_the_whole_table_report(
    sample_raw_dir: Path, tmp_path: Path
) -> None:
    # Given 400 customers (three chunks of 150) with faults in different chunks, the other
    # tables cut to their first rows
    raw = _copy(sample_raw_dir, tmp_path / "raw")
    for table in ("financial_statements", "credit_facilities", "repayments", "transactions"):
        _edit(raw, table, lambda frame: frame.drop(frame.index[100:], inplace=True))

    def customers(c: pd.DataFrame) -> None:
        c.loc[300, "customer_id"] = c.loc[20, "customer_id"]  # the same key in two chunks
        c.loc[200, "onboarding_date"] = c.loc[200, "founded_date"] - pd.Timedelta(days=1)
        c.loc[399, "region"] = None
        c.loc[[1, 390], "onboarding_date"] = pd.Timestamp("2030-01-01")  # later customers
        c["extra"] = 1  # the same in every chunk: reported once

    _edit(raw, "customers", customers)
    for strict in (False, True):
        # When validated whole and in chunks of 150 rows
        whole = _whole(raw, strict=strict)
        chunked = validate_raw_dir(raw, SAMPLE_AS_OF, strict=strict, chunk_rows=150)
        # Then the same report
        _assert_same(chunked, whole)
    found = {(p.column, p.check): p for p in chunked.problems if p.table == "customers"}
    assert found["customer_id", "field_uniqueness"].count == 2
    assert found["(table)", "column_in_schema"].count == 1
    assert found["onboarding_date", "not after as-of 2025-12-31"].count == 2
