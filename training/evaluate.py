"""Fit everything of one run on prepared matrices and collect its validation results.

This is the engine shared by ``train_dataset`` (the feature dataset, out-of-time) and
``train_table`` (a user's own table): it fits the LightGBM model, calibrates it, fits the
challenger and the isotonic comparison, and computes every metric and the gates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from rich.progress import Progress

from features.spec import FeatureSpec
from rating.calibration import PlattCalibration
from rating.scale import MasterScale
from training.backtest import Backtest, evaluation_frame, validate_predictions
from training.calibrate import calibrate, fit_isotonic
from training.challenger import WoeScorecard, fit_scorecard
from training.config import TrainConfig
from training.errors import TargetError
from training.fit import FittedModel, fit_lgbm, tune_lgbm
from training.gates import GateResult, all_passed, evaluate_gates
from training.split import Split
from training.validate import binary_metrics


@dataclass(frozen=True)
class Evaluation:
    """Everything one run produced before it is written out."""

    spec: FeatureSpec
    split: Split
    model: FittedModel
    calibration: PlattCalibration
    long_run_rate: float | None
    challenger: WoeScorecard
    pd_train: np.ndarray
    pd_test: np.ndarray
    challenger_pd_test: np.ndarray
    isotonic_pd_test: np.ndarray
    y_test: np.ndarray
    grades: pd.DataFrame
    challenger_grades: pd.DataFrame
    metrics: dict[str, float | bool | str]
    gates: list[GateResult]
    frame: pd.DataFrame
    """The evaluation frame: label, PDs, window and period of every row (training/backtest.py)."""
    backtest: Backtest
    importance: dict[str, float] = field(default_factory=dict)


def _prefixed(prefix: str, values: dict[str, float | bool]) -> dict[str, float | bool]:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def check_target(y: np.ndarray, where: str) -> None:
    """Fail clearly when a window lacks one of the classes.

    Raises:
        TargetError: naming the window.
    """
    classes = np.unique(y)
    if classes.size < 2:
        raise TargetError(
            f"the {where} window holds only target value {classes.tolist()}; both 0 and 1 "
            "are needed (choose other windows or check the target)"
        )


def fit_and_evaluate(
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    split: Split,
    config: TrainConfig,
    scale: MasterScale,
    progress: Progress | None = None,
    *,
    periods: np.ndarray | pd.Series | None = None,
    overlap: float = 1.0,
    model: FittedModel | None = None,
) -> Evaluation:
    """Fit model, calibration and challenger on a split and validate them on the test window.

    Args:
        x: float64 matrix, columns in spec order.
        y: 0/1 labels.
        spec: feature spec of the columns.
        split: row positions per window.
        config: training configuration.
        scale: master scale for the per-grade validation.
        progress: optional rich progress to report steps on.
        periods: snapshot date of every row (calibration over the cycle), ``None`` for a
            random split.
        overlap: rows sharing one default event (``training.backtest.label_overlap``).
        model: the model, fitted beforehand on the training window (e.g. the chosen model
            family); default: fit the LightGBM model here.

    Returns:
        The fitted parts, test predictions, metrics (flat dotted keys) and gate results.

    Raises:
        TargetError: if a window misses a class.
    """
    task = progress.add_task("training", total=5) if progress else None

    def step(description: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=description)

    tr, cal, te = split.train, split.calibration, split.test
    for name, rows in (("train", tr), ("calibration", cal), ("test", te)):
        check_target(y[rows], name)
    if model is None:
        lgbm_config = tune_lgbm(
            x[tr], y[tr], x[cal], y[cal], spec, config.lgbm, config.optuna, config.seed
        )
        model = fit_lgbm(x[tr], y[tr], x[cal], y[cal], spec, lgbm_config, config.seed)
    step("model fitted")

    margin = np.asarray(model.booster.predict(x, raw_score=True))
    platt, long_run = calibrate(margin[cal], y[cal], margin[tr], y[tr], config.calibration)
    isotonic = fit_isotonic(margin[cal], y[cal])
    pd_all = platt.pd_from_margin(margin)
    step("calibrated")

    challenger = fit_scorecard(x[tr], y[tr], spec, config.challenger, config.seed)
    challenger_pd = challenger.predict_pd(x)
    step("challenger fitted")

    vc = config.validation
    y_test = y[te].astype(np.float64)
    pd_test, pd_train = pd_all[te], pd_all[tr]
    isotonic_pd_test = isotonic.predict(margin[te])
    frame = evaluation_frame(y, pd_all, challenger_pd, split, periods)
    backtest = validate_predictions(frame, scale, vc, overlap)
    metrics: dict[str, float | bool | str] = dict(backtest.metrics)
    metrics.update(
        _prefixed("isotonic.test", binary_metrics(y_test, isotonic_pd_test, vc.ece_bins))
    )
    metrics["calibration.platt_a"] = platt.a
    metrics["calibration.platt_b"] = platt.b
    if long_run is not None:
        metrics["calibration.long_run_default_rate"] = long_run
    metrics["model.best_iteration"] = float(model.best_iteration)
    metrics["model.n_features"] = float(len(spec.features))
    gates = evaluate_gates(metrics, config.gates)
    metrics.update({f"gates.{g.name}": g.passed for g in gates})
    metrics["gates.passed"] = all_passed(gates)
    step("validated")

    gains = model.booster.feature_importance(importance_type="gain")
    importance = {n: float(v) for n, v in zip(spec.names, gains, strict=True)}
    return Evaluation(
        spec=spec,
        split=split,
        model=model,
        calibration=platt,
        long_run_rate=long_run,
        challenger=challenger,
        pd_train=pd_train,
        pd_test=pd_test,
        challenger_pd_test=challenger_pd[te],
        isotonic_pd_test=isotonic_pd_test,
        y_test=y_test,
        grades=backtest.grades,
        challenger_grades=backtest.challenger_grades,
        frame=frame,
        backtest=backtest,
        metrics=metrics,
        gates=gates,
        importance=importance,
    )


SHAP_ROWS = 2000
"""Test rows (the first ones) whose SHAP values the validation report plots."""


def shap_sample(
    evaluation: Evaluation, x_test: np.ndarray, max_rows: int = SHAP_ROWS
) -> np.ndarray:
    """Raw-margin SHAP values (``pred_contrib``) of up to ``max_rows`` test rows (first rows)."""
    rows = x_test[:max_rows]
    booster: lgb.Booster = evaluation.model.booster
    return np.asarray(booster.predict(rows, pred_contrib=True))
