"""Calibration of the raw margin: Platt (default, anchored to the long-run rate) and isotonic."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from rating.calibration import PlattCalibration
from training.config import CalibrationConfig
from training.errors import TrainingError


def fit_platt(margin: np.ndarray, y: np.ndarray) -> PlattCalibration:
    """Unregularised logistic fit of the labels on the raw margin: log-odds = a*margin + b.

    Raises:
        TrainingError: if the labels hold one class only or the fitted slope is not positive
            (the model ranks no better than chance on the calibration window).
    """
    y = np.asarray(y)
    if np.unique(y).size < 2:
        raise TrainingError("Platt calibration needs both classes in the calibration window")
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    model.fit(np.asarray(margin, dtype=np.float64).reshape(-1, 1), y)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if a <= 0.0:
        raise TrainingError(
            f"Platt slope on the calibration window is {a:.4g} <= 0: the model does not rank "
            "the calibration window; check the split and the target"
        )
    return PlattCalibration(a=a, b=b)


def anchor_intercept(
    calibration: PlattCalibration, train_margin: np.ndarray, target_rate: float
) -> PlattCalibration:
    """Shift ``b`` so the mean calibrated PD over the training rows equals ``target_rate``.

    The slope (the model's discrimination as seen on the calibration window) is kept; only the
    level moves to the long-run (through-the-cycle) default rate.

    Raises:
        TrainingError: if the target rate is not in (0, 1).
    """
    if not 0.0 < target_rate < 1.0:
        raise TrainingError(f"long-run default rate must be in (0, 1), got {target_rate}")
    log_odds = calibration.log_odds(train_margin)

    def gap(shift: float) -> float:
        return float(np.mean(expit(log_odds + shift))) - target_rate

    shift = brentq(gap, -30.0, 30.0, xtol=1e-12)
    return PlattCalibration(a=calibration.a, b=calibration.b + shift)


def calibrate(
    cal_margin: np.ndarray,
    cal_y: np.ndarray,
    train_margin: np.ndarray,
    train_y: np.ndarray,
    config: CalibrationConfig,
) -> tuple[PlattCalibration, float | None]:
    """Fit Platt on the calibration window and anchor it as configured.

    Returns:
        The calibration and the long-run default rate it was anchored to (``None`` if not).
    """
    platt = fit_platt(cal_margin, cal_y)
    if config.anchor == "none":
        return platt, None
    rate = (
        config.long_run_default_rate
        if config.long_run_default_rate is not None
        else float(np.mean(train_y))
    )
    return anchor_intercept(platt, train_margin, rate), rate


def fit_isotonic(margin: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    """Isotonic regression of the labels on the margin (reported for comparison only)."""
    model = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6)
    model.fit(np.asarray(margin, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return model
