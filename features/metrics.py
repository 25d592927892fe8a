"""The one definition of AUC, PSI and WOE, used by features, training and monitoring.

It lives in ``features`` because that is the package every other one may import (training ->
features, rating; monitoring -> features, rating) while ``features`` imports nothing of ours.

* AUC: scikit-learn's ``roc_auc_score`` (ties count half); NaN when the labels hold one class.
* PSI: ``sum((a - e) * ln(a / e))`` over bins, each share floored at ``epsilon`` (default
  ``PSI_EPSILON``) so empty bins stay finite. Numeric values are binned on the expected
  sample's inner quantile edges, bin ``i`` holding ``edges[i-1] <= x < edges[i]``
  (``np.searchsorted(edges, x, side="right")``), plus one bin for missing values.
* WOE: ``ln(good share / bad share)`` with additive smoothing, so a higher WOE means a lower
  risk (the usual scorecard convention); information value is ``sum((good - bad) * WOE)`` on
  the same smoothed shares (`information_value`), used by the feature quality table and the
  challenger alike.
"""

from __future__ import annotations

import numpy as np

from features.errors import RiskgradeError

PSI_EPSILON = 1e-4
"""Floor of every share in a PSI (also the default of ``monitoring.epsilon``)."""


class MetricError(RiskgradeError, ValueError):
    """Inputs a metric cannot be computed on (labels not 0/1, arrays of different shapes)."""


def labels_and_scores(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 (or boolean) labels and their scores as float arrays, checked for a metric.

    Raises:
        MetricError: if the arrays are not equal 1-d arrays or a label is not 0 or 1.
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if y.shape != score.shape or y.ndim != 1:
        raise MetricError(f"labels {y.shape} and scores {score.shape} must be equal 1-d arrays")
    if not np.isin(y, (0.0, 1.0)).all():
        raise MetricError("labels must be 0 or 1")
    return y, score


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` against 0/1 (or boolean) labels ``y``.

    Returns NaN when ``y`` holds one class only (the AUC is undefined there; scikit-learn
    would raise), so windows without a default report a missing AUC rather than fail.

    Raises:
        MetricError: if the arrays are not equal 1-d arrays or a label is not 0 or 1.
    """
    y, score = labels_and_scores(y, score)
    if np.unique(y).size < 2:
        return float("nan")
    # imported here: scikit-learn (and scipy.stats) would add seconds to every CLI start
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def psi_of_shares(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two share vectors over the same bins.

    Args:
        expected: reference shares (summing to 1).
        actual: current shares (summing to 1).
        epsilon: floor applied to both before the log.

    Raises:
        MetricError: if the vectors differ in length.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise MetricError(f"share vectors differ in length: {e.shape} vs {a.shape}")
    e, a = np.maximum(e, epsilon), np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner cut points of ``bins`` equal-frequency bins of the non-missing values (ties merged)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.array([])
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def _numeric_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of ``values`` in the bins of ``edges``, the missing share last."""
    missing = np.isnan(values)
    counts = np.bincount(
        np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1
    )
    counts = np.append(counts, missing.sum()).astype(np.float64)
    return counts / max(len(values), 1)


def psi(
    expected: np.ndarray,
    actual: np.ndarray,
    bins: int = 10,
    edges: np.ndarray | None = None,
    epsilon: float = PSI_EPSILON,
) -> float:
    """Population stability index of numeric ``actual`` values against ``expected`` values.

    Args:
        expected: reference values (NaN = missing, its own bin).
        actual: current values.
        bins: number of quantile bins of ``expected`` when ``edges`` is not given.
        edges: inner bin edges to use instead of ``expected``'s quantiles.
        epsilon: floor of every share before the log.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    cuts = quantile_edges(expected, bins) if edges is None else np.asarray(edges, np.float64)
    return psi_of_shares(_numeric_shares(expected, cuts), _numeric_shares(actual, cuts), epsilon)


def _smoothed_shares(
    bad: np.ndarray, good: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bad and good shares per bin, each cell count plus ``smoothing``."""
    bad = np.asarray(bad, dtype=np.float64)
    good = np.asarray(good, dtype=np.float64)
    if bad.shape != good.shape or bad.ndim != 1:
        raise MetricError(f"bad {bad.shape} and good {good.shape} must be equal 1-d arrays")
    if smoothing <= 0.0:
        raise MetricError(f"smoothing must be > 0, got {smoothing}")
    bad_share = (bad + smoothing) / (bad.sum() + smoothing * len(bad))
    good_share = (good + smoothing) / (good.sum() + smoothing * len(good))
    return bad_share, good_share


def woe(bad: np.ndarray, good: np.ndarray, smoothing: float) -> np.ndarray:
    """Weight of evidence per bin: ``ln(good share / bad share)``, higher = lower risk.

    Args:
        bad: defaults per bin.
        good: non-defaults per bin.
        smoothing: count added to every cell, so empty cells stay finite.

    Raises:
        MetricError: if the arrays differ in shape or ``smoothing`` is not positive.
    """
    bad_share, good_share = _smoothed_shares(bad, good, smoothing)
    return np.log(good_share / bad_share)


def information_value(bad: np.ndarray, good: np.ndarray, smoothing: float) -> float:
    """Information value of a binning: ``sum((good share - bad share) * WOE)``.

    The shares are the smoothed ones `woe` uses, so the IV is never negative and is 0 when the
    smoothed bad and good shares agree in every bin.

    Args:
        bad: defaults per bin.
        good: non-defaults per bin.
        smoothing: count added to every cell (as in `woe`).

    Raises:
        MetricError: if the arrays differ in shape or ``smoothing`` is not positive.
    """
    bad_share, good_share = _smoothed_shares(bad, good, smoothing)
    return float(np.sum((good_share - bad_share) * np.log(good_share / bad_share)))
