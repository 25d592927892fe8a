"""Validation statistics: discrimination, calibration, per-grade Jeffreys test, stability.

Jeffreys test (ECB / EBA practice): for a grade with ``n`` customers and ``d`` defaults, the
posterior of its default rate under a Jeffreys prior is ``Beta(d + 1/2, n - d + 1/2)``; the
p-value ``P(rate <= band upper PD | data)`` is small when the observed defaults are too many for
the grade. Red when p < ``jeffreys_red`` (0.01), yellow when p < ``jeffreys_yellow`` (0.05),
else green; it is one-sided against the band's upper PD, so a grade is only flagged when its
PDs underestimate risk. Empty grades are reported as ``empty``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta, rankdata

from rating.scale import MasterScale
from training.config import ValidationConfig
from training.errors import TrainingError

_EPS = 1e-6


def _check(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if y.shape != score.shape or y.ndim != 1:
        raise TrainingError(f"labels {y.shape} and scores {score.shape} must be equal 1-d arrays")
    if not np.isin(y, (0.0, 1.0)).all():
        raise TrainingError("labels must be 0 or 1")
    return y, score


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with one class only."""
    y, score = _check(y, score)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ks_statistic(y: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the score distributions of defaults and non-defaults."""
    y, score = _check(y, score)
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order]
    last_of_value = np.append(s[1:] != s[:-1], True)
    tpr = np.cumsum(t)[last_of_value] / max(t.sum(), 1.0)
    fpr = np.cumsum(1 - t)[last_of_value] / max((1 - t).sum(), 1.0)
    return float(np.max(np.abs(tpr - fpr)))


def brier(y: np.ndarray, pd_: np.ndarray) -> float:
    """Mean squared error of the PD."""
    y, pd_ = _check(y, pd_)
    return float(np.mean((pd_ - y) ** 2))


def log_loss(y: np.ndarray, pd_: np.ndarray) -> float:
    """Mean negative log-likelihood (PD clipped to [1e-15, 1 - 1e-15])."""
    y, pd_ = _check(y, pd_)
    p = np.clip(pd_, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def expected_calibration_error(y: np.ndarray, pd_: np.ndarray, n_bins: int = 10) -> float:
    """Row-weighted mean |mean PD - default rate| over equal-frequency PD bins."""
    y, pd_ = _check(y, pd_)
    order = np.argsort(pd_, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        if chunk.size:
            total += chunk.size * abs(pd_[chunk].mean() - y[chunk].mean())
    return float(total / len(y))


def psi(expected: np.ndarray, actual: np.ndarray, n_bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` on expected's quantile bins."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, n_bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e_share = np.maximum(e / max(e.sum(), 1), _EPS)
    a_share = np.maximum(a / max(a.sum(), 1), _EPS)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def binary_metrics(y: np.ndarray, pd_: np.ndarray, ece_bins: int = 10) -> dict[str, float]:
    """AUC, Gini, KS, Brier, log loss, ECE, observed default rate and mean PD."""
    area = auc(y, pd_)
    return {
        "auc": area,
        "gini": 2 * area - 1,
        "ks": ks_statistic(y, pd_),
        "brier": brier(y, pd_),
        "log_loss": log_loss(y, pd_),
        "ece": expected_calibration_error(y, pd_, ece_bins),
        "default_rate": float(np.mean(y)),
        "mean_pd": float(np.mean(pd_)),
        "rows": float(len(y)),
    }


def jeffreys_p_value(customers: int, defaults: int, pd_upper: float) -> float:
    """One-sided Jeffreys p-value that the grade's default rate is at most ``pd_upper``."""
    if customers == 0:
        return float("nan")
    return float(beta.cdf(pd_upper, defaults + 0.5, customers - defaults + 0.5))


def traffic_light(p_value: float, config: ValidationConfig) -> str:
    """``red`` / ``yellow`` / ``green`` for a Jeffreys p-value (``empty`` when NaN)."""
    if np.isnan(p_value):
        return "empty"
    if p_value < config.jeffreys_red:
        return "red"
    if p_value < config.jeffreys_yellow:
        return "yellow"
    return "green"


def grade_table(
    y: np.ndarray, pd_: np.ndarray, scale: MasterScale, config: ValidationConfig
) -> pd.DataFrame:
    """Per non-default grade: customers, defaults, observed rate, PD band, Jeffreys test."""
    y, pd_ = _check(y, pd_)
    index = scale.grade_index(pd_)
    rows = []
    for i, grade in enumerate(scale.grades):
        mask = index == i
        n, d = int(mask.sum()), int(y[mask].sum())
        p_value = jeffreys_p_value(n, d, grade.upper)
        rows.append(
            {
                "grade": grade.name,
                "label": grade.label,
                "pd_lower": grade.lower,
                "pd_upper": grade.upper,
                "customers": n,
                "share": n / len(y) if len(y) else 0.0,
                "defaults": d,
                "observed_dr": d / n if n else float("nan"),
                "mean_pd": float(pd_[mask].mean()) if n else float("nan"),
                "jeffreys_p": p_value,
                "traffic_light": traffic_light(p_value, config),
            }
        )
    return pd.DataFrame(rows)


def grades_monotone(table: pd.DataFrame, min_customers: int) -> bool:
    """Observed default rates never fall from a better to a worse grade (well-populated grades)."""
    rates = table.loc[table["customers"] >= min_customers, "observed_dr"].to_numpy()
    return bool(np.all(np.diff(rates) >= 0))


def grade_metrics(table: pd.DataFrame, config: ValidationConfig) -> dict[str, float | bool]:
    """Flat grade-level metrics: monotone, red/yellow counts, largest share, HHI."""
    shares = table["share"].to_numpy()
    lights = table["traffic_light"]
    return {
        "monotone": grades_monotone(table, config.min_grade_customers),
        "red_count": float((lights == "red").sum()),
        "yellow_count": float((lights == "yellow").sum()),
        "max_share": float(shares.max()),
        "hhi": float(np.sum(shares**2)),
        "populated": float((table["customers"] > 0).sum()),
    }
