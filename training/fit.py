"""LightGBM fit: deterministic, monotone where the risk direction is known, native categoricals."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
from sklearn.metrics import roc_auc_score

from features.spec import FeatureKind, FeatureSpec
from training.config import LgbmConfig, OptunaConfig

_NUM_THREADS_LINE = re.compile(r"^\[num_threads: [^\]]*\]\n", flags=re.MULTILINE)


@dataclass(frozen=True)
class FittedModel:
    """A trained booster and the parameters that produced it."""

    booster: lgb.Booster
    params: dict[str, object]
    best_iteration: int
    model_text: str
    """Normalised model text (no thread count), identical for any ``num_threads``."""


def lgb_params(spec: FeatureSpec, config: LgbmConfig, seed: int) -> dict[str, object]:
    """LightGBM parameters for a spec: seeds, determinism, monotone constraints."""
    params: dict[str, object] = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "max_depth": config.max_depth,
        "min_child_samples": config.min_child_samples,
        "feature_fraction": config.feature_fraction,
        "bagging_fraction": config.bagging_fraction,
        "bagging_freq": config.bagging_freq,
        "lambda_l2": config.lambda_l2,
        "min_gain_to_split": config.min_gain_to_split,
        "deterministic": True,
        "force_col_wise": True,
        "seed": seed,
        "bagging_seed": seed + 1,
        "feature_fraction_seed": seed + 2,
        "data_random_seed": seed + 3,
        "num_threads": config.num_threads,
        "verbosity": -1,
    }
    if config.monotone:
        constraints = [
            0 if f.kind == FeatureKind.CATEGORICAL else f.monotone_constraint for f in spec.features
        ]
        if any(constraints):
            params["monotone_constraints"] = constraints
            params["monotone_constraints_method"] = config.monotone_constraints_method
    return params


def categorical_indices(spec: FeatureSpec) -> list[int]:
    """Column positions of the spec's categorical features (integer codes in the matrix)."""
    return [i for i, f in enumerate(spec.features) if f.kind == FeatureKind.CATEGORICAL]


def normalise_model_text(text: str) -> str:
    """Drop the thread count LightGBM writes into the parameters block.

    It is the only run-environment value in the text; without it the same data and seeds give
    byte-identical model files on any machine size.
    """
    return _NUM_THREADS_LINE.sub("", text)


def fit_lgbm(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    spec: FeatureSpec,
    config: LgbmConfig,
    seed: int,
) -> FittedModel:
    """Fit a LightGBM binary model with early stopping on the validation (calibration) window.

    Args:
        x_train: training matrix, float64, columns in spec order (categoricals as codes).
        y_train: 0/1 labels of the training rows.
        x_valid: calibration-window matrix used for early stopping.
        y_valid: its labels.
        spec: feature spec (monotone constraints and categorical columns).
        config: model parameters.
        seed: base seed (LightGBM seeds are derived from it).

    Returns:
        The fitted model truncated at its best iteration, with normalised model text.
    """
    params = lgb_params(spec, config, seed)
    cats = categorical_indices(spec)
    train_set = lgb.Dataset(
        x_train,
        label=y_train,
        feature_name=spec.names,
        categorical_feature=cats,
        free_raw_data=True,
    )
    valid_set = lgb.Dataset(x_valid, label=y_valid, reference=train_set)
    callbacks: list[Callable[..., Any]] = []
    if config.early_stopping_rounds:
        callbacks.append(
            lgb.early_stopping(config.early_stopping_rounds, first_metric_only=True, verbose=False)
        )
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["calibration"],
        callbacks=callbacks,
    )
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    text = normalise_model_text(booster.model_to_string(num_iteration=best))
    final = lgb.Booster(model_str=text)
    return FittedModel(booster=final, params=params, best_iteration=best, model_text=text)


def fit_fixed_rounds(
    x: np.ndarray, y: np.ndarray, spec: FeatureSpec, config: LgbmConfig, seed: int, rounds: int
) -> lgb.Booster:
    """Fit with a fixed number of trees and no validation set (used in cross-validation)."""
    params = lgb_params(spec, config, seed)
    data = lgb.Dataset(
        x, label=y, feature_name=spec.names, categorical_feature=categorical_indices(spec)
    )
    return lgb.train(params, data, num_boost_round=rounds)


def tune_lgbm(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    spec: FeatureSpec,
    config: LgbmConfig,
    search: OptunaConfig,
    seed: int,
) -> LgbmConfig:
    """Seeded TPE search over leaves, depth, leaf size, sampling and L2; returns the best config.

    The objective is the calibration-window AUC, the same window that drives early stopping;
    the test window is never seen. ``search.n_trials == 0`` returns ``config`` unchanged.
    """
    if search.n_trials == 0:
        return config

    def objective(trial: optuna.Trial) -> float:
        candidate = config.model_copy(
            update={
                "num_leaves": trial.suggest_int("num_leaves", 8, 63, log=True),
                "max_depth": trial.suggest_categorical("max_depth", list(search.max_depth_choices)),
                "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
                "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
                "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
            }
        )
        model = fit_lgbm(x_train, y_train, x_valid, y_valid, spec, candidate, seed)
        return float(roc_auc_score(y_valid, model.booster.predict(x_valid, raw_score=True)))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=search.n_trials)
    return config.model_copy(update=study.best_params)
