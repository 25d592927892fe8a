import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from features.metrics import MetricError, auc, psi
from rating.scale import MasterScale
from tests.training.conftest import good_gate_metrics
from training.config import GateConfig, ValidationConfig
from training.errors import TrainingError
from training.gates import all_passed, evaluate_gates
from training.validate import (
    brier,
    expected_calibration_error,
    grade_table,
    grades_monotone,
    jeffreys_p_value,
    ks_statistic,
    rank_order_table,
    shape_calibration_error,
    traffic_light,
)
from training.validate import log_loss as our_log_loss


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    p = rng.beta(1, 15, 3000)
    y = (rng.random(3000) < p).astype(float)
    p[:100] = np.round(p[:100], 2)  # ties
    return y, p


def test_metrics_agree_with_sklearn(scored):
    y, p = scored
    fpr, tpr, _ = roc_curve(y, p)
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert ks_statistic(y, p) == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert our_log_loss(y, p) == pytest.approx(log_loss(y, p), abs=1e-9)


def test_ece_is_zero_for_perfect_bins_and_positive_for_a_shift():
    y = np.array([0, 0, 0, 1] * 250, dtype=float)
    assert expected_calibration_error(y, np.full(1000, 0.25), 1) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(1000, 0.35), 1) == pytest.approx(0.10)


def test_shape_calibration_error_ignores_the_level_but_not_the_shape():
    rng = np.random.default_rng(2)
    p = rng.beta(1, 20, 20_000)
    y = (rng.random(20_000) < p).astype(float)
    shifted = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 0.7)))  # level doubled, shape kept
    flattened = 1 / (1 + np.exp(-0.3 * np.log(p / (1 - p)) - 2.0))  # shape lost
    assert expected_calibration_error(y, shifted) > 0.03
    assert shape_calibration_error(y, shifted) < 0.01
    assert shape_calibration_error(y, flattened) > 0.02


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 5000)
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, rng.normal(0, 1, 5000)) < 0.02
    assert psi(a, rng.normal(1, 1, 5000)) > 0.25


def test_jeffreys_traffic_light_on_constructed_grades():
    config = ValidationConfig()
    # 1000 customers in a band up to 1%: 5 defaults fit, 16 are suspicious, 30 are far too many
    assert traffic_light(jeffreys_p_value(1000, 5, 0.01), config) == "green"
    assert traffic_light(jeffreys_p_value(1000, 16, 0.01), config) == "yellow"
    assert traffic_light(jeffreys_p_value(1000, 30, 0.01), config) == "red"
    assert traffic_light(jeffreys_p_value(0, 0, 0.01), config) == "empty"


def test_grade_table_counts_and_monotonicity():
    scale = MasterScale()
    pd_ = np.array([0.004] * 100 + [0.03] * 100 + [0.3] * 100)
    y = np.array([0] * 100 + [1] * 3 + [0] * 97 + [1] * 30 + [0] * 70, dtype=float)
    table = grade_table(y, pd_, scale, ValidationConfig())
    populated = table[table["customers"] > 0]
    assert populated["grade"].tolist() == ["3", "6", "9"]
    assert populated["observed_dr"].tolist() == [0.0, 0.03, 0.3]
    assert table["customers"].sum() == 300
    config = ValidationConfig()
    assert grades_monotone(rank_order_table(table, config))
    y_reversed = np.array([0] * 100 + [1] * 30 + [0] * 70 + [1] * 3 + [0] * 97, dtype=float)
    reversed_table = grade_table(y_reversed, pd_, scale, config)
    assert not grades_monotone(rank_order_table(reversed_table, config))


def test_metrics_reject_non_binary_labels():
    with pytest.raises(MetricError, match="0 or 1"):
        auc(np.array([0, 2.0]), np.array([0.1, 0.2]))
    with pytest.raises(TrainingError, match="0 or 1"):
        brier(np.array([0, 2.0]), np.array([0.1, 0.2]))


def test_gates_pass_on_good_metrics():
    results = evaluate_gates(good_gate_metrics(), GateConfig())
    assert all_passed(results)
    assert {r.name for r in results} >= {
        "min_auc",
        "grades_monotone",
        "max_psi",
        "challenger_not_better",
    }


@pytest.mark.parametrize(
    ("key", "value", "gate"),
    [
        ("test.auc", 0.6, "min_auc"),
        ("grades.monotone", False, "grades_monotone"),
        ("cycle.grades.red_count", 2.0, "max_red_grades"),
        ("grades.max_share", 0.7, "max_grade_share"),
        ("stability.psi_score", 0.25, "max_psi"),
        ("test.ece_shape", 0.2, "max_ece"),
        ("cycle.level_high", 0.75, "calibration_level"),
        ("cycle.level_low", 1.3, "calibration_level"),
        ("cycle.level_ratio", float("nan"), "calibration_level"),
        ("test.auc", float("nan"), "min_auc"),
    ],
)
def test_each_gate_fails_on_its_own_metric(key, value, gate):
    metrics = {**good_gate_metrics(), key: value}
    failed = [r for r in evaluate_gates(metrics, GateConfig()) if not r.passed]
    assert gate in [r.name for r in failed]


def test_challenger_gate_needs_a_significantly_better_challenger():
    metrics = {
        **good_gate_metrics(),
        "challenger.test.auc": 0.81,
        "challenger.test.auc_diff_p": 0.01,
    }
    failed = [r.name for r in evaluate_gates(metrics, GateConfig()) if not r.passed]
    assert failed == ["challenger_not_better"]


def test_missing_metric_is_named():
    metrics = good_gate_metrics()
    del metrics["stability.psi_score"]
    with pytest.raises(TrainingError, match=r"stability\.psi_score"):
        evaluate_gates(metrics, GateConfig())
