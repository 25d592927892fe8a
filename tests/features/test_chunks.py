"""A raw folder read customer range by customer range equals the whole point-in-time read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import compute_features
from features.chunks import (
    CustomerRange,
    customer_ranges,
    iter_known_chunks,
    merge_cuts,
    write_features_at,
)
from features.io import ChunkedFileWriter, RawTables, write_raw
from features.synthetic import GeneratorConfig, generate_tables
from features.validate import RawValidationError, load_raw_at

AS_OF = date(2023, 6, 30)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 customers with history after AS_OF (later customers, payments made later)."""
    config = GeneratorConfig(customers=24, seed=5, start=date(2021, 1, 1), end=date(2025, 6, 30))
    raw, _ = generate_tables(config)
    folder = tmp_path_factory.mktemp("chunks") / "raw"
    write_raw(raw, folder)
    return folder


def _parquet_roundtrip(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame.to_parquet(path, index=False)
    return pd.read_parquet(path)


def test_given_sorted_ids_when_split_then_ranges_are_contiguous_and_open_at_both_ends() -> None:
    ranges = customer_ranges(["a", "b", "c", "d", "e"], 2)
    assert ranges == [CustomerRange(None, "c"), CustomerRange("c", "e"), CustomerRange("e", None)]
    assert customer_ranges([], 3) == [CustomerRange(None, None)]
    with pytest.raises(ValueError, match="at least 1"):
        customer_ranges(["a"], 0)


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_given_later_history_when_read_in_ranges_then_tables_and_cut_equal_the_whole_read(
    raw_dir: Path, size: int
) -> None:
    # Given the whole point-in-time read
    whole = load_raw_at(raw_dir, AS_OF)
    # When the folder is read in ranges of `size` customers
    chunks = list(iter_known_chunks(raw_dir, AS_OF, size))
    # Then each range holds at most `size` customers known at AS_OF
    onboarded = [
        int((c.tables.customers["onboarding_date"] <= pd.Timestamp(AS_OF)).sum()) for c in chunks
    ]
    assert max(onboarded) <= size
    assert sum(onboarded) == len(whole.tables.customers)
    # and the ranges together are the whole read: rows (indexed by row of file), types, cut
    for name, frame in whole.tables.items():
        together = pd.concat([getattr(c.tables, name) for c in chunks]).sort_index()
        pd.testing.assert_frame_equal(together, frame.sort_index(), check_exact=True)
    assert merge_cuts([c.cut for c in chunks], AS_OF) == whole.cut
    assert not whole.cut.empty


def _broken(raw_dir: Path, target: Path) -> None:
    """The folder with problems in different customer ranges and outside every known id."""
    tables = dict(load_raw_at(raw_dir, date(2030, 1, 1)).tables.items())
    txns = tables["transactions"].copy()
    ids = sorted(tables["customers"]["customer_id"])
    txns.loc[txns.index[0], "amount"] = -5.0  # first customer's range
    last = txns.index[txns["customer_id"] == ids[-1]][0]
    txns.loc[last, "amount"] = -7.0  # last customer's range
    txns.loc[txns.index[1], "customer_id"] = "ZZZ-unknown"  # beyond every id
    txns.loc[txns.index[2], "customer_id"] = "0-unknown"  # before every id
    tables["transactions"] = txns
    customers = tables["customers"]
    tables["customers"] = pd.concat([customers, customers.iloc[[3]]], ignore_index=True)
    write_raw(RawTables.from_mapping(tables), target)


def _problems(error: RawValidationError) -> list[tuple[str, str, str, int, tuple[str, ...]]]:
    return sorted(
        (p.table, p.column, p.check, p.count, tuple(sorted(p.examples)))
        for p in error.report.problems
    )


def test_given_problems_in_several_ranges_when_read_in_ranges_then_one_report_lists_them_all(
    raw_dir: Path, tmp_path: Path
) -> None:
    # Given bad amounts in the first and last ranges, transactions of unknown customers before
    # and after every id, and a customer listed twice
    _broken(raw_dir, tmp_path / "bad")
    with pytest.raises(RawValidationError) as whole:
        load_raw_at(tmp_path / "bad", AS_OF)
    # When read in ranges of 4 customers
    seen = []
    with pytest.raises(RawValidationError) as chunked:
        seen.extend(iter_known_chunks(tmp_path / "bad", AS_OF, 4))
    # Then nothing was yielded and the one report equals the whole read's, problem by problem
    assert seen == []
    assert _problems(chunked.value) == _problems(whole.value)
    checks = {p.check for p in chunked.value.report.problems}
    assert "customer_id known in customers" in checks
    assert chunked.value.report.row_counts == whole.value.report.row_counts


@pytest.mark.parametrize(("suffix", "size"), [(".parquet", 1), (".parquet", 7), (".csv", 5)])
def test_given_later_history_when_features_written_in_ranges_then_equal_the_whole_computation(
    raw_dir: Path, tmp_path: Path, suffix: str, size: int
) -> None:
    expected = compute_features(load_raw_at(raw_dir, AS_OF).tables, AS_OF)
    out = tmp_path / f"f{suffix}"
    written = write_features_at(raw_dir, AS_OF, out, chunk_customers=size)
    assert written.rows == len(expected)
    if suffix == ".csv":
        whole = tmp_path / "whole.csv"
        expected.to_csv(whole, index=False)
        assert out.read_bytes() == whole.read_bytes()
    else:
        got = pd.read_parquet(out)
        whole = _parquet_roundtrip(expected, tmp_path / "w.parquet")
        pd.testing.assert_frame_equal(got, whole, check_exact=True)
    assert written.cut == load_raw_at(raw_dir, AS_OF).cut
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_given_a_bad_folder_when_features_written_then_the_old_file_stays_and_no_temp_is_left(
    raw_dir: Path, tmp_path: Path
) -> None:
    _broken(raw_dir, tmp_path / "bad")
    out = tmp_path / "out" / "f.parquet"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    with pytest.raises(RawValidationError):
        write_features_at(tmp_path / "bad", AS_OF, out, chunk_customers=3)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.parquet"]


def test_given_chunks_when_written_then_the_file_appears_only_when_closed(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    with ChunkedFileWriter(out) as writer:
        writer.write(pd.DataFrame({"a": [1, 2], "b": ["x", None]}))
        assert not out.exists()
        writer.write(pd.DataFrame({"a": [3], "b": ["y"]}))
    got = pd.read_parquet(out)
    assert got["a"].tolist() == [1, 2, 3]
    assert writer.rows == 3
    with pytest.raises(RuntimeError), ChunkedFileWriter(tmp_path / "u.parquet") as failing:
        failing.write(pd.DataFrame({"a": [1]}))
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]
