"""The hostile raw-data catalogue: every case refused by the CLI, the validator and the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.io import RawTables, write_raw
from reliability.hostile import CASES, base_tables, check_case, cli_validate, pipeline


@pytest.fixture(scope="module")
def base() -> RawTables:
    return base_tables()


def test_given_the_catalogue_then_it_holds_at_least_15_distinct_cases():
    names = [case.name for case in CASES]
    assert len(names) >= 15
    assert len(set(names)) == len(names)


def test_given_the_unbroken_portfolio_when_validated_and_built_then_it_passes(base, tmp_path):
    write_raw(base, tmp_path / "raw")
    exit_code, _ = cli_validate(tmp_path / "raw")
    card = pipeline(tmp_path / "raw", tmp_path / "dataset")
    assert exit_code == 0
    assert card["rows"] > 0
    assert (tmp_path / "dataset" / "dataset.parquet").is_file()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_given_a_hostile_folder_when_checked_then_refused_everywhere_without_output(
    case, base, tmp_path: Path
):
    result = check_case(case, base, tmp_path)
    assert result["cli_exit_1"], result
    assert result["validator_rejects"], result
    assert result["pipeline_rejects"], result
    assert result["no_partial_output"], result
    assert result["message"]
