"""Unit behaviour of drift, migration matrices, store, outcomes, schedule and warnings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from features.metrics import auc, psi_of_shares
from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from monitoring.config import DriftConfig, MonitoringConfig, MonitoringError, WarningConfig
from monitoring.drift import bin_shares, drift_table, reference_shares
from monitoring.migration import migration_matrix
from monitoring.outcomes import grade_outcomes, realised_defaults
from monitoring.store import RATING_COLUMNS, MonitoringStore, RunInfo
from monitoring.warnings import early_warnings, review_schedule
from rating.policy import RatingPolicy
from rating.scale import MasterScale
from training.reference import reference_distributions


def _spec() -> FeatureSpec:
    def f(name, kind=FeatureKind.NUMERIC, categories=()):
        return FeatureDef(
            name=name,
            group=FeatureGroup.FINANCIAL,
            description=name,
            description_zh=name,
            unit="x",
            risk_direction=RiskDirection.UP,
            kind=kind,
            categories=categories,
        )

    return FeatureSpec(
        version="t", features=(f("ratio"), f("sector", FeatureKind.CATEGORICAL, ("a", "b", "c")))
    )


def _matrix(rng, n, shift=0.0):
    x = np.column_stack([rng.normal(shift, 1, n), rng.integers(0, 3, n).astype(float)])
    x[rng.random(n) < 0.1, 0] = np.nan
    return x


def test_given_same_data_as_reference_when_binned_then_psi_is_zero():
    rng = np.random.default_rng(0)
    x, pd_ = _matrix(rng, 2000), rng.uniform(0.001, 0.3, 2000)
    reference = reference_distributions(x, pd_, _spec(), MasterScale())
    table = drift_table(x, ["ratio", "sector"], pd_, _spec(), reference)
    # Then the training binning and the monitoring binning agree exactly
    assert table["psi"].abs().max() < 1e-12
    for j, name in enumerate(["ratio", "sector"]):
        np.testing.assert_allclose(
            bin_shares(x[:, j], reference["features"][name]),
            reference_shares(reference["features"][name]),
        )
    assert table.loc[table["feature"] == "ratio", "missing_delta"].abs().item() < 1e-12


def test_given_shifted_sample_when_drift_then_flags_and_noise_scale_with_n():
    rng = np.random.default_rng(1)
    x, pd_ = _matrix(rng, 5000), rng.uniform(0.001, 0.3, 5000)
    reference = reference_distributions(x, pd_, _spec(), MasterScale())
    same = drift_table(_matrix(rng, 400), ["ratio", "sector"], pd_[:400], _spec(), reference)
    moved = drift_table(_matrix(rng, 400, 1.0), ["ratio", "sector"], pd_[:400], _spec(), reference)
    # Then a 1-sd shift is an alert, an unchanged sample is ok, with its chance PSI shown
    assert moved.set_index("feature").loc["ratio", "flag"] == "alert"
    assert same.set_index("feature").loc["ratio", "flag"] == "ok"
    noise = same.set_index("feature").loc["ratio", "psi_noise"]
    assert noise == pytest.approx(10 * (1 / 400 + 1 / 5000))
    assert psi_of_shares(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        psi_of_shares(np.ones(2) / 2, np.ones(3) / 3)
    with pytest.raises(ValueError, match="no 'features'"):
        drift_table(x, ["ratio", "sector"], pd_, _spec(), {"note": "test"})
    with pytest.raises(ValueError, match="must be below"):
        DriftConfig(watch=0.3, alert=0.25)


def test_given_two_labelings_when_matrix_then_counts_shares_and_moves():
    previous = pd.Series({"a": "low", "b": "low", "c": "high", "d": "medium"})
    current = pd.Series({"a": "low", "b": "high", "c": "medium", "e": "low"})
    matrix = migration_matrix(previous, current, ["low", "medium", "high", "restricted"])
    assert matrix.counts.loc["low", "low"] == 1 and matrix.counts.loc["low", "high"] == 1
    assert matrix.shares.loc["low", "high"] == 0.5
    assert (matrix.downgrades, matrix.upgrades, matrix.stayed) == (1, 1, 1)
    assert (matrix.new, matrix.exited) == (1, 1)
    assert np.isnan(matrix.shares.loc["restricted", "low"])
    with pytest.raises(MonitoringError, match="not in"):
        migration_matrix(previous, pd.Series({"a": "top"}), ["low", "medium", "high"])


def _ratings(rows):
    frame = pd.DataFrame(rows)
    defaults = {
        "industry": "retail",
        "region": "east",
        "size_class": "small",
        "onboarding_date": pd.Timestamp("2020-01-01"),
        "in_default": False,
        "default_date": pd.NaT,
        "log_odds": -3.0,
        "score": 600,
        "model_tier": "low",
        "hard_rules": "",
        "reasons": "",
        "base": -3.5,
    }
    for key, value in defaults.items():
        if key not in frame:
            frame[key] = value
    rank = {"low": 0, "medium": 1, "high": 2, "restricted": 3}
    frame["tier_rank"] = frame["tier"].map(rank)
    return frame[RATING_COLUMNS]


def _info(run_id, as_of, names, n):
    return RunInfo(
        run_id=run_id,
        as_of=as_of,
        created_at=datetime(2025, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        previous_run_id=None,
        model_version="m1",
        bundle_hash="h",
        spec_version="s",
        feature_names=names,
        customers=n,
        performing=n,
    )


def test_given_store_when_runs_saved_then_round_trip_ids_and_errors(tmp_path):
    store = MonitoringStore(tmp_path / "sub" / "m.duckdb")
    ratings = _ratings(
        [
            {"customer_id": "A", "pd": 0.01, "grade": "5", "grade_index": 4, "tier": "medium"},
            {"customer_id": "B", "pd": 0.2, "grade": "8", "grade_index": 7, "tier": "restricted"},
        ]
    )
    shap = np.array([[0.1, -0.2, 0.3], [1.0, 2.0, -0.5]])
    run_id = store.next_run_id(date(2025, 6, 30))
    assert run_id == "R20250630-01"
    store.save_run(_info(run_id, date(2025, 6, 30), ["x", "y", "z"], 2), ratings, shap)
    assert store.next_run_id(date(2025, 6, 30)) == "R20250630-02"
    loaded = store.load_run(run_id)
    np.testing.assert_array_equal(loaded.contributions, shap)
    assert loaded.ratings["customer_id"].tolist() == ["A", "B"]
    assert loaded.info.feature_names == ["x", "y", "z"]
    assert store.latest_before(date(2025, 7, 1)) == run_id
    assert store.latest_before(date(2025, 6, 30)) is None
    with pytest.raises(MonitoringError, match="already exists"):
        store.save_run(_info(run_id, date(2025, 6, 30), ["x", "y", "z"], 2), ratings, shap)
    with pytest.raises(MonitoringError, match="does not match"):
        store.save_run(_info("R2", date(2025, 6, 30), ["x"], 2), ratings, shap)
    with pytest.raises(MonitoringError, match="no run 'nope'"):
        store.load_run("nope")
    # Reviews: first rating counts, a recorded later review wins, repeats are ignored
    assert store.last_reviews(date(2025, 12, 31))["A"] == pd.Timestamp("2025-06-30")
    frame = pd.DataFrame({"customer_id": ["A", "A"], "review_date": ["2025-09-01", "2025-09-01"]})
    assert store.record_reviews(frame) == 1 and store.record_reviews(frame) == 0
    assert store.last_reviews(date(2025, 12, 31))["A"] == pd.Timestamp("2025-09-01")
    with pytest.raises(MonitoringError, match="review_date"):
        store.record_reviews(pd.DataFrame({"customer_id": ["A"]}))


def test_given_known_outcomes_when_backtested_then_counts_tests_and_auc():
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(auc(np.zeros(3), np.ones(3)))
    ids = [f"C{i}" for i in range(200)]
    ratings = pd.DataFrame(
        {"customer_id": ids, "grade": ["5"] * 100 + ["8"] * 100, "pd": [0.015] * 100 + [0.2] * 100}
    )
    ratings["in_default"] = False
    # 10 defaults in grade 5 (band 1-2%): far too many; 20 in grade 8 (12-25%): within
    hits = ids[:10] + ids[100:120] + ["C199"]
    dates = ["2025-03-01"] * 30 + ["2026-01-01"]  # the last one falls after the window
    defaults = pd.DataFrame({"customer_id": hits, "default_date": pd.to_datetime(dates)})
    y = realised_defaults(ratings["customer_id"], date(2024, 12, 31), defaults, 12)
    assert y.sum() == 30
    table, record = grade_outcomes(ratings, "R1", date(2024, 12, 31), defaults, MasterScale())
    rows = table.set_index("grade")
    assert rows.loc["5", "defaults"] == 10 and rows.loc["5", "status"] == "above band"
    assert rows.loc["8", "defaults"] == 20 and rows.loc["8", "status"] == "within band"
    assert record["defaults"] == 30 and record["auc"] > 0.5


def test_given_ratings_when_warning_then_each_trigger_maps_to_its_severity_and_action():
    as_of = date(2025, 12, 31)
    previous = _ratings(
        [
            {"customer_id": "drop", "pd": 0.003, "grade": "3", "grade_index": 2, "tier": "low"},
            {"customer_id": "high", "pd": 0.009, "grade": "4", "grade_index": 3, "tier": "medium"},
            {"customer_id": "restr", "pd": 0.04, "grade": "6", "grade_index": 5, "tier": "high"},
            {"customer_id": "rule", "pd": 0.003, "grade": "3", "grade_index": 2, "tier": "low"},
            {"customer_id": "calm", "pd": 0.003, "grade": "3", "grade_index": 2, "tier": "low"},
        ]
    )
    current = _ratings(
        [
            {"customer_id": "drop", "pd": 0.015, "grade": "5", "grade_index": 4, "tier": "medium"},
            {"customer_id": "high", "pd": 0.03, "grade": "6", "grade_index": 5, "tier": "high"},
            {"customer_id": "restr", "pd": 0.2, "grade": "8", "grade_index": 7,
             "tier": "restricted"},
            {"customer_id": "rule", "pd": 0.003, "grade": "3", "grade_index": 2,
             "tier": "restricted", "hard_rules": "HR01"},
            {"customer_id": "calm", "pd": 0.003, "grade": "3", "grade_index": 2, "tier": "low"},
        ]
    )  # fmt: skip
    last = pd.Series(pd.Timestamp("2025-06-30"), index=current["customer_id"])
    schedule = review_schedule(current, last, RatingPolicy(), as_of)
    by_id = schedule.set_index("customer_id")
    assert by_id.loc["calm", "next_review"] == pd.Timestamp("2026-06-30")
    assert not by_id.loc["calm", "overdue"]
    assert by_id.loc["drop", "overdue"] and by_id.loc["drop", "days_overdue"] == 4
    reasons = pd.Series("some reason", index=current["customer_id"])
    warnings = early_warnings(current, previous, schedule, reasons).set_index("customer_id")
    assert "calm" not in warnings.index
    assert warnings.loc["drop", "triggers"] == "grade_drop;review_overdue"
    assert warnings.loc["drop", "severity"] == "medium"
    assert warnings.loc["drop", "action"] == "restrict"
    assert "review overdue 4 days" in warnings.loc["drop", "details"]
    # Entering the high tier by itself is not used by default (a boundary crossing) ...
    assert "entered_high" not in warnings.loc["high", "triggers"].split(";")
    # ... and is when the configuration gives it a severity
    used = WarningConfig(severities={**WarningConfig().severities, "entered_high": "medium"})
    with_high = early_warnings(current, previous, schedule, reasons, used).set_index("customer_id")
    assert "entered_high" in with_high.loc["high", "triggers"].split(";")
    assert warnings.loc["restr", "action"] == "suspend"
    assert warnings.loc["restr", "proposed_status"] == "suspended"
    assert warnings.loc["rule", "action"] == "exit"
    assert list(warnings.index[:2]) == ["rule", "restr"]
    # Without a previous run only hard rules and overdue reviews can trigger
    alone = early_warnings(current, None, schedule, reasons)
    assert set(alone["customer_id"]) == {"rule", "drop", "high", "restr"}
    with pytest.raises(ValueError, match="lacks an action"):
        WarningConfig(actions={})
    assert MonitoringConfig().drift.watch == 0.10
