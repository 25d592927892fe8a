"""Benchmark RatingModel.score: rows per second by batch size, and the cost of reasons.

A 40-feature, 300-tree (31 leaves) LightGBM on synthetic data is bundled, loaded and scored with one
thread. TreeSHAP (``pred_contrib``) dominates; ``overhead_ms_per_row`` is everything
else (checks, calibration, grades, tiers, hard rules, reasons). Writes
benchmarks/results/rating_score.json.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from rating.bundle import BundleMetadata, load_bundle, write_bundle
from rating.calibration import PlattCalibration
from rating.explain import render_waterfall
from rating.model import RatingModel
from rating.policy import RatingPolicy
from rating.scale import MasterScale

N_FEATURES, N_TREES, N_TRAIN, SEED = 40, 300, 20_000, 11
RESULT = Path(__file__).parent / "results" / "rating_score.json"


def make_spec() -> FeatureSpec:
    groups = list(FeatureGroup)
    features = [
        FeatureDef(
            name=f"f{j:02d}",
            group=groups[j % 4],
            description=f"Feature {j}",
            description_zh=f"特征{j}",
            unit="ratio",
            risk_direction=RiskDirection.UP if j % 2 else RiskDirection.DOWN,
        )
        for j in range(N_FEATURES - 3)
    ]
    features += [
        FeatureDef(
            name=flag,
            group=FeatureGroup.PROFILE,
            description=flag,
            description_zh=flag,
            unit="flag",
            risk_direction=RiskDirection.UP,
            kind=FeatureKind.FLAG,
        )
        for flag in ("flag_sanctions_hit", "flag_legal_enforcement", "flag_fraud")
    ]
    return FeatureSpec(version="bench", features=tuple(features))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(SEED)
    spec = make_spec()
    x = rng.normal(size=(N_TRAIN, N_FEATURES))
    x[:, -3:] = (rng.random((N_TRAIN, 3)) < 0.01).astype(float)
    logit = -3 + x[:, :10] @ rng.normal(0, 0.5, 10)
    y = (rng.random(N_TRAIN) < 1 / (1 + np.exp(-logit))).astype(float)
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "seed": SEED,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=spec.names), N_TREES)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bundle"
        start = time.perf_counter()
        write_bundle(
            folder,
            model_text=booster.model_to_string(),
            calibration=PlattCalibration(a=0.95, b=-0.1),
            scale=MasterScale(),
            policy=RatingPolicy(),
            spec=spec,
            reference={},
            metadata=BundleMetadata(version="bench", trained_at=datetime.now(UTC)),
        )
        write_s = time.perf_counter() - start
        load_s = best_of(lambda: load_bundle(folder), 5)
        model = RatingModel.load(folder)

    results: dict[str, Any] = {
        "features": N_FEATURES,
        "trees": N_TREES,
        "num_threads": 1,
        "bundle_write_s": round(write_s, 4),
        "bundle_load_verify_s": round(load_s, 4),
        "python": platform.python_version(),
        "lightgbm": lgb.__version__,
        "batches": {},
    }
    for n in (1, 100, 2_000):
        batch = np.ascontiguousarray(x[:n])
        seconds = best_of(lambda b=batch: model.score(b), 3)
        shap_only = best_of(lambda b=batch: booster.predict(b, pred_contrib=True, num_threads=1), 3)
        results["batches"][str(n)] = {
            "score_s": round(seconds, 5),
            "rows_per_s": round(n / seconds, 1),
            "pred_contrib_s": round(shap_only, 5),
            "overhead_ms_per_row": round(1000 * max(seconds - shap_only, 0.0) / n, 4),
        }
    result = model.score(np.ascontiguousarray(x[:1]))
    explanation = model.explain(result, 0)
    results["explain_one_s"] = round(best_of(lambda: model.explain(result, 0), 20), 5)
    results["waterfall_png_s"] = round(best_of(lambda: render_waterfall(explanation), 3), 4)

    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
