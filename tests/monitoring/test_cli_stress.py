"""``riskgrade stress`` end to end through the console entry point, on the sample portfolio."""

from __future__ import annotations

import json

import pytest

from features.io import write_raw
from tests.cli_helpers import run_main


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture()
def workdir(scenario, tmp_path, monkeypatch):
    """A folder holding the raw portfolio; the command runs there (default params)."""
    monkeypatch.chdir(tmp_path)
    write_raw(scenario.base, tmp_path / "raw")
    return tmp_path


def _args(scenario, *extra: str) -> list[str]:
    return ["stress", "--raw", "raw", "--bundle", str(scenario.bundle_dir), *extra]


def test_given_a_shipped_scenario_when_stress_then_tables_and_report(scenario, workdir):
    # When the recession is run by name at the end of the sample
    code, out, err = run_main(*_args(scenario, "--as-of", "2024-12-31", "--scenario", "recession"))
    # Then it succeeds and prints the summary, both migration matrices and the segments
    assert code == 0, err
    text = _flat(out)
    for part in (
        "Stress test 'recession' at 2024-12-31",
        "expected defaults",
        "covenant breaches",
        "Tier migration, base → stressed",
        "Grade migration, base → stressed",
        "Expected defaults by industry",
        "Expected defaults by region",
        "manufacturing",
    ):
        assert part in text, part
    # And the report lands in reports/stress/<scenario>-<as-of>
    folder = workdir / "reports" / "stress" / "recession-2024-12-31"
    summary = json.loads((folder / "report.json").read_text())["summary"]
    assert summary["customers"] == len(scenario.base.customers)
    assert summary["stressed_expected_defaults"] > summary["base_expected_defaults"]
    assert summary["stressed_covenant_breaches"] >= summary["base_covenant_breaches"]
    for name in ("report.html", "customers.csv", "segments.csv", "grade_migration.csv"):
        assert (folder / name).is_file(), name


def test_given_an_own_scenario_file_when_stress_then_report_in_out(scenario, workdir):
    (workdir / "mine.yaml").write_text(
        "name: hospitality_west\nshocks:\n"
        "  - industries: [hospitality]\n    regions: [west]\n    revenue: 0.4\n"
    )
    code, out, err = run_main(
        *_args(scenario, "--as-of", "2024-12-31", "--scenario", "mine.yaml", "--out", "o")
    )
    assert code == 0, err
    assert "Stress test 'hospitality_west'" in _flat(out)
    summary = json.loads((workdir / "o" / "report.json").read_text())["summary"]
    assert 0 < summary["shocked_customers"] < summary["customers"]


@pytest.mark.parametrize(
    ("scenario_text", "as_of", "expected"),
    [
        (None, "2024-12-31", "scenario file missing.yaml does not exist"),
        ("name: s\nshocks: [\n", "2024-12-31", "is not valid YAML at line 3"),
        (
            "name: s\nshocks:\n  - industries: [shipping]\n",
            "2024-12-31",
            "shocks.0.industries: unknown industry ['shipping']",
        ),
        ("name: s\nshocks:\n  - revenue: 2\n", "2024-12-31", "shocks.0.revenue"),
        ("name: s\nshocks:\n  - revenue: 0.1\n", "2000-01-01", "at least one customer"),
        ("name: s\nshocks:\n  - revenue: 0.1\n", "2024-02-30", "--as-of"),
    ],
)
def test_given_bad_input_when_stress_then_exit_2_with_one_line(
    scenario, workdir, scenario_text, as_of, expected
):
    # Given a bad scenario file, a date before the data, or a date that is not one
    path = "missing.yaml"
    if scenario_text is not None:
        path = "bad.yaml"
        (workdir / path).write_text(scenario_text)
    # When stress runs
    code, out, err = run_main(*_args(scenario, "--as-of", as_of, "--scenario", path))
    # Then it exits 2 with one line naming the problem, no traceback, and writes no report
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert expected in _flat(err), err
    assert "Traceback" not in err
    assert not (workdir / "reports").exists()
