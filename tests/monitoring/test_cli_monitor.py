from __future__ import annotations

import json

import pandas as pd
import typer
from typer.testing import CliRunner

from features.io import write_raw
from riskgrade import cli_monitor


def test_given_raw_folder_when_monitor_twice_then_tables_store_and_report(
    scenario, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write_raw(scenario.shocked, tmp_path / "raw")
    app = typer.Typer()
    cli_monitor.register(app)

    @app.callback()
    def _root() -> None:  # keep "monitor" as a named subcommand
        pass

    runner = CliRunner()
    common = ["--raw", "raw", "--bundle", str(scenario.bundle_dir), "--store", "m.duckdb"]
    first = runner.invoke(app, ["monitor", *common, "--as-of", "2022-12-31"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["monitor", *common, "--as-of", "2023-12-31", "--rows", "5"])
    assert second.exit_code == 0, second.output
    # Then the migration matrices, drift and early warnings are printed
    for title in ("Tier migration", "Grade migration", "Drift: PSI", "Early warnings"):
        assert title in second.output
    assert "R20221231-01" in second.output
    # And the report was written under reports/monitoring/<run id>
    report = tmp_path / "reports" / "monitoring" / "R20231231-01"
    summary = json.loads((report / "report.json").read_text())["summary"]
    assert summary["previous_run_id"] == "R20221231-01"
    assert (report / "report.html").is_file()
    # And a bad date is an error naming the option
    bad = runner.invoke(app, ["monitor", *common, "--as-of", "2023-13-01"])
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_given_an_80_column_terminal_when_monitor_prints_then_tables_fit_and_names_are_whole(
    scenario, tmp_path, monkeypatch
):
    # Given a portfolio monitored once before, and a terminal 80 columns wide
    monkeypatch.chdir(tmp_path)
    write_raw(scenario.shocked, tmp_path / "raw")
    app = typer.Typer()
    cli_monitor.register(app)

    @app.callback()
    def _root() -> None:
        pass

    runner = CliRunner(env={"COLUMNS": "80"})
    common = ["--raw", "raw", "--bundle", str(scenario.bundle_dir), "--store", "m.duckdb"]
    assert runner.invoke(app, ["monitor", *common, "--as-of", "2022-12-31"]).exit_code == 0
    # When the next run is printed
    result = runner.invoke(app, ["monitor", *common, "--as-of", "2023-12-31", "--rows", "8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # Then no line is wider than the terminal
    assert max(len(line) for line in lines) <= 80
    folder = tmp_path / "reports" / "monitoring" / "R20231231-01"
    # And every drifting feature shown is named in full
    drift = pd.read_csv(folder / "drift.csv")
    shown = drift[drift["flag"].isin(["watch", "alert"])]["feature"].head(7)
    assert len(shown) > 0
    for name in shown:
        assert any(line.startswith(f"{name} ") for line in lines), name
    # And each early warning is one line: customer, grade and tier moves, action, in full
    warnings = pd.read_csv(folder / "early_warnings.csv", dtype=str).head(8)
    for row in warnings.itertuples(index=False):
        mine = [line for line in lines if line.startswith(row.customer_id + " ")]
        assert len(mine) == 1, row.customer_id
        assert f"{row.previous_tier}→{row.tier}" in mine[0] or row.previous_tier == row.tier
        assert f" {row.tier} " in mine[0] + " " or f"→{row.tier} " in mine[0]
        assert row.action in mine[0] and "…" not in mine[0], mine[0]
