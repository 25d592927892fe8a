"""`riskgrade monitor` range by range finds what the whole-portfolio run finds.

The run reads, validates and rates one customer range at a time and keeps per-customer
results only; the drift is counted in the reference's bins range by range. Its report, its
store and the batch decisions of ``--record`` must equal those of the portfolio in one range.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from features.covenants import CovenantConfig, CovenantTemplate, template_terms
from features.io import RawTables, write_raw
from monitoring.drift import DriftTally, drift_table
from rating.portfolio import as_model, rate_portfolio
from riskgrade import cli_monitor
from tests.monitoring.conftest import AFTER, BEFORE, Scenario

CSV_FILES = (
    "migrations.csv",
    "drift.csv",
    "early_warnings.csv",
    "review_schedule.csv",
    "covenants.csv",
    "segments.csv",
)


def _ranges(raw: RawTables, size: int) -> list[RawTables]:
    ids = sorted(raw.customers["customer_id"].astype(str))
    starts = ids[::size]
    parts = []
    for start, stop in zip(starts, [*starts[1:], None], strict=True):

        def inside(frame: pd.DataFrame, start: str = start, stop: str | None = stop) -> pd.Series:
            column = frame["customer_id"].astype(str)
            return (column >= start) & (column < stop) if stop else column >= start

        parts.append(RawTables(**{n: f[inside(f)] for n, f in raw.items()}))
    return parts


@pytest.mark.parametrize("size", [1, 13, 120])
def test_given_ranges_when_drift_counted_per_range_then_psi_equals_the_whole(
    scenario: Scenario, size: int
) -> None:
    # Given the shocked portfolio rated whole at a date after the shock
    model = as_model(scenario.bundle_dir)
    whole = rate_portfolio(scenario.shocked, AFTER, model)
    expected = drift_table(
        whole.features, model.spec.names, whole.result.pd, model.spec, model.bundle.reference
    )
    # When the same customers are counted in ranges of `size`
    tally = DriftTally(model.spec.names, model.spec, model.bundle.reference)
    for start in range(0, len(whole), size):
        rows = slice(start, start + size)
        tally.add(whole.features[rows], whole.result.pd[rows])
    got = tally.table()
    # Then every PSI, share and missing share is the whole portfolio's (to 1e-12)
    assert list(got["feature"]) == list(expected["feature"])
    np.testing.assert_allclose(got["psi"], expected["psi"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["missing_share"], expected["missing_share"], rtol=0, atol=0)
    assert got.drop(columns=["psi"]).equals(expected.drop(columns=["psi"]))
    assert (got["psi"] > 0.1).any()  # the shock moved some distributions


def _workspace(root: Path, scenario: Scenario) -> Path:
    """A raw folder with covenants and reviews, and an audit store with one watched customer."""
    from audit import AuditConfig, SqlAuditStore
    from management import Actor
    from management.lifecycle import propose_status_change
    from rating.lifecycle import CustomerStatus, LifecycleConfig

    raw = scenario.shocked
    write_raw(raw, root / "raw")
    onboarded = pd.to_datetime(raw.customers["onboarding_date"]) <= pd.Timestamp("2022-01-01")
    ids = raw.customers.loc[onboarded, "customer_id"].tolist()
    covenants = CovenantConfig(
        templates={"high": CovenantTemplate(max_debt_ratio=0.6, reporting_months=6)}
    )
    terms = template_terms(ids, ["high"] * len(ids), [date(2022, 1, 1)] * len(ids), covenants)
    terms.to_parquet(root / "raw" / "contract_terms.parquet")
    pd.DataFrame(
        {
            "customer_id": ids[:50],
            "review_date": pd.Timestamp("2023-06-01"),
            "outcome": "satisfactory",
            "next_review_date": pd.Timestamp("2023-09-01"),
        }
    ).to_csv(root / "raw" / "reviews.csv", index=False)
    (root / "data").mkdir()
    store = SqlAuditStore(AuditConfig(path=root / "data" / "audit.db"))
    propose_status_change(
        store,
        Actor(name="ann", role="analyst"),
        ids[0],
        CustomerStatus.WATCH,
        "late payments seen at the branch",
        LifecycleConfig(),
        at=datetime(2022, 6, 30, tzinfo=UTC),
    )
    store.close()
    return root


def _monitor(root: Path, scenario: Scenario, chunk: str | None, monkeypatch: Any) -> list[str]:
    """Two runs (the second recorded) in ``root``; their stdout."""
    monkeypatch.chdir(root)
    app = typer.Typer()
    cli_monitor.register(app)

    @app.callback()
    def _root() -> None:
        pass

    common = ["--raw", "raw", "--bundle", str(scenario.bundle_dir), "--store", "m.duckdb"]
    common += ["--chunk-size", chunk] if chunk else []
    runner = CliRunner(env={"COLUMNS": "200"})
    outputs = []
    for extra in (["--as-of", str(BEFORE)], ["--as-of", str(AFTER), "--record"]):
        result = runner.invoke(app, ["monitor", *common, *extra])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    return outputs


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "created_at"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _decisions(root: Path) -> list[tuple[Any, ...]]:
    from audit import AuditConfig, SqlAuditStore

    store = SqlAuditStore(AuditConfig(path=root / "data" / "audit.db"))
    try:
        return [
            (d.customer_id, d.kind, d.pd, d.grade, d.tier, json.dumps(d.payload, sort_keys=True))
            for d in store.export()
        ]
    finally:
        store.close()


def _stored(root: Path) -> dict[str, pd.DataFrame]:
    from monitoring.store import MonitoringStore

    store = MonitoringStore(root / "m.duckdb")
    run = store.load_run("R20231231-01")
    return {
        "ratings": run.ratings,
        "contributions": pd.DataFrame(run.contributions),
        "drift": store.drift_of("R20231231-01"),
    }


@pytest.mark.slow  # four monitoring runs through the command line
def test_given_ranges_of_37_customers_when_monitored_then_report_store_and_record_equal(
    scenario: Scenario, tmp_path: Path, monkeypatch: Any
) -> None:
    # Given two copies of a portfolio with covenants, reviews and a watched customer
    whole = _workspace(tmp_path / "whole", scenario)
    chunked = _workspace(tmp_path / "chunked", scenario)
    # When one is monitored in one range and the other in ranges of 37 customers, twice,
    # the second run recorded in the audit chain
    expected = _monitor(whole, scenario, None, monkeypatch)
    got = _monitor(chunked, scenario, "37", monkeypatch)
    # Then the terminal output, every CSV of the report and its JSON are the same
    assert got == expected
    report = Path("reports") / "monitoring" / "R20231231-01"
    for name in CSV_FILES:
        assert (chunked / report / name).read_bytes() == (whole / report / name).read_bytes(), name
    summary, expected_summary = (
        _without_times(json.loads((root / report / "report.json").read_text()))
        for root in (chunked, whole)
    )
    assert summary == expected_summary
    # And the stored run (ratings, SHAP vectors, drift) is the same
    for name, frame in _stored(chunked).items():
        pd.testing.assert_frame_equal(frame, _stored(whole)[name], check_exact=True)
    # And the batch decisions recorded are the same, one per rated customer
    decisions = _decisions(chunked)
    assert decisions == _decisions(whole)
    assert (
        len(decisions)
        == json.loads((whole / report / "report.json").read_text())["summary"]["customers"]
    )


def test_given_bad_raw_data_when_monitored_in_ranges_then_exit_2_and_nothing_stored(
    scenario: Scenario, tmp_path: Path, monkeypatch: Any
) -> None:
    # Given a raw folder whose last customers' statements hold a negative total
    monkeypatch.chdir(tmp_path)
    write_raw(scenario.shocked, tmp_path / "raw")
    statements = pd.read_parquet(tmp_path / "raw" / "financial_statements.parquet")
    statements.loc[statements["customer_id"].idxmax(), "total_assets"] = -5.0
    statements.to_parquet(tmp_path / "raw" / "financial_statements.parquet", index=False)
    # When it is monitored in ranges of 50 customers through the entry point
    from tests.cli_helpers import run_main

    code, _, err = run_main(
        "monitor", "--raw", "raw", "--as-of", str(AFTER), "--bundle", str(scenario.bundle_dir),
        "--store", "m.duckdb", "--chunk-size", "50",
    )  # fmt: skip
    # Then it exits 2 naming the column, and no run is stored nor report written
    assert code == 2
    text = " ".join(err.split())
    assert "total_assets" in text and "Traceback" not in text
    assert not (tmp_path / "reports").exists()
    if (tmp_path / "m.duckdb").exists():
        from monitoring.store import MonitoringStore

        assert MonitoringStore(tmp_path / "m.duckdb").latest_before(date(2100, 1, 1)) is None
