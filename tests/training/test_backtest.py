"""Gates judge the model, not the sample: discrimination on the test window, level over the cycle.

The "PDs doubled" and "grades shuffled" models are the predictions of a real trained model,
transformed on its evaluation frame and validated again.
"""

import numpy as np
import pandas as pd
import pytest

from rating.scale import MasterScale
from tests.training.conftest import good_gate_metrics
from training.backtest import (
    cycle_table,
    evaluation_frame,
    exception_zone,
    label_overlap,
    level_test,
    scaled_pds,
    shuffled_grades,
    validate_predictions,
)
from training.config import GateConfig, TrainConfig, ValidationConfig
from training.errors import TrainingError
from training.evaluate import Evaluation, fit_and_evaluate
from training.gates import GATE_NAMES, GateResult, evaluate_gates
from training.split import out_of_time_split
from training.validate import (
    auc_difference_p,
    grade_table,
    grades_monotone,
    jeffreys_power,
    rank_order_table,
)

from .conftest import fast_config, make_dataset

SCALE = MasterScale()


def _evaluate(frame: pd.DataFrame, spec, config: TrainConfig) -> Evaluation:
    x = np.ascontiguousarray(frame[spec.names].to_numpy(dtype=np.float64, na_value=np.nan))
    y = frame["default_12m"].to_numpy(dtype=np.int64)
    split = out_of_time_split(frame["snapshot_date"], config.split)
    return fit_and_evaluate(
        x,
        y,
        spec,
        split,
        config,
        SCALE,
        periods=frame["snapshot_date"],
        overlap=label_overlap(frame["snapshot_date"]),
    )


@pytest.fixture(scope="module")
def downturn(spec) -> Evaluation:
    """A good model whose test window is a downturn (default log-odds +0.6 in the last year)."""
    return _evaluate(make_dataset(customers=1500, snapshots=24, downturn=0.6), spec, fast_config())


def _revalidate(evaluation: Evaluation, frame: pd.DataFrame) -> list[GateResult]:
    """Gates of the same run with its model's predictions replaced by ``frame``'s."""
    config = fast_config()
    overlap = float(evaluation.metrics["cycle.overlap"])
    backtest = validate_predictions(frame, SCALE, config.validation, overlap)
    return evaluate_gates({**evaluation.metrics, **backtest.metrics}, config.gates)


def _failed(gates: list[GateResult]) -> set[str]:
    return {g.name for g in gates if not g.passed}


def doubled(frame: pd.DataFrame) -> pd.DataFrame:
    return scaled_pds(frame, 2.0)


def halved(frame: pd.DataFrame) -> pd.DataFrame:
    return scaled_pds(frame, 0.5)


def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    return shuffled_grades(frame, SCALE, seed=0)


def test_a_good_model_in_a_downturn_passes_every_default_gate(downturn):
    # Given a good model whose out-of-time test window defaults above the long-run anchor
    m = downturn.metrics
    assert m["test.default_rate"] > 1.3 * m["calibration.long_run_default_rate"]
    # When the default gates judge it
    # Then every gate passes: discrimination is judged on the test window, level over the cycle
    assert [g.name for g in downturn.gates] == list(GATE_NAMES)
    assert _failed(downturn.gates) == set(), [g.describe() for g in downturn.gates]
    # And the cycle table shows the downturn year above the long-run level
    cycle = downturn.backtest.cycle
    assert cycle["ratio"].iloc[-1] > 1.2
    assert cycle["windows"].iloc[-1] == "test"


def test_doubled_pds_fail_the_calibration_level_gate_only(downturn):
    # Given the same model with every PD doubled
    gates = _revalidate(downturn, doubled(downturn.frame))
    # Then the calibration-level gate fails by name, and discrimination still passes
    failed = _failed(gates)
    assert "calibration_level" in failed
    assert not failed & {"min_auc", "grades_monotone", "max_psi"}


def test_halved_pds_fail_calibration_level_and_red_grades(downturn):
    gates = _revalidate(downturn, halved(downturn.frame))
    failed = _failed(gates)
    assert {"calibration_level", "max_red_grades"} <= failed
    assert not failed & {"min_auc", "grades_monotone"}


def test_shuffled_grades_fail_the_rank_order_gate(downturn):
    # Given the same model with its grades permuted
    gates = _revalidate(downturn, shuffled(downturn.frame))
    # Then the rank-order gate fails by name (and the AUC with it)
    failed = _failed(gates)
    assert "grades_monotone" in failed
    assert "min_auc" in failed


def test_shuffled_rows_fail_discrimination(downturn):
    # Given the model's PDs handed to random rows (no ranking left)
    rng = np.random.default_rng(1)
    frame = downturn.frame.assign(pd=rng.permutation(downturn.frame["pd"].to_numpy()))
    assert "min_auc" in _failed(_revalidate(downturn, frame))


def test_a_thin_grade_is_not_assessable_and_never_red():
    # Given one customer without default in grade 1 (the sample portfolio at 5,000, seed 31)
    pd_ = np.array([0.0009] + [0.004] * 2000 + [0.03] * 2000)
    y = np.zeros(len(pd_))
    y[1:11] = 1
    y[2001:2061] = 1
    table = grade_table(y, pd_, SCALE, ValidationConfig())
    # Then grade 1 is not assessable (the old test called it yellow), the others are judged
    assert table.loc[0, "traffic_light"] == "not assessable"
    assert table.loc[0, "power"] < 0.01
    assert set(table.loc[[2, 5], "traffic_light"]) == {"green"}
    assert table.loc[8, "traffic_light"] == "empty"


def test_jeffreys_power_grows_with_the_sample():
    small, large = jeffreys_power(100, 0.01, 0.01), jeffreys_power(5000, 0.01, 0.01)
    assert 0.0 <= small < 0.2 < 0.99 < large <= 1.0
    assert jeffreys_power(10_000, 1.0, 0.01) == 0.0  # a band up to 100% cannot double


def test_rank_order_fails_only_on_a_significant_inversion():
    # Given grade 2 slightly above grade 3 (noise) and a one-customer grade 1
    pd_ = np.array([0.0009] + [0.002] * 500 + [0.004] * 2000 + [0.03] * 2000)
    y = np.zeros(len(pd_))
    y[[0, 1, 2, 3]] = 1  # the one customer of grade 1 defaulted; 3 of 500 in grade 2
    y[501:512] = 1  # 11 of 2000 in grade 3
    y[2501:2601] = 1
    config = ValidationConfig()
    table = grade_table(y, pd_, SCALE, config)
    order = rank_order_table(table, config)
    # Then the thin grade is pooled, the small inversion is not significant: monotone
    assert order["better"].iloc[0] == "1+2"
    assert order["status"].iloc[0] == "inverted, not significant"
    assert grades_monotone(order)
    # And a large inversion is
    y_swapped = np.zeros(len(pd_))
    y_swapped[501:601] = 1
    y_swapped[2501:2512] = 1
    swapped = rank_order_table(grade_table(y_swapped, pd_, SCALE, config), config)
    assert not grades_monotone(swapped)
    assert "inverted" in set(swapped["status"])


def test_rank_order_counts_overlapping_rows_once():
    # Given an inversion significant on raw rows but not once four rows share one default
    pd_ = np.array([0.004] * 2000 + [0.03] * 2000)
    y = np.zeros(len(pd_))
    y[:60] = 1
    y[2000:2030] = 1
    config = ValidationConfig()
    table = grade_table(y, pd_, SCALE, config)
    assert not grades_monotone(rank_order_table(table, config, overlap=1.0))
    assert grades_monotone(rank_order_table(table, config, overlap=16.0))


def _cycle(rates: list[float], pd_level: float, rows: int = 20_000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": [str(2020 + i) for i in range(len(rates))],
            "windows": "train",
            "rows": rows,
            "defaults": [round(r * rows) for r in rates],
            "default_rate": rates,
            "mean_pd": pd_level,
        }
    )


def _level_gate(metrics: dict) -> GateResult:
    return next(
        g
        for g in evaluate_gates({**good_gate_metrics(), **metrics}, GateConfig())
        if g.name == "calibration_level"
    )


def test_level_over_the_cycle_passes_a_downturn_and_fails_a_doubling():
    rates = [0.034, 0.030, 0.027, 0.032, 0.042]  # the sample portfolio's cycle
    anchored = level_test(_cycle(rates, 0.031), 0.95, overlap=4.0)
    assert anchored["cycle.level_low"] < 1.0 < anchored["cycle.level_high"]
    assert _level_gate(anchored).passed
    doubled_level = level_test(_cycle(rates, 0.062), 0.95, overlap=4.0)
    assert doubled_level["cycle.level_ratio"] == pytest.approx(np.mean(rates) / 0.062)
    assert not _level_gate(doubled_level).passed
    # And a single period (random split) uses the binomial interval of the pooled defaults
    single = level_test(_cycle([0.2], 0.2, rows=6000), 0.95)
    assert 0.9 < single["cycle.level_low"] < 1.0 < single["cycle.level_high"] < 1.1


def test_cycle_table_groups_snapshots_by_year():
    frame = pd.DataFrame(
        {
            "y": [0.0, 1.0, 0.0, 0.0],
            "pd": [0.1, 0.3, 0.2, 0.2],
            "window": ["train", "train", "calibration", "test"],
            "period": pd.to_datetime(["2020-03-31", "2020-06-30", "2021-03-31", "2021-06-30"]),
        }
    )
    cycle = cycle_table(frame)
    assert cycle["year"].tolist() == ["2020", "2021"]
    assert cycle["windows"].tolist() == ["train", "calibration,test"]
    assert cycle["default_rate"].tolist() == [0.5, 0.0]
    assert cycle["mean_pd"].tolist() == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize(
    ("red", "tests", "zone", "allowed"),
    [
        (0, 8, "green", 1),
        (1, 8, "yellow", 1),
        (2, 8, "red", 1),
        (0, 1, "green", 0),
        (1, 1, "red", 0),
    ],
)
def test_exception_zone_of_the_red_count(red, tests, zone, allowed):
    assert exception_zone(red, tests, ValidationConfig()) == (zone, allowed)


def test_label_overlap_from_snapshot_spacing():
    quarterly = pd.date_range("2020-03-31", periods=8, freq="QE")
    yearly = pd.date_range("2020-12-31", periods=4, freq="YE")
    assert label_overlap(quarterly) == 4.0
    assert label_overlap(yearly) == 1.0
    assert label_overlap(pd.to_datetime(["2021-01-01"])) == 1.0


def test_delong_p_value_separates_noise_from_a_better_challenger():
    rng = np.random.default_rng(3)
    signal = rng.normal(0, 1, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(3 - 1.2 * signal))).astype(float)
    model = signal + rng.normal(0, 1.0, 4000)
    close = signal + rng.normal(0, 1.0, 4000)
    better = signal + rng.normal(0, 0.2, 4000)
    assert auc_difference_p(y, model, close) > 0.05
    assert auc_difference_p(y, model, better) < 1e-4
    assert auc_difference_p(y, model, better, overlap=4.0) > auc_difference_p(y, model, better)


def test_challenger_gate_fails_only_on_a_significantly_better_challenger():
    noise = {**good_gate_metrics(), "challenger.test.auc": 0.802, "challenger.test.auc_diff_p": 0.4}
    better = {**noise, "challenger.test.auc": 0.83, "challenger.test.auc_diff_p": 0.001}
    assert "challenger_not_better" not in _failed(evaluate_gates(noise, GateConfig()))
    assert "challenger_not_better" in _failed(evaluate_gates(better, GateConfig()))


def test_an_explicit_red_grade_cap_overrides_the_traffic_light():
    metrics = {**good_gate_metrics(), "cycle.grades.red_count": 1.0, "cycle.grades.zone": "yellow"}
    assert "max_red_grades" not in _failed(evaluate_gates(metrics, GateConfig()))
    capped = GateConfig(max_red_grades=0)
    assert "max_red_grades" in _failed(evaluate_gates(metrics, capped))


def test_evaluation_frame_rejects_bad_periods(downturn):
    split = downturn.split
    n = len(downturn.frame)
    with pytest.raises(TrainingError, match="periods"):
        evaluation_frame(np.zeros(n), np.zeros(n), np.zeros(n), split, ["x"] * n)
    with pytest.raises(TrainingError, match="window"):
        validate_predictions(
            downturn.frame[downturn.frame["window"] != "test"], SCALE, ValidationConfig()
        )
