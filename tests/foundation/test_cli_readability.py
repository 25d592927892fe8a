"""What the command line prints reads right: split names, dates, table widths."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from typer.testing import CliRunner

from riskgrade.cli import app
from riskgrade.console import frame_table
from tests.training.test_pipeline import _table

runner = CliRunner(env={"COLUMNS": "120"})


def _render(table: object, width: int = 120) -> str:
    console = Console(width=width, file=io.StringIO())
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_given_snapshot_dates_when_tabled_then_days_without_a_midnight_time() -> None:
    # Given rows per snapshot date as `features build` groups them (datetime64 index)
    dataset = pd.DataFrame(
        {
            "snapshot_date": pd.to_datetime(["2020-06-30", "2020-06-30", "2020-12-31"]),
            "default_12m": [0, 1, 0],
        }
    )
    per_snapshot = dataset.groupby("snapshot_date")["default_12m"].agg(["size", "mean"])
    # When shown as a table
    text = _render(frame_table(per_snapshot, "Rows and default rate per snapshot", index=True))
    # Then the dates read as days
    assert "2020-06-30" in text and "2020-12-31" in text
    assert "00:00:00" not in text
    # And a time of day that is not midnight is kept
    moments = pd.DataFrame({"at": pd.to_datetime(["2020-06-30 14:05:00"])})
    assert "2020-06-30 14:05:00" in _render(frame_table(moments, "moments"))


def test_given_a_table_without_time_column_when_trained_then_the_test_is_called_random(
    tmp_path: Path,
) -> None:
    # Given an own table without a time column (stratified random split)
    table = tmp_path / "own.csv"
    _table(n=800).to_csv(table, index=False)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"train": {"show_progress": False, "registry": {"enabled": False}}})
    )
    # When trained from the command line
    result = runner.invoke(
        app,
        [
            "train",
            "--table",
            str(table),
            "--target",
            "status",
            "--positive",
            "bad",
            "--drop",
            "id",
            "--out",
            str(tmp_path / "out"),
            "--params",
            str(params),
        ],
    )
    assert result.exit_code == 0, result.output
    # Then the tables name a random test sample, never an out-of-time test
    assert "Validation (random test sample)" in result.output
    assert "grades on the random test sample" in result.output
    assert "out-of-time" not in result.output
