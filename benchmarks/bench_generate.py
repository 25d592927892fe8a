"""Benchmark the sample portfolio generator: wall time, rows written and peak RSS per size.

Each size runs in its own child process so peak RSS is measured per size. Output goes
to ``benchmarks/data/generate_<n>`` (git-ignored, removed afterwards unless --keep) and
the numbers to ``benchmarks/results/generate.json``.

Usage: uv run python benchmarks/bench_generate.py [--full] [--sizes 2000 100000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
RESULTS = ROOT / "results" / "generate.json"


def run_child(customers: int, out_dir: Path) -> dict[str, object]:
    sys.path.insert(0, str(ROOT.parent))
    from features.synthetic import GeneratorConfig, generate

    config = GeneratorConfig(customers=customers, seed=42)
    started = time.perf_counter()
    summary = generate(config, out_dir)
    seconds = time.perf_counter() - started
    rows = sum(summary.row_counts.values())
    disk = sum(path.stat().st_size for path in out_dir.rglob("*.parquet"))
    return {
        "customers": customers,
        "chunk_customers": config.chunk_customers,
        "seconds": round(seconds, 2),
        "rows_total": rows,
        "rows_per_second": round(rows / seconds),
        "row_counts": summary.row_counts,
        "truth_rows": summary.truth_rows,
        "yearly_default_rates": {
            str(year): round(rate, 4) for year, rate in summary.yearly_default_rates.items()
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "disk_mb": round(disk / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="also run 1,000,000 customers")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        out_dir = DATA / f"generate_{args.child}"
        print(json.dumps(run_child(args.child, out_dir)))
        return

    sizes = args.sizes or ([2_000, 100_000, 1_000_000] if args.full else [2_000, 100_000])
    runs = []
    for customers in sizes:
        result = subprocess.run(
            [sys.executable, __file__, "--child", str(customers)],
            check=True,
            capture_output=True,
            text=True,
        )
        run = json.loads(result.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(json.dumps(run))
        if not args.keep:
            shutil.rmtree(DATA / f"generate_{customers}", ignore_errors=True)

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    by_size = {run["customers"]: run for run in previous.get("runs", [])}
    by_size.update({run["customers"]: run for run in runs})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "generate",
                "machine": {"python": platform.python_version(), "cpus": _cpus()},
                "runs": [by_size[size] for size in sorted(by_size)],
            },
            indent=2,
        )
        + "\n"
    )


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
