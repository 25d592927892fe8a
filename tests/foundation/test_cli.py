"""The command line: thin commands, clear errors, exit codes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from riskgrade.cli import app
from tests.cli_helpers import run_main

runner = CliRunner(env={"COLUMNS": "200"})


def _riskgrade(*args: str) -> subprocess.CompletedProcess[str]:
    """``riskgrade ARGS`` through the console entry point, in process (the hostile-CLI catalogue
    runs the installed script itself)."""
    code, out, err = run_main(*args)
    return subprocess.CompletedProcess(["riskgrade", *args], code, out, err)


def test_validate_prints_row_counts(sample_raw_dir: Path) -> None:
    result = runner.invoke(app, ["validate", str(sample_raw_dir), "--as-of", "2025-12-31"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert "transactions" in result.output


def test_validate_exits_1_and_names_each_problem(sample_raw_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sample_raw_dir, raw)
    statements = pd.read_parquet(raw / "financial_statements.parquet")
    statements.loc[0, "total_assets"] = -5.0
    statements.to_parquet(raw / "financial_statements.parquet", index=False)
    result = runner.invoke(app, ["validate", str(raw), "--as-of", "2025-12-31"])
    assert result.exit_code == 1
    assert "total_assets" in result.output
    assert "financial_statements" in result.output


def test_bad_date_argument_is_a_usage_error(sample_raw_dir: Path) -> None:
    result = runner.invoke(app, ["validate", str(sample_raw_dir), "--as-of", "31/12/2025"])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_generate_writes_a_valid_folder(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    result = runner.invoke(app, ["generate", "--customers", "60", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(
        f"{t}.parquet"
        for t in (
            "customers",
            "financial_statements",
            "credit_facilities",
            "repayments",
            "transactions",
            "defaults",
            "assessments",
            "overrides",
            "reviews",
            "contract_terms",
        )
    )
    assert (out / "_truth" / "true_pd.parquet").is_file()
    # the optional judgement tables hold to their contract
    from features.judgement import load_judgement

    judgement = load_judgement(out)
    assert judgement is not None and len(judgement.assessments) > 0
    # and so do the relationship records
    from features.records import load_records

    records = load_records(out)
    assert len(records.reviews) > 0 and len(records.contract_terms) > 0


def test_invalid_generator_setting_names_the_field(tmp_path: Path) -> None:
    # Given a start date that is not the first of a month, when generating from the console
    result = _riskgrade(
        "generate", "--customers", "10", "--start", "2020-01-15", "--out", str(tmp_path / "r")
    )
    # Then a clear error, exit 2, no traceback and nothing written
    assert result.returncode == 2
    assert "start must be the first day of a month" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_describe_prints_segments_and_default_rates(sample_raw_dir: Path) -> None:
    result = runner.invoke(app, ["describe", str(sample_raw_dir), "--as-of", "2025-12-31"])
    assert result.exit_code == 0, result.output
    assert "Customers by industry and size" in result.output
    assert "Default rate by year" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("generate: {customers: -1}", "generate.customers"),
        ("bogus: 1", "bogus"),
        ("covenants: {templates: {high: {max_debt_ratio: -1}}}", "covenants.templates.high"),
        ("monitoring: {warnings: {severities: {grade_drop: severe}}}", "monitoring.warnings"),
    ],
)
def test_invalid_params_file_names_the_key(tmp_path: Path, content: str, message: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(content)
    result = _riskgrade("generate", "--params", str(params), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert message in result.stderr


def test_params_yaml_loads_and_has_no_yaml_dates() -> None:
    # DVC reads params.yaml too and refuses YAML date values: dates are quoted strings.
    import datetime

    import yaml

    from riskgrade.config import load_params

    root = Path(__file__).resolve().parents[2]

    def walk(node: object) -> list[object]:
        if isinstance(node, dict):
            return [v for value in node.values() for v in walk(value)]
        if isinstance(node, list):
            return [v for value in node for v in walk(value)]
        return [node]

    document = yaml.safe_load((root / "params.yaml").read_text())
    assert not [v for v in walk(document) if isinstance(v, datetime.date)]
    assert load_params(root / "params.yaml").generate.start == datetime.date(2019, 1, 1)
