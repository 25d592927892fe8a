from __future__ import annotations

import json

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
