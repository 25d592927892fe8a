"""Rating quality on the sample portfolio: test AUC against the oracle and the challenger.

Generates a portfolio (default 20,000 customers), builds the training set, trains with the
product defaults (MLflow off) and reads the oracle AUC from the generator's ``_truth``.
Writes ``benchmarks/results/sample_quality.json``.
Usage: ``uv run python benchmarks/bench_sample_quality.py [--customers N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from features.build import build_dataset, write_dataset
from features.io import read_raw
from features.synthetic import GeneratorConfig, generate
from training.config import RegistryConfig, TrainConfig
from training.pipeline import train_dataset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KEYS = (
    "test.auc",
    "oracle.test.auc",
    "challenger.test.auc",
    "test.ks",
    "test.brier",
    "test.ece",
    "grades.monotone",
    "gates.passed",
)


def run(customers: int, seed: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="sample_quality_", dir=ROOT / "benchmarks"))
    try:
        started = time.perf_counter()
        generate(GeneratorConfig(customers=customers, seed=seed), work / "raw")
        dataset = build_dataset(read_raw(work / "raw"))
        write_dataset(dataset, work / "features")
        config = TrainConfig(registry=RegistryConfig(enabled=False), show_progress=False)
        result = train_dataset(work / "features", config, work / "out", truth_dir=work / "raw")
        metrics = {k: result.metrics.get(k) for k in KEYS}
        gap = float(metrics["oracle.test.auc"]) - float(metrics["test.auc"])  # type: ignore[arg-type]
        return {
            "customers": customers,
            "seed": seed,
            "rows": len(dataset),
            "seconds": round(time.perf_counter() - started, 1),
            "metrics": metrics,
            "oracle_minus_model_auc": round(gap, 4),
            "within_0_03_of_oracle": gap <= 0.03,
            "beats_challenger": float(metrics["test.auc"]) > float(metrics["challenger.test.auc"]),  # type: ignore[arg-type]
            "failed_gates": [g.name for g in result.gates if not g.passed],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    result = run(args.customers, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sample_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
