"""Small seeded fixtures for the rating tests: a spec, synthetic data and a tiny LightGBM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from rating.bundle import Bundle, BundleMetadata, write_bundle
from rating.calibration import PlattCalibration
from rating.policy import RatingPolicy
from rating.scale import MasterScale

FLAGS = ("flag_sanctions_hit", "flag_legal_enforcement", "flag_fraud")


def make_spec() -> FeatureSpec:
    def feat(name, group, en, zh, direction, **kw):
        return FeatureDef(
            name=name,
            group=group,
            description=en,
            description_zh=zh,
            unit=kw.pop("unit", "ratio"),
            risk_direction=direction,
            **kw,
        )

    return FeatureSpec(
        version="spec-test-1",
        features=(
            feat(
                "debt_ratio",
                FeatureGroup.FINANCIAL,
                "Debt ratio (total liabilities / total assets)",
                "资产负债率（总负债/总资产）",
                RiskDirection.UP,
            ),
            feat(
                "current_ratio",
                FeatureGroup.FINANCIAL,
                "Current ratio",
                "流动比率",
                RiskDirection.DOWN,
            ),
            feat(
                "max_dpd_12m",
                FeatureGroup.CREDIT,
                "Maximum days past due in the last 12 months",
                "近12个月最大逾期天数",
                RiskDirection.UP,
                unit="days",
            ),
            feat(
                "inflow_cv_12m",
                FeatureGroup.TRANSACTION,
                "Volatility of monthly inflows",
                "月度流入波动率",
                RiskDirection.UP,
            ),
            feat(
                "industry",
                FeatureGroup.PROFILE,
                "Industry",
                "所属行业",
                RiskDirection.NONE,
                kind=FeatureKind.CATEGORICAL,
                categories=("manufacturing", "retail", "construction"),
                unit="category",
            ),
            feat(
                "owner_age",
                FeatureGroup.PROFILE,
                "Age of the owner",
                "实际控制人年龄",
                RiskDirection.NONE,
                protected=True,
                unit="years",
            ),
            feat(
                "flag_sanctions_hit",
                FeatureGroup.PROFILE,
                "Sanctions list hit",
                "命中制裁名单",
                RiskDirection.UP,
                kind=FeatureKind.FLAG,
                unit="flag",
            ),
            feat(
                "flag_legal_enforcement",
                FeatureGroup.PROFILE,
                "Legal enforcement",
                "司法强制执行",
                RiskDirection.UP,
                kind=FeatureKind.FLAG,
                unit="flag",
            ),
            feat(
                "flag_fraud",
                FeatureGroup.PROFILE,
                "Fraud on record",
                "欺诈记录",
                RiskDirection.UP,
                kind=FeatureKind.FLAG,
                unit="flag",
            ),
        ),
    )


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    debt = rng.uniform(0.1, 1.2, n)
    current = rng.lognormal(0.2, 0.5, n)
    dpd = np.where(rng.random(n) < 0.8, 0.0, rng.integers(1, 120, n)).astype(np.float64)
    cv = rng.gamma(2.0, 0.2, n)
    industry = rng.integers(0, 3, n).astype(np.float64)
    age = rng.uniform(25, 70, n)
    flags = (rng.random((n, 3)) < 0.02).astype(np.float64)
    # The protected attribute drives the label on purpose: reasons must still never name it.
    logit = (
        -3.0
        + 2.5 * debt
        - 0.8 * current
        + 0.03 * dpd
        + 1.5 * cv
        + 0.4 * (industry == 2)
        + 0.04 * (age - 45)
        + 1.0 * flags[:, 2]
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    x = np.column_stack([debt, current, dpd, cv, industry, age, flags])
    debt_missing = rng.random(n) < 0.05
    x[debt_missing, 0] = np.nan
    return np.ascontiguousarray(x), y


@dataclass(frozen=True)
class Trained:
    spec: FeatureSpec
    model_text: str
    x: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    return make_spec()


@pytest.fixture(scope="session")
def trained(spec: FeatureSpec) -> Trained:
    x, y = make_data(2000, seed=7)
    params = {
        "objective": "binary",
        "num_leaves": 8,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "seed": 7,
        "verbose": -1,
        "monotone_constraints": [f.monotone_constraint for f in spec.features],
    }
    dataset = lgb.Dataset(
        x, y, feature_name=spec.names, categorical_feature=["industry"], free_raw_data=False
    )
    booster = lgb.train(params, dataset, num_boost_round=20)
    return Trained(spec=spec, model_text=booster.model_to_string(), x=x, y=y)


@pytest.fixture(scope="session")
def calibration() -> PlattCalibration:
    return PlattCalibration(a=0.9, b=-0.2)


@pytest.fixture
def reference() -> dict:
    return {
        "features": {
            "debt_ratio": {"edges": [0.0, 0.3, 0.6, 0.9, 1.5], "shares": [0.25, 0.25, 0.25, 0.25]}
        },
        "score": {"edges": np.linspace(0.0, 1.0, 5), "shares": [0.4, 0.3, 0.2, np.float64(0.1)]},
    }


@pytest.fixture
def metadata() -> BundleMetadata:
    return BundleMetadata(
        version="1.0.0",
        trained_at=datetime(2025, 1, 31, 12, 0, tzinfo=UTC),
        metrics={"auc": 0.75},
        lineage={"git_commit": "abc123"},
    )


@pytest.fixture
def make_bundle(
    trained: Trained, calibration: PlattCalibration, reference: dict, metadata: BundleMetadata
) -> Callable[..., Bundle]:
    """Write a bundle of the trained model; keyword arguments override write_bundle's."""

    def make(path: Path, **overrides) -> Bundle:
        kwargs = {
            "model_text": trained.model_text,
            "calibration": calibration,
            "scale": MasterScale(),
            "policy": RatingPolicy(),
            "spec": trained.spec,
            "reference": reference,
            "metadata": metadata,
        }
        return write_bundle(path, **{**kwargs, **overrides})

    return make


@pytest.fixture
def bundle(tmp_path: Path, make_bundle: Callable[..., Bundle]) -> Bundle:
    return make_bundle(tmp_path / "bundle")
