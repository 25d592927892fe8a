"""Behaviour on the sample portfolio: a simulated downturn against an unchanged portfolio."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from features.spec import FeatureGroup
from monitoring.drift import SCORE_ROW
from monitoring.migration import explain_customer
from monitoring.outcomes import realised_defaults
from monitoring.report import to_json, write_report
from monitoring.run import MonitoringRun, run_monitoring
from monitoring.store import MonitoringStore
from rating.bundle import load_bundle

from .conftest import AFTER, BEFORE, HIT, LATER, REFERENCE_DATE

# Features fed by the statements, payments and transactions the shock worsens.
AFFECTED = [
    "revenue_growth_yoy",
    "debt_ratio_change_1y",
    "net_margin_change_1y",
    "cash_ratio",
    "ocf_to_liabilities",
]


@dataclass(frozen=True)
class Runs:
    unchanged_first: MonitoringRun
    unchanged_again: MonitoringRun
    shock_before: MonitoringRun
    shock_after: MonitoringRun
    shock_later: MonitoringRun
    control_after: MonitoringRun
    shock_store: MonitoringStore


@pytest.fixture(scope="module")
def runs(scenario, tmp_path_factory) -> Runs:
    tmp = tmp_path_factory.mktemp("monitoring-store")
    bundle = scenario.bundle_dir
    first = run_monitoring(scenario.base, REFERENCE_DATE, bundle, tmp / "unchanged.duckdb")
    again = run_monitoring(
        scenario.base, REFERENCE_DATE, bundle, tmp / "unchanged.duckdb", first.run_id
    )
    shock_store = tmp / "shock.duckdb"
    before = run_monitoring(scenario.shocked, BEFORE, bundle, shock_store)
    after = run_monitoring(scenario.shocked, AFTER, bundle, shock_store)
    later = run_monitoring(scenario.shocked, LATER, bundle, shock_store)
    run_monitoring(scenario.base, BEFORE, bundle, tmp / "control.duckdb")
    control = run_monitoring(scenario.base, AFTER, bundle, tmp / "control.duckdb")
    return Runs(first, again, before, after, later, control, MonitoringStore(shock_store))


def test_given_unchanged_portfolio_when_rerated_then_diagonal_migration_and_no_drift(runs):
    run = runs.unchanged_again
    # Then the previous run is the first one and nobody moved
    assert run.info.previous_run_id == runs.unchanged_first.run_id
    assert run.tier_matrix.is_diagonal and run.grade_matrix.is_diagonal
    assert run.tier_matrix.stayed == run.info.customers
    assert run.moves.empty and run.downgrades == run.upgrades == 0
    # And the score and every feature are stable against the training reference
    assert len(run.drift) == len(run.spec.features) + 1
    assert (run.drift["psi"] < 0.10).all(), run.drift.nlargest(3, "psi")[["feature", "psi"]]
    assert set(run.drift["flag"]) == {"ok"}
    assert (run.drift["n"] == run.info.performing).all()


def test_given_downturn_when_rerated_then_affected_features_drift(runs):
    shock = runs.shock_after.drift.set_index("feature")
    control = runs.control_after.drift.set_index("feature")
    # Then the features the shock feeds, and the score, move beyond the watch level
    for feature in [*AFFECTED, SCORE_ROW]:
        assert shock.loc[feature, "psi"] > 0.10, feature
        assert shock.loc[feature, "flag"] in ("watch", "alert")
    # And by more than the same portfolio without the shock
    assert (shock.loc[AFFECTED, "psi"] > control.loc[AFFECTED, "psi"]).all()
    # And the sample size and chance level are reported with every PSI
    assert (shock["psi_noise"] < 0.06).all() and (shock["n"] > 300).all()


def test_given_downturn_when_rerated_then_more_downgrades_than_upgrades(runs):
    run, control = runs.shock_after, runs.control_after
    assert run.downgrades > 2 * run.upgrades
    assert run.downgrades > control.downgrades
    assert run.tier_matrix.downgrades > run.tier_matrix.upgrades
    # Then the downgrades sit in the industries the shock hits, far beyond their share
    moves = run.moves
    down = moves[moves["direction"] == "downgrade"]
    hit_share = run.ratings["industry"].isin(HIT).mean()
    assert down["industry"].isin(HIT).mean() > hit_share + 0.15


def test_given_downturn_when_rerated_then_downgrades_explained_by_hit_groups(runs, scenario):
    moves = runs.shock_after.moves
    down = moves[moves["direction"] == "downgrade"]
    hit_groups = {
        FeatureGroup.FINANCIAL.value,
        FeatureGroup.CREDIT.value,
        FeatureGroup.TRANSACTION.value,
    }
    # Then the group that moved each downgraded customer most is one the shock feeds
    assert down["main_group"].isin(hit_groups).mean() > 0.9
    deltas = down[[f"delta_{g}" for g in sorted(hit_groups)]].sum(axis=1)
    assert (deltas > down["delta_profile"]).mean() > 0.9
    # And every downgrade names its factors with the reason dictionary's codes and words
    reasons = load_bundle(scenario.bundle_dir).reasons
    entries = {e.feature: e for e in reasons.entries}
    for factors in down["factors"]:
        assert 1 <= len(factors) <= 3
        for factor in factors:
            assert factor["delta"] > 0
            entry = entries[factor["feature"]]
            assert (factor["code"], factor["text_en"], factor["group"]) == (
                entry.code,
                entry.text_en,
                entry.group.value,
            )
    ups = moves[moves["direction"] == "upgrade"]
    assert all(f["delta"] < 0 for factors in ups["factors"] for f in factors)


def test_given_moves_when_compared_with_explain_migration_then_they_agree(runs, scenario):
    run = runs.shock_after
    previous = runs.shock_store.load_run(runs.shock_before.run_id)
    current = runs.shock_store.load_run(run.run_id)
    bundle = load_bundle(scenario.bundle_dir)
    for row in run.moves.head(25).itertuples(index=False):
        migration = explain_customer(
            previous, current, row.customer_id, bundle.spec, bundle.scale, bundle.policy
        )
        groups = {c.group.value: c.delta for c in migration.group_changes}
        for group, delta in groups.items():
            assert getattr(row, f"delta_{group}") == pytest.approx(delta, abs=1e-9)
        assert row.delta_log_odds == pytest.approx(migration.delta_log_odds, abs=1e-9)
        sign = 1 if row.direction == "downgrade" else -1
        expected = [
            c.feature for c in sorted(migration.feature_changes, key=lambda c: -sign * c.delta)
        ]
        named = [f["feature"] for f in row.factors]
        assert named == expected[: len(named)]


def test_given_stored_run_when_loaded_then_ratings_and_shap_round_trip(runs):
    run = runs.shock_after
    stored = runs.shock_store.load_run(run.run_id)
    assert stored.info.previous_run_id == runs.shock_before.run_id
    assert stored.ratings["customer_id"].tolist() == run.ratings["customer_id"].tolist()
    np.testing.assert_array_equal(stored.ratings["pd"], run.ratings["pd"])
    # The stored SHAP vectors add up to each customer's log-odds
    total = stored.contributions.sum(axis=1) + stored.ratings["base"].to_numpy()
    np.testing.assert_allclose(total, stored.ratings["log_odds"], atol=1e-9)
    runs_listed = runs.shock_store.list_runs()
    assert runs_listed["run_id"].tolist() == [
        runs.shock_before.run_id,
        runs.shock_after.run_id,
        runs.shock_later.run_id,
    ]


def test_given_runs_a_year_old_when_monitoring_then_outcomes_backtested(runs, scenario):
    run = runs.shock_later
    history = run.auc_history.set_index("run_id")
    # Then both runs at least 12 months old are back-tested, the current one is not
    assert list(history.index) == [runs.shock_before.run_id, runs.shock_after.run_id]
    assert (history["auc"] > 0.6).all()
    # And the realised defaults per grade are those of the raw defaults table
    ratings = runs.shock_before.ratings
    performing = ratings[~ratings["in_default"]]
    y = realised_defaults(performing["customer_id"], BEFORE, scenario.shocked.defaults, 12)
    by_grade = run.grade_outcomes[run.grade_outcomes["run_id"] == runs.shock_before.run_id]
    assert by_grade["customers"].sum() == len(performing)
    assert (
        by_grade["defaults"].sum()
        == int(y.sum())
        == history.loc[runs.shock_before.run_id, "defaults"]
    )
    assert by_grade["status"].isin(["within band", "above band", "below band"]).all()
    # The shock makes realised defaults exceed the bands somewhere
    assert (by_grade["status"] == "above band").any()


def test_given_downturn_when_warning_then_triggers_and_actions_follow_policy(runs):
    run = runs.shock_after
    warnings = run.warnings.set_index("customer_id")
    moves = run.moves.set_index("customer_id")
    # Then every new default is listed for exit, at critical severity
    new_defaults = moves.index[moves["new_default"]]
    assert len(new_defaults) > 0
    assert (warnings.loc[new_defaults, "action"] == "exit").all()
    assert (warnings.loc[new_defaults, "severity"] == "critical").all()
    # And every customer who fell 2+ grades is listed
    big = moves.index[(moves["grade_notches"] >= 2)]
    assert set(big) <= set(warnings.index)
    entered = moves.index[
        (moves["current_tier"] == "restricted")
        & (moves["previous_tier"] != "restricted")
        & ~moves["new_default"]
    ]
    assert (warnings.loc[entered, "action"].isin(["suspend", "exit"])).all()
    assert all("entered_restricted" in t for t in warnings.loc[entered, "triggers"])
    # And every listed customer has reasons, one row each, and the list runs from the most
    # severe down
    assert (warnings["reasons"].str.len() > 0).all()
    assert warnings.index.is_unique
    rank = {"critical": 3, "high": 2, "medium": 1, "low": 0}
    assert warnings["severity"].map(rank).is_monotonic_decreasing
    # And customers already in default a year ago are not listed again
    old_defaults = runs.shock_before.ratings.loc[
        runs.shock_before.ratings["in_default"], "customer_id"
    ]
    assert not set(old_defaults) & set(warnings.index)


def test_given_schedule_when_monitoring_then_next_review_follows_tier_frequency(runs):
    run = runs.shock_after
    schedule = run.schedule.set_index("customer_id")
    frequency = {t.tier.value: t.policy.review_frequency_days for t in run.policy.tiers}
    # Customers first rated a year ago: last review then, next one after the tier's frequency
    first = runs.shock_before.ratings["customer_id"]
    rows = schedule.loc[first]
    assert (rows["last_review"] == pd.Timestamp(BEFORE)).all()
    expected = pd.Timestamp(BEFORE) + pd.to_timedelta(rows["tier"].map(frequency), unit="D")
    assert (rows["next_review"] == expected).all()
    assert (rows["overdue"] == (rows["next_review"] < pd.Timestamp(AFTER))).all()
    # A recorded review resets the clock
    store = runs.shock_store
    customer = rows.index[rows["overdue"]][0]
    store.record_reviews(pd.DataFrame({"customer_id": [customer], "review_date": ["2023-12-01"]}))
    assert store.last_reviews(AFTER)[customer] == pd.Timestamp("2023-12-01")


def test_given_run_when_reported_then_html_has_plots_and_json_is_complete(runs, tmp_path):
    paths = write_report(runs.shock_later, tmp_path / "report")
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") >= 6  # 2 heatmaps, PSI, score, defaults, AUC
    assert "http://" not in page and "https://" not in page
    for section in ("Migration", "Drift", "Outcomes", "Early warnings", "Review schedule"):
        assert f"<h2>{section}</h2>" in page
    content = json.loads(paths["json"].read_text())
    assert content["summary"]["downgrades"] == runs.shock_later.downgrades
    assert content["tier_migration"]["labels"] == ["low", "medium", "high", "restricted"]
    assert len(content["moves"]) == len(runs.shock_later.moves)
    assert len(content["drift"]) == len(runs.shock_later.drift)
    assert pd.read_csv(paths["warnings"]).shape[0] == len(runs.shock_later.warnings)
    assert json.dumps(to_json(runs.unchanged_first))  # a first run (no previous) serialises
