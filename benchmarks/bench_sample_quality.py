"""Rating quality and gates on the sample portfolio at several sizes.

For each size: generates a portfolio, builds the training set, trains with the product defaults
(MLflow off), reads the oracle AUC from the generator's ``_truth`` and records every gate (value,
threshold, how it was judged). Then the same model's predictions are turned into two negative
controls, PDs doubled and grades shuffled, validated again, and the gates they fail recorded
(expected: ``calibration_level`` and ``grades_monotone``).

Results are merged by (customers, seed) into ``benchmarks/results/sample_quality.json``, so a
large size can be run on its own. Usage:
``uv run python benchmarks/bench_sample_quality.py --customers 5000 20000 [--seeds 31 42]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from features.build import build_dataset, write_dataset
from features.io import read_raw
from features.synthetic import GeneratorConfig, generate
from rating.scale import MasterScale
from training.backtest import cycle_table, scaled_pds, shuffled_grades, validate_predictions
from training.config import RegistryConfig, TrainConfig
from training.gates import evaluate_gates
from training.pipeline import train_dataset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RESULT_FILE = RESULTS / "sample_quality.json"
KEYS = (
    "test.auc",
    "oracle.test.auc",
    "challenger.test.auc",
    "challenger.test.auc_diff_p",
    "test.ks",
    "test.brier",
    "test.ece",
    "test.ece_shape",
    "test.default_rate",
    "test.mean_pd",
    "calibration.long_run_default_rate",
    "grades.monotone",
    "grades.inversions",
    "grades.significant_inversions",
    "cycle.years",
    "cycle.long_run_default_rate",
    "cycle.long_run_pd",
    "cycle.level_ratio",
    "cycle.level_low",
    "cycle.level_high",
    "cycle.grades.assessable",
    "cycle.grades.not_assessable",
    "cycle.grades.red_count",
    "cycle.grades.zone",
    "gates.passed",
)


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


def run(customers: int, seed: int) -> dict[str, object]:
    """Generate, build, train and validate one portfolio; gates and negative controls."""
    work = Path(tempfile.mkdtemp(prefix="sample_quality_", dir=ROOT / "benchmarks"))
    try:
        started = time.perf_counter()
        generate(GeneratorConfig(customers=customers, seed=seed), work / "raw")
        dataset = build_dataset(read_raw(work / "raw"))
        write_dataset(dataset, work / "features")
        built = time.perf_counter()
        config = TrainConfig(registry=RegistryConfig(enabled=False), show_progress=False)
        result = train_dataset(work / "features", config, work / "out", truth_dir=work / "raw")
        trained = time.perf_counter()
        metrics: dict[str, Any] = {k: _round(result.metrics.get(k)) for k in KEYS}
        scale = MasterScale()
        overlap = float(result.metrics["cycle.overlap"])
        controls = {}
        if result.evaluation_frame is not None:
            for name, frame in (
                ("pds_doubled", scaled_pds(result.evaluation_frame, 2.0)),
                ("grades_shuffled", shuffled_grades(result.evaluation_frame, scale, seed=0)),
            ):
                backtest = validate_predictions(frame, scale, config.validation, overlap)
                gates = evaluate_gates({**result.metrics, **backtest.metrics}, config.gates)
                controls[name] = [g.name for g in gates if not g.passed]
        gap = float(metrics["oracle.test.auc"]) - float(metrics["test.auc"])
        return {
            "customers": customers,
            "seed": seed,
            "rows": len(dataset),
            "seconds_generate_build": round(built - started, 1),
            "seconds_train": round(trained - built, 1),
            "metrics": metrics,
            "oracle_minus_model_auc": round(gap, 4),
            "gates": {
                g.name: {
                    "passed": g.passed,
                    "value": _round(g.value),
                    "threshold": _round(g.threshold),
                    "how": g.note,
                }
                for g in result.gates
            },
            "failed_gates": [g.name for g in result.gates if not g.passed],
            "negative_controls_failed_gates": controls,
            "cycle": []
            if result.evaluation_frame is None
            else [
                {k: _round(v) for k, v in row.items()}
                for row in cycle_table(result.evaluation_frame).to_dict("records")
            ],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _merge(runs: list[dict[str, object]]) -> dict[str, object]:
    previous: list[dict[str, Any]] = []
    if RESULT_FILE.is_file():
        content = json.loads(RESULT_FILE.read_text())
        previous = content.get("runs", []) if isinstance(content, dict) else []
    keyed = {(r["customers"], r["seed"]): r for r in previous}
    keyed.update({(r["customers"], r["seed"]): r for r in runs})
    ordered = [keyed[k] for k in sorted(keyed)]
    return {
        "benchmark": "sample_quality",
        "machine": {"cpus": os.cpu_count()},
        "runs": ordered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000])
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[42], help="one seed, or one per size"
    )
    args = parser.parse_args()
    if len(args.seeds) not in (1, len(args.customers)):
        parser.error("--seeds takes one seed or one per --customers value")
    seeds = args.seeds * len(args.customers) if len(args.seeds) == 1 else args.seeds
    runs = []
    for customers, seed in zip(args.customers, seeds, strict=True):
        run_result = run(customers, seed)
        run_result["peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
        runs.append(run_result)
        print(json.dumps(run_result, indent=2))
        RESULTS.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text(json.dumps(_merge(runs), indent=2) + "\n")


if __name__ == "__main__":
    main()
