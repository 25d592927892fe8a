"""Validation statistics: discrimination, calibration, per-grade Jeffreys test, stability.

Jeffreys test (ECB / EBA practice): for a grade with ``n`` customers and ``d`` defaults, the
posterior of its default rate under a Jeffreys prior is ``Beta(d + 1/2, n - d + 1/2)``; the
p-value ``P(rate <= band upper PD | data)`` is small when the observed defaults are too many for
the grade. Red when p < ``jeffreys_red`` (0.01), yellow when p < ``jeffreys_yellow`` (0.05),
else green; it is one-sided against the band's upper PD, so a grade is only flagged when its
PDs underestimate risk. Empty grades are reported as ``empty``; a grade whose test has too little
power to detect a doubling of its upper PD is ``not assessable`` (grey), never red.

Rank order: adjacent grades (thin ones pooled) are compared with a one-sided Fisher exact test,
so only a significant inversion breaks monotonicity. Challenger comparison: DeLong's paired test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.special import logit
from scipy.stats import beta, binom, fisher_exact, norm, rankdata

from features.metrics import MetricError, auc, labels_and_scores
from rating.calibration import PlattCalibration
from rating.scale import MasterScale
from training.calibrate import anchor_intercept
from training.config import ValidationConfig
from training.errors import TrainingError

EMPTY = "empty"
NOT_ASSESSABLE = "not assessable"


def _check(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        return labels_and_scores(y, score)
    except MetricError as error:
        raise TrainingError(str(error)) from None


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


def shape_calibration_error(y: np.ndarray, pd_: np.ndarray, n_bins: int = 10) -> float:
    """ECE after moving the PDs' level to the observed default rate (a log-odds shift).

    The level of the PDs against a window's default rate depends on where the window sits in
    the cycle; what remains after the shift is the calibration of the PDs' shape (slope).
    """
    y, pd_ = _check(y, pd_)
    rate = float(np.mean(y))
    if rate in (0.0, 1.0):
        return expected_calibration_error(y, pd_, n_bins)
    margin = logit(np.clip(pd_, 1e-12, 1.0 - 1e-12))
    shifted = anchor_intercept(PlattCalibration(), margin, rate).pd_from_margin(margin)
    return expected_calibration_error(y, shifted, n_bins)


def binary_metrics(y: np.ndarray, pd_: np.ndarray, ece_bins: int = 10) -> dict[str, float]:
    """AUC, Gini, KS, Brier, log loss, ECE (raw and of the shape), default rate and mean PD."""
    y, pd_ = _check(y, pd_)
    area = auc(y, pd_)
    return {
        "auc": area,
        "gini": 2 * area - 1,
        "ks": ks_statistic(y, pd_),
        "brier": brier(y, pd_),
        "log_loss": log_loss(y, pd_),
        "ece": expected_calibration_error(y, pd_, ece_bins),
        "ece_shape": shape_calibration_error(y, pd_, ece_bins),
        "default_rate": float(np.mean(y)),
        "mean_pd": float(np.mean(pd_)),
        "rows": float(len(y)),
    }


def jeffreys_p_value(customers: float, defaults: float, pd_upper: float) -> float:
    """One-sided Jeffreys p-value that the grade's default rate is at most ``pd_upper``.

    Counts may be effective (fractional) counts, see :func:`grade_table`.
    """
    if customers <= 0:
        return float("nan")
    return float(beta.cdf(pd_upper, defaults + 0.5, customers - defaults + 0.5))


def jeffreys_power(customers: float, pd_upper: float, red: float, effect: float = 2.0) -> float:
    """Power of the Jeffreys test to turn red when the true rate is ``effect`` times ``pd_upper``.

    The test turns red from the smallest default count whose p-value is below ``red``; the power
    is the binomial probability of reaching that count at the higher rate. A grade whose upper PD
    cannot be multiplied (a band up to 100%) has no power.
    """
    n = round(customers)
    alternative = effect * pd_upper
    if n <= 0 or alternative >= 1.0:
        return 0.0
    counts = np.arange(n + 1)
    reds = np.flatnonzero(beta.cdf(pd_upper, counts + 0.5, n - counts + 0.5) < red)
    if reds.size == 0:
        return 0.0
    return float(binom.sf(reds[0] - 1, n, alternative))


def traffic_light(p_value: float, config: ValidationConfig, assessable: bool = True) -> str:
    """``red`` / ``yellow`` / ``green`` for a Jeffreys p-value.

    ``empty`` when the grade holds nobody (NaN), ``not assessable`` when the test lacks power.
    """
    if np.isnan(p_value):
        return EMPTY
    if not assessable:
        return NOT_ASSESSABLE
    if p_value < config.jeffreys_red:
        return "red"
    if p_value < config.jeffreys_yellow:
        return "yellow"
    return "green"


def grade_table(
    y: np.ndarray,
    pd_: np.ndarray,
    scale: MasterScale,
    config: ValidationConfig,
    overlap: float = 1.0,
) -> pd.DataFrame:
    """Per non-default grade: rows, defaults, observed rate, PD band, Jeffreys test and power.

    Args:
        y: 0/1 labels.
        pd_: PDs.
        scale: master scale.
        config: test levels and the minimum power.
        overlap: how many rows count one default event: with quarterly snapshots and a 12-month
            label a default is labelled in up to four rows, so the test uses ``rows / overlap``
            customers and ``defaults / overlap`` defaults (1 for independent rows).

    Returns:
        One row per non-default grade; ``traffic_light`` is ``not assessable`` when the power
        to detect a doubling of the band's upper PD is below ``config.min_power``.
    """
    y, pd_ = _check(y, pd_)
    if overlap < 1.0:
        raise TrainingError(f"overlap must be at least 1, got {overlap}")
    index = scale.grade_index(pd_)
    rows = []
    for i, grade in enumerate(scale.grades):
        mask = index == i
        n, d = int(mask.sum()), int(y[mask].sum())
        p_value = jeffreys_p_value(n / overlap, d / overlap, grade.upper)
        power = jeffreys_power(n / overlap, grade.upper, config.jeffreys_red)
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
                "power": power,
                "traffic_light": traffic_light(p_value, config, power >= config.min_power),
            }
        )
    return pd.DataFrame(rows)


def _pooled_groups(table: pd.DataFrame, min_customers: int) -> list[list[int]]:
    """Adjacent populated grades pooled until each group holds ``min_customers`` rows."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, customers in enumerate(table["customers"].to_numpy()):
        if customers == 0:
            continue
        current.append(i)
        size += int(customers)
        if size >= min_customers:
            groups.append(current)
            current, size = [], 0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def rank_order_table(
    table: pd.DataFrame, config: ValidationConfig, overlap: float = 1.0
) -> pd.DataFrame:
    """Rank order of adjacent grades: is a worse grade's default rate significantly lower?

    Thin grades (fewer than ``config.min_grade_customers`` rows) are pooled with their worse
    neighbours. For each adjacent pair of groups a one-sided Fisher exact test (on effective
    counts, see :func:`grade_table`) asks whether the better group defaults more often; an
    inversion counts only when its p-value is below ``config.rank_order_alpha`` divided by the
    number of pairs (Bonferroni), so noise between two nearly equal grades does not fail a model.

    Returns:
        One row per adjacent pair: the two groups, their rates, the p-value and a status
        (``ok``, ``inverted, not significant`` or ``inverted``).
    """
    groups = _pooled_groups(table, config.min_grade_customers)
    names = table["grade"].astype(str).to_numpy()
    customers = table["customers"].to_numpy()
    defaults = table["defaults"].to_numpy()
    level = config.rank_order_alpha / max(len(groups) - 1, 1)
    rows = []
    for better, worse in itertools.pairwise(groups):
        counts = []
        for group in (better, worse):
            n, d = customers[group].sum(), defaults[group].sum()
            counts.append((round(n / overlap), round(d / overlap), d / n))
        (nb, db, rate_b), (nw, dw, rate_w) = counts
        p_value = float(fisher_exact([[db, nb - db], [dw, nw - dw]], alternative="greater").pvalue)
        if rate_w >= rate_b:
            status = "ok"
        elif p_value < level:
            status = "inverted"
        else:
            status = "inverted, not significant"
        rows.append(
            {
                "better": "+".join(names[better]),
                "worse": "+".join(names[worse]),
                "better_dr": rate_b,
                "worse_dr": rate_w,
                "p_value": p_value,
                "level": level,
                "status": status,
            }
        )
    return pd.DataFrame(
        rows, columns=["better", "worse", "better_dr", "worse_dr", "p_value", "level", "status"]
    )


def grades_monotone(rank_order: pd.DataFrame) -> bool:
    """True when no adjacent pair of grade groups is significantly inverted."""
    return bool((rank_order["status"] != "inverted").all())


def grade_metrics(table: pd.DataFrame, rank_order: pd.DataFrame) -> dict[str, float | bool]:
    """Flat grade-level metrics: rank order, red/yellow/not-assessable counts, shares, HHI."""
    shares = table["share"].to_numpy()
    lights = table["traffic_light"]
    significant = rank_order["status"] == "inverted"
    return {
        "monotone": grades_monotone(rank_order),
        "inversions": float((rank_order["status"] != "ok").sum()),
        "significant_inversions": float(significant.sum()),
        "rank_order_min_p": float(rank_order["p_value"].min()) if len(rank_order) else 1.0,
        "red_count": float((lights == "red").sum()),
        "yellow_count": float((lights == "yellow").sum()),
        "not_assessable": float((lights == NOT_ASSESSABLE).sum()),
        "assessable": float(lights.isin(["green", "yellow", "red"]).sum()),
        "max_share": float(shares.max()),
        "hhi": float(np.sum(shares**2)),
        "populated": float((table["customers"] > 0).sum()),
    }


def _midranks(values: np.ndarray) -> np.ndarray:
    return rankdata(values, method="average")


def auc_difference_p(
    y: np.ndarray, model: np.ndarray, challenger: np.ndarray, overlap: float = 1.0
) -> float:
    """One-sided DeLong p-value that the challenger's AUC is higher than the model's.

    Both scores are on the same rows; the variance of the paired difference is DeLong's
    (fast midrank form), multiplied by ``overlap`` when rows repeat one customer's outcome.
    NaN when a class is missing.
    """
    y, model = _check(y, model)
    _, challenger = _check(y, challenger)
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m == 0 or n == 0:
        return float("nan")
    v10, v01, areas = [], [], []
    for score in (model, challenger):
        x, z = score[pos], score[neg]
        all_ranks = _midranks(np.concatenate([x, z]))
        v10.append((all_ranks[:m] - _midranks(x)) / n)
        v01.append(1.0 - (all_ranks[m:] - _midranks(z)) / m)
        areas.append(float(v10[-1].mean()))
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    contrast = np.array([-1.0, 1.0])
    variance = overlap * (contrast @ s10 @ contrast / m + contrast @ s01 @ contrast / n)
    difference = areas[1] - areas[0]
    if variance <= 0.0:
        return 0.0 if difference > 0 else 1.0
    return float(norm.sf(difference / np.sqrt(variance)))
