from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from training.config import PLAIN_LGBM, FamilyConfig, LgbmConfig, RegistryConfig, TrainConfig

INDUSTRIES = ("manufacturing", "retail", "construction")


def small_spec() -> FeatureSpec:
    def f(name, group, direction, kind=FeatureKind.NUMERIC, categories=()):
        return FeatureDef(
            name=name,
            group=group,
            description=name.replace("_", " "),
            description_zh=name,
            unit="x",
            risk_direction=direction,
            kind=kind,
            categories=categories,
        )

    return FeatureSpec(
        version="test-1",
        features=(
            f(
                "industry",
                FeatureGroup.PROFILE,
                RiskDirection.NONE,
                FeatureKind.CATEGORICAL,
                INDUSTRIES,
            ),
            f("debt_ratio", FeatureGroup.FINANCIAL, RiskDirection.UP),
            f("current_ratio", FeatureGroup.FINANCIAL, RiskDirection.DOWN),
            f("max_dpd_12m", FeatureGroup.CREDIT, RiskDirection.UP),
            f("inflow_cv_12m", FeatureGroup.TRANSACTION, RiskDirection.UP),
            f("noise", FeatureGroup.TRANSACTION, RiskDirection.NONE),
            f("flag_fraud", FeatureGroup.PROFILE, RiskDirection.UP, FeatureKind.FLAG),
        ),
    )


def make_dataset(
    customers: int = 400, snapshots: int = 10, seed: int = 0, downturn: float = 0.0
) -> pd.DataFrame:
    """Synthetic features dataset: latent health drives features and the 12-month default.

    ``downturn`` adds that much to the default log-odds of the last four snapshots (the
    out-of-time test window), a cycle the features do not show.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-03-31", periods=snapshots, freq="QE")
    n = customers * snapshots
    health = np.repeat(rng.normal(0, 1, customers), snapshots) + rng.normal(0, 0.5, n)
    industry = np.repeat(rng.integers(0, 3, customers), snapshots).astype(float)
    debt = np.clip(0.5 - 0.15 * health + rng.normal(0, 0.1, n), 0, 2)
    current = np.clip(1.5 + 0.4 * health + rng.normal(0, 0.3, n), 0, None)
    dpd = np.clip(np.round(20 * np.exp(-1.2 * health + rng.normal(0, 0.8, n)) - 10), 0, 365)
    cv = np.abs(0.4 - 0.1 * health + rng.normal(0, 0.1, n))
    debt[rng.random(n) < 0.05] = np.nan
    fraud = (rng.random(n) < 0.01).astype(float)
    logit = -3.2 - 1.1 * health + 0.3 * (industry == 2) + 1.5 * fraud
    logit += downturn * np.tile(np.arange(snapshots) >= snapshots - 4, customers)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "customer_id": np.tile([f"C{i:05d}" for i in range(customers)], 1)
            .reshape(customers, 1)
            .repeat(snapshots, axis=1)
            .ravel(),
            "snapshot_date": np.tile(dates.to_numpy(), customers),
            "industry": industry,
            "debt_ratio": debt,
            "current_ratio": current,
            "max_dpd_12m": dpd,
            "inflow_cv_12m": cv,
            "noise": rng.normal(0, 1, n),
            "flag_fraud": fraud,
            "short_history": np.zeros(n, dtype=np.int64),
            "default_12m": y,
        }
    )


def fast_config(**registry) -> TrainConfig:
    """Small, fast LightGBM settings; the plain reference candidate is shrunk the same way."""
    return TrainConfig(
        lgbm=LgbmConfig(num_boost_round=120, learning_rate=0.08, early_stopping_rounds=30),
        family=FamilyConfig(plain={**PLAIN_LGBM, "learning_rate": 0.08}, plain_rounds=120),
        registry=RegistryConfig(enabled=False, **registry)
        if not registry
        else RegistryConfig(**registry),
        show_progress=False,
    )


@pytest.fixture(scope="session")
def dataset() -> pd.DataFrame:
    return make_dataset()


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    return small_spec()


def good_gate_metrics() -> dict:
    """Metrics of a model that passes every default gate."""
    return {
        "test.auc": 0.8,
        "challenger.test.auc": 0.75,
        "challenger.test.auc_diff_p": 0.9,
        "grades.monotone": True,
        "grades.significant_inversions": 0.0,
        "grades.max_share": 0.3,
        "stability.psi_score": 0.05,
        "test.ece_shape": 0.01,
        "cycle.level_ratio": 1.05,
        "cycle.level_low": 0.9,
        "cycle.level_high": 1.2,
        "cycle.grades.red_count": 0.0,
        "cycle.grades.red_allowed": 1.0,
        "cycle.grades.assessable": 6.0,
        "cycle.grades.zone": "green",
    }
