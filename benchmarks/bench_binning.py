"""The challenger's numeric binning: optbinning against our quantile merge, same rows, same folds.

For each binning (``training.config.ChallengerConfig.binning``, with ``n_bins`` 10 and 20) the
script fits the WOE scorecard (``training.challenger.fit_scorecard``) and measures its test AUC
and fit time:

- the sample portfolio (``features.synthetic``, params.yaml ``generate`` size and seed, built
  with ``features.build``): out-of-time split with the params.yaml ``train.split`` windows,
  trained on the training window, AUC on the test window;
- the public tables of ``../shared/datasets`` (as ``bench_real_data.py`` reads them, protected
  columns left out): 5-fold stratified CV (seed 42), AUC on each held-out fold.

It also counts, on every fit, the numeric features whose training bad rate is not monotone over
their bins (should be 0), and checks that a second fit gives the same bins (determinism).
Writes ``benchmarks/results/binning.json``.

Usage: ``uv run python benchmarks/bench_binning.py [--customers N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_real_data import PUBLIC, Table

from features.build import build_dataset
from features.catalog import FEATURE_SPEC
from features.metrics import auc
from features.spec import FeatureKind, FeatureSpec
from features.synthetic import GeneratorConfig, generate
from features.validate import load_raw
from riskgrade.config import load_params
from training.challenger import WoeScorecard, fit_scorecard
from training.config import ChallengerConfig
from training.split import out_of_time_split
from training.table import map_target, read_table, table_matrix, table_spec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FOLDS = 5
SEED = 42
VARIANTS = {
    "quantile_10": {"binning": "quantile", "n_bins": 10},
    "quantile_20": {"binning": "quantile", "n_bins": 20},
    "optbinning_10": {"binning": "optbinning", "n_bins": 10},
    "optbinning_20": {"binning": "optbinning", "n_bins": 20},
}


def non_monotone(card: WoeScorecard, spec: FeatureSpec) -> int:
    """Numeric features whose WOE (hence training bad rate) is not monotone over the bins."""
    count = 0
    for bins, feature in zip(card.bins, spec.features, strict=True):
        if feature.kind is FeatureKind.CATEGORICAL or len(bins.woe) < 3:
            continue
        steps = np.diff(bins.woe)
        count += int(not ((steps >= 0).all() or (steps <= 0).all()))
    return count


def same_bins(a: WoeScorecard, b: WoeScorecard) -> bool:
    """Whether two fits produced identical edges and WOE."""
    return all(
        np.array_equal(x.edges, y.edges) and np.array_equal(x.woe, y.woe)
        for x, y in zip(a.bins, b.bins, strict=True)
    )


def evaluate(
    x: np.ndarray, y: np.ndarray, spec: FeatureSpec, splits: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, object]:
    """Test AUC, fit seconds, non-monotone features and determinism of every variant."""
    base: ChallengerConfig = load_params(ROOT / "params.yaml").train.challenger
    out: dict[str, object] = {}
    for name, settings in VARIANTS.items():
        config = ChallengerConfig(**{**base.model_dump(), **settings})
        aucs, seconds, broken, deterministic = [], [], 0, True
        for k, (train, test) in enumerate(splits):
            start = time.perf_counter()
            card = fit_scorecard(x[train], y[train], spec, config, SEED)
            seconds.append(time.perf_counter() - start)
            aucs.append(auc(y[test].astype(float), card.predict_pd(x[test])))
            broken += non_monotone(card, spec)
            if k == 0:
                again = fit_scorecard(x[train], y[train], spec, config, SEED)
                deterministic = same_bins(card, again)
        out[name] = {
            "test_auc": float(np.mean(aucs)),
            "test_auc_std": float(np.std(aucs)),
            "test_auc_per_split": [float(a) for a in aucs],
            "fit_seconds": float(np.mean(seconds)),
            "non_monotone_features": broken,
            "deterministic": deterministic,
        }
        print(f"  {name}: AUC {np.mean(aucs):.4f}  fit {np.mean(seconds):.2f}s", flush=True)
    return out


def sample_portfolio(customers: int) -> dict[str, object]:
    """The generated portfolio with the params.yaml out-of-time split."""
    params = load_params(ROOT / "params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        generate(GeneratorConfig(customers=customers, seed=params.generate.seed), Path(tmp))
        dataset = build_dataset(load_raw(Path(tmp)))
    split = out_of_time_split(pd.to_datetime(dataset["snapshot_date"]), params.train.split)
    x = dataset[FEATURE_SPEC.names].to_numpy(dtype=np.float64, na_value=np.nan)
    y = dataset["default_12m"].to_numpy(dtype=np.int64)
    print(f"sample portfolio: {len(y):,} rows", flush=True)
    result = evaluate(x, y, FEATURE_SPEC, [(split.train, split.test)])
    return {
        "rows": len(y),
        "train_rows": len(split.train),
        "test_rows": len(split.test),
        "method": "out-of-time: train window -> test window",
        "variants": result,
    }


def public_table(table: Table) -> dict[str, object]:
    """One public table, 5-fold stratified CV."""
    frame = read_table(table.file)
    y = map_target(frame[table.target], table.positive)
    excluded = {table.target, *table.drop, *table.protected}
    columns = [c for c in frame.columns if c not in excluded]
    spec = table_spec(frame, columns)
    x = table_matrix(frame, columns, spec)
    folds = list(StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED).split(x, y))
    print(f"{table.label}: {len(y):,} rows, {len(columns)} features", flush=True)
    return {
        "rows": len(y),
        "features": len(columns),
        "method": f"{FOLDS}-fold stratified CV (seed {SEED})",
        "variants": evaluate(x, y, spec, folds),
    }


def main() -> None:
    """Run every dataset and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=None, help="portfolio size")
    parser.add_argument("--out", type=Path, default=RESULTS / "binning.json")
    args = parser.parse_args()
    start = time.perf_counter()
    import optbinning  # noqa: F401  (timed apart: fits below exclude the import)

    import_seconds = time.perf_counter() - start
    customers = args.customers or load_params(ROOT / "params.yaml").generate.customers
    datasets: dict[str, Any] = {"sample_portfolio": sample_portfolio(customers)}
    for table in PUBLIC:
        if table.file.exists():
            datasets[table.label] = public_table(table)
    best = {
        name: max(d["variants"], key=lambda v: d["variants"][v]["test_auc"])
        for name, d in datasets.items()
    }
    mean_auc = {
        v: float(np.mean([d["variants"][v]["test_auc"] for d in datasets.values()]))
        for v in VARIANTS
    }
    result = {
        "method": "WOE scorecard (training.challenger.fit_scorecard), params.yaml challenger "
        "settings except binning and n_bins; fit time per scorecard on one process",
        "optbinning_import_seconds": import_seconds,
        "datasets": datasets,
        "best_variant_per_dataset": best,
        "mean_test_auc_over_datasets": mean_auc,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"best": best, "mean_test_auc": mean_auc}, indent=2))


if __name__ == "__main__":
    main()
