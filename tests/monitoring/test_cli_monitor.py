from __future__ import annotations

import json
from datetime import date

import pandas as pd
import typer
from typer.testing import CliRunner

from features.covenants import CovenantConfig, CovenantTemplate, template_terms
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
    assert max(len(line) for line in lines) <= 80, [s for s in lines if len(s) > 80]
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


def test_given_contract_terms_and_reviews_when_monitor_then_covenants_and_segments_reported(
    scenario, tmp_path, monkeypatch
):
    # Given the portfolio with covenants for every customer and a review record for some
    monkeypatch.chdir(tmp_path)
    raw = scenario.shocked
    write_raw(raw, tmp_path / "raw")
    onboarded = pd.to_datetime(raw.customers["onboarding_date"]) <= pd.Timestamp("2022-01-01")
    ids = raw.customers.loc[onboarded, "customer_id"].tolist()
    covenants = CovenantConfig(
        templates={"high": CovenantTemplate(max_debt_ratio=0.6, reporting_months=6)}
    )
    terms = template_terms(ids, ["high"] * len(ids), [date(2022, 1, 1)] * len(ids), covenants)
    terms.to_parquet(tmp_path / "raw" / "contract_terms.parquet")
    reviews = pd.DataFrame(
        {
            "customer_id": ids[:50],
            "review_date": pd.Timestamp("2023-06-01"),
            "outcome": "satisfactory",
            "next_review_date": pd.Timestamp("2023-09-01"),
        }
    )
    reviews.to_csv(tmp_path / "raw" / "reviews.csv", index=False)
    app = typer.Typer()
    cli_monitor.register(app)

    @app.callback()
    def _root() -> None:
        pass

    runner = CliRunner(env={"COLUMNS": "80"})
    common = ["--raw", "raw", "--bundle", str(scenario.bundle_dir), "--store", "m.duckdb"]
    assert runner.invoke(app, ["monitor", *common, "--as-of", "2022-12-31"]).exit_code == 0
    # When the next run is monitored
    result = runner.invoke(app, ["monitor", *common, "--as-of", "2023-12-31"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    # Then covenant breaches and the segment tables are printed, within 80 columns
    assert "Covenants:" in out and "breached" in out
    for title in ("By industry", "By region", "By size class"):
        assert title in out
    assert max(len(line) for line in result.output.splitlines()) <= 80
    # And the reviewed customers' reviews are overdue from the reviewer's date, one line each
    folder = tmp_path / "reports" / "monitoring" / "R20231231-01"
    warnings = pd.read_csv(folder / "early_warnings.csv")
    assert warnings["customer_id"].is_unique
    overdue = warnings[warnings["triggers"].str.contains("review_overdue")]
    reviewed = overdue[overdue["customer_id"].isin(ids[:50])]
    assert len(reviewed) > 0
    assert reviewed["details"].str.contains("review overdue 121 days").all()
    # And the covenant checks, segments and report sections are written
    checks = pd.read_csv(folder / "covenants.csv")
    assert len(checks) == 2 * len(ids) and checks["breached"].any()
    segments = pd.read_csv(folder / "segments.csv")
    rated = len(pd.read_csv(folder / "review_schedule.csv"))
    assert segments.groupby("dimension")["customers"].sum().eq(rated).all()
    page = (folder / "report.html").read_text()
    for section in ("Covenants", "By segment", "Early warnings by severity"):
        assert f"<h2>{section}</h2>" in page
    content = json.loads((folder / "report.json").read_text())
    assert content["summary"]["covenants_in_force"] == len(checks)
    assert [s["title"] for s in content["sections"]][-1] == "By segment"
    # And a bad record table stops the run with one line naming the problem
    reviews.assign(outcome="great").to_csv(tmp_path / "raw" / "reviews.csv", index=False)
    bad = runner.invoke(app, ["monitor", *common, "--as-of", "2023-12-31"])
    assert bad.exit_code != 0 and "outcome" in " ".join([*bad.output.split(), str(bad.exception)])


def test_given_the_audit_chain_when_monitor_records_then_warnings_and_proposals_for_people(
    scenario, tmp_path, monkeypatch
):
    from datetime import UTC, datetime

    from audit import AuditConfig, SqlAuditStore
    from management import Actor
    from management.lifecycle import pending_status_changes, propose_status_change
    from management.warnings import WARNING
    from rating.lifecycle import CustomerStatus, LifecycleConfig

    # Given a portfolio, an audit store, and one customer put on watch before the runs
    monkeypatch.chdir(tmp_path)
    write_raw(scenario.shocked, tmp_path / "raw")
    (tmp_path / "data").mkdir()
    store = SqlAuditStore(AuditConfig(path=tmp_path / "data" / "audit.db"))
    watched = str(scenario.shocked.customers["customer_id"].iloc[0])
    propose_status_change(
        store,
        Actor(name="ann", role="analyst"),
        watched,
        CustomerStatus.WATCH,
        "late payments seen at the branch",
        LifecycleConfig(),
        at=datetime(2022, 6, 30, tzinfo=UTC),
    )
    store.close()
    app = typer.Typer()
    cli_monitor.register(app)

    @app.callback()
    def _root() -> None:
        pass

    runner = CliRunner()
    common = ["--raw", "raw", "--bundle", str(scenario.bundle_dir), "--store", "m.duckdb"]
    assert runner.invoke(app, ["monitor", *common, "--as-of", "2022-12-31"]).exit_code == 0
    # When the second run records its warnings
    second = runner.invoke(app, ["monitor", *common, "--as-of", "2023-12-31", "--record"])
    assert second.exit_code == 0, second.output
    text = " ".join(second.output.split())
    assert "warning(s) recorded" in text
    # Then the chain holds one warning per warned customer, and proposals wait for a person
    store = SqlAuditStore(AuditConfig(path=tmp_path / "data" / "audit.db"))
    warnings = store.search_events(__import__("audit").EventQuery(kind=WARNING, limit=10_000))
    report = tmp_path / "reports" / "monitoring" / "R20231231-01"
    summary = json.loads((report / "report.json").read_text())["summary"]
    assert warnings.total == summary["early_warnings"] > 0
    pending = pending_status_changes(store)
    assert pending and all(p.proposer == "riskgrade-monitor" for p in pending)
    assert all(p.payload["source"] == "early_warning" for p in pending)
    # And the watched customer counted as such in the run's segments
    segments = pd.read_csv(report / "segments.csv")
    assert segments["status_watch"].sum() >= 1
    # And every rating of the run is a batch decision of the run, the analysts' starting point
    from management.batch_decisions import BATCH_KIND
    from management.judgement import latest_decision

    decisions = store.export()
    assert {d.kind for d in decisions} == {BATCH_KIND}
    assert len(decisions) == summary["customers"]
    assert {d.payload["run"]["run_id"] for d in decisions} == {"R20231231-01"}
    latest = latest_decision(store, watched, datetime(2023, 12, 31).date())
    assert latest is not None and latest.payload["response"]["status"] == "watch"
    assert "batch decision(s) recorded" in text
    # And a second run proposes nothing twice (a change is pending for those customers)
    again = runner.invoke(
        app, ["monitor", *common, "--as-of", "2023-12-31", "--record", "--previous", "R20221231-01"]
    )
    assert again.exit_code == 0, again.output
    assert len(pending_status_changes(store)) == len(pending)
    # (it is another run: its ratings are decisions of that run)
    assert store.count() == 2 * len(decisions)
    assert store.verify().ok
    store.close()
