"""`features build` range by range writes the files the whole-portfolio build writes.

`build_dataset_chunked` reads, validates and computes one customer range at a time; the
training set, its card and the Parquet file's bytes must equal
``write_dataset(build_dataset(load_raw(raw)))`` whatever the chunk size and the source.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.build import (
    CARD_JSON,
    DATASET_FILE,
    DatasetConfig,
    build_dataset,
    build_dataset_chunked,
    write_dataset,
)
from features.synthetic import GeneratorConfig, generate
from features.validate import RawValidationError, load_raw
from tests.cli_helpers import run_main
from tests.conftest import built_once

WINDOW = DatasetConfig(first_snapshot=date(2022, 12, 31), last_snapshot=date(2024, 6, 30))
"""Seven quarterly snapshots: every kind of row (new, short history, defaulted) in a few."""


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 14-customer portfolio: small enough to build with ranges of one customer."""
    root = built_once(
        tmp_path_factory,
        "tiny-14",
        lambda d: generate(GeneratorConfig(customers=14, seed=3), d / "raw"),
    )
    return root / "raw"


def _whole(raw: Path, out: Path, config: DatasetConfig) -> Path:
    write_dataset(build_dataset(load_raw(raw), config), out)
    return out


def _same_files(got: Path, expected: Path) -> None:
    assert (got / DATASET_FILE).read_bytes() == (expected / DATASET_FILE).read_bytes()
    assert json.loads((got / CARD_JSON).read_text()) == json.loads(
        (expected / CARD_JSON).read_text()
    )
    assert (got / "card.md").read_text() == (expected / "card.md").read_text()
    assert sorted(p.name for p in got.iterdir()) == ["card.json", "card.md", "dataset.parquet"]


@pytest.mark.parametrize("chunk", [1, 4, 13, 1000])
def test_given_ranges_of_any_size_when_built_then_same_bytes_as_the_whole_build(
    tiny_raw: Path, tmp_path: Path, chunk: int
) -> None:
    # Given the whole-portfolio build of a small portfolio
    expected = _whole(tiny_raw, tmp_path / "whole", WINDOW)
    # When it is built in ranges of `chunk` customers
    card = build_dataset_chunked(tiny_raw, tmp_path / "chunked", WINDOW, chunk_customers=chunk)
    # Then the dataset file, its card and the card's markdown are the same, byte for byte
    _same_files(tmp_path / "chunked", expected)
    assert card["rows"] == len(pd.read_parquet(expected / DATASET_FILE))


def test_given_the_sample_portfolio_when_built_in_ranges_then_same_frame_and_card(
    sample_raw_dir: Path, tmp_path: Path
) -> None:
    # Given the 400-customer sample built whole, with its default snapshot range
    config = DatasetConfig()
    expected = _whole(sample_raw_dir, tmp_path / "whole", config)
    # When it is built in ranges of 150 customers, the output in row groups of 5,000 rows
    card = build_dataset_chunked(
        sample_raw_dir, tmp_path / "chunked", config, chunk_customers=150, row_group=5_000
    )
    # Then the training set and its content hash are the same; only the row groups differ
    got = pd.read_parquet(tmp_path / "chunked" / DATASET_FILE)
    pd.testing.assert_frame_equal(got, pd.read_parquet(expected / DATASET_FILE))
    whole_card = json.loads((expected / CARD_JSON).read_text())
    assert {k: v for k, v in card.items() if k != "file_sha256"} == {
        k: v for k, v in whole_card.items() if k != "file_sha256"
    }
    row_groups = pq.ParquetFile(tmp_path / "chunked" / DATASET_FILE).metadata.num_row_groups
    assert row_groups == -(-len(got) // 5_000)


def test_given_a_csv_folder_when_built_in_ranges_then_same_bytes_as_from_parquet(
    tiny_raw: Path, tmp_path: Path
) -> None:
    # Given the same portfolio as a CSV folder (read whole, then split into the same ranges)
    csv = tmp_path / "csv"
    csv.mkdir()
    for path in tiny_raw.glob("*.parquet"):
        pd.read_parquet(path).to_csv(csv / f"{path.stem}.csv", index=False)
    expected = _whole(tiny_raw, tmp_path / "whole", WINDOW)
    # When it is built in ranges of 5 customers
    build_dataset_chunked(csv, tmp_path / "from-csv", WINDOW, chunk_customers=5)
    # Then the files equal the Parquet folder's whole build
    _same_files(tmp_path / "from-csv", expected)


def test_given_a_record_after_today_when_built_then_the_error_names_it_and_nothing_changes(
    tiny_raw: Path, tmp_path: Path
) -> None:
    # Given a dataset already built, and a copy of the folder with a statement published
    # after today in the last customer range
    built = _whole(tiny_raw, tmp_path / "ds", WINDOW)
    before = {p.name: p.read_bytes() for p in built.iterdir()}
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw, ignore=shutil.ignore_patterns("_truth"))
    statements = pd.read_parquet(raw / "financial_statements.parquet")
    last = statements["customer_id"].idxmax()
    statements.loc[last, "published_date"] = pd.Timestamp("2030-03-01")
    statements.to_parquet(raw / "financial_statements.parquet", index=False)
    # When it is built again in ranges of 3 customers
    with pytest.raises(RawValidationError) as raised:
        build_dataset_chunked(raw, built, WINDOW, chunk_customers=3, today=date(2026, 1, 1))
    # Then the error names the column and the check, and the old dataset is left as it was
    assert "published_date" in str(raised.value) and "not after as-of" in str(raised.value)
    assert {p.name: p.read_bytes() for p in built.iterdir()} == before


def test_given_bad_raw_data_when_the_command_runs_then_exit_2_and_no_dataset(
    tiny_raw: Path, tmp_path: Path
) -> None:
    # Given a folder whose customers table has a duplicate id
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw, ignore=shutil.ignore_patterns("_truth"))
    customers = pd.read_parquet(raw / "customers.parquet")
    customers.loc[1, "customer_id"] = customers.loc[2, "customer_id"]
    customers.to_parquet(raw / "customers.parquet", index=False)
    # When `riskgrade features build` runs on it in ranges of 4 customers
    out = tmp_path / "ds"
    code, _, err = run_main("features", "build", "--raw", str(raw), "--out", str(out),
                            "--chunk-size", "4")  # fmt: skip
    # Then it exits 2 naming the problem, without a traceback, and writes no dataset
    assert code == 2
    text = " ".join(err.split())
    assert "customer_id" in text and "Traceback" not in text
    assert not out.exists() or not any(out.iterdir())
