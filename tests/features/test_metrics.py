"""The one definition of AUC, PSI and WOE (features.metrics)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from features.metrics import (
    PSI_EPSILON,
    MetricError,
    auc,
    information_value,
    psi,
    psi_of_shares,
    quantile_edges,
    woe,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("audit", "features", "monitoring", "rating", "riskgrade", "serving", "training")


def test_auc_equals_sklearn_and_is_nan_with_one_class():
    # Given scores with ties and 0/1 labels
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(float)
    score = np.round(rng.normal(y, 1.0), 1)
    # Then the AUC is scikit-learn's, boolean labels give the same, one class gives NaN
    assert auc(y, score) == roc_auc_score(y, score)
    assert auc(y.astype(bool), score) == auc(y, score)
    assert np.isnan(auc(np.zeros(4), np.arange(4.0)))
    assert np.isnan(auc(np.array([]), np.array([])))
    with pytest.raises(MetricError, match="equal 1-d arrays"):
        auc(np.array([0.0, 1.0]), np.array([0.5]))


def test_psi_is_zero_for_identical_samples_and_grows_with_the_shift():
    # Given a reference sample and samples shifted further and further
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 5000)
    # Then PSI is 0 on itself and increases with the shift
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    values = [psi(reference, reference + shift) for shift in (0.1, 0.5, 1.0)]
    assert values == sorted(values) and values[0] > 0.0
    # And the given edges are used instead of the expected sample's quantiles
    edges = quantile_edges(reference, 10)
    assert psi(reference, reference + 0.5, edges=edges) == values[1]


def test_psi_counts_missing_values_as_one_more_bin():
    # Given the same values, but a tenth of them missing in the current sample
    reference = np.arange(1000, dtype=float)
    current = reference.copy()
    current[:100] = np.nan
    # Then PSI sees the change
    assert psi(reference, current) > 0.05


def test_the_epsilon_floors_empty_bins():
    # Given a bin empty in the current shares
    expected, actual = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    # Then PSI is finite and uses the floor: a bigger epsilon gives a smaller PSI
    value = psi_of_shares(expected, actual)
    assert np.isfinite(value)
    assert value == pytest.approx(0.5 * np.log(2) + (PSI_EPSILON - 0.5) * np.log(PSI_EPSILON / 0.5))
    assert psi_of_shares(expected, actual, epsilon=1e-2) < value
    with pytest.raises(MetricError, match="differ in length"):
        psi_of_shares(np.ones(2) / 2, np.ones(3) / 3)


def test_woe_is_positive_where_goods_are_over_represented():
    # Given a safe bin (few bads) and a risky bin (many bads)
    bad, good = np.array([10.0, 90.0]), np.array([90.0, 10.0])
    # When WOE is computed with smoothing
    values = woe(bad, good, smoothing=0.5)
    # Then WOE = ln(good share / bad share): the safe bin is positive, the risky one negative
    assert values[0] > 0 > values[1]
    assert values[0] == pytest.approx(np.log((90.5 / 101) / (10.5 / 101)))
    # And empty cells stay finite
    assert np.isfinite(woe(np.array([0.0, 5.0]), np.array([5.0, 0.0]), smoothing=0.5)).all()


def test_information_value_uses_the_smoothed_shares_of_woe():
    # Given bads and goods per bin
    bad, good = np.array([10.0, 30.0, 60.0]), np.array([500.0, 300.0, 200.0])
    # When the information value is computed
    value = information_value(bad, good, smoothing=0.5)
    # Then it is sum((good share - bad share) * WOE) on the smoothed shares of woe()
    bad_share = (bad + 0.5) / (bad.sum() + 1.5)
    good_share = (good + 0.5) / (good.sum() + 1.5)
    assert value == pytest.approx(float(np.sum((good_share - bad_share) * woe(bad, good, 0.5))))
    assert value > 0.5
    # And a binning whose bins hold the same shares of bads and of goods has none
    assert information_value(np.array([5.0, 5.0]), np.array([50.0, 50.0]), 0.5) == 0.0
    # And empty cells stay finite
    assert np.isfinite(information_value(np.array([0.0, 5.0]), np.array([5.0, 0.0]), 0.5))
    with pytest.raises(MetricError, match="equal 1-d arrays"):
        information_value(np.ones(2), np.ones(3), 0.5)
    with pytest.raises(MetricError, match="smoothing must be > 0"):
        woe(np.ones(2), np.ones(2), 0.0)


def test_no_other_module_defines_its_own_auc_psi_or_woe():
    # Given every Python file of the packages, scripts and benchmarks
    pattern = re.compile(
        r"^\s*def (auc|_auc|psi|_psi|woe|_woe|information_value|_information_value|iv|_iv)\(",
        re.MULTILINE,
    )
    offenders = []
    for folder in (*PACKAGES, "scripts", "benchmarks", "reliability"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "features" / "metrics.py":
                continue
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    # Then only features/metrics.py defines them
    assert offenders == []
