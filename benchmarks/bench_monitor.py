"""Benchmark a monitoring run against its own rating cost, measured in the same process.

A generated portfolio (default 5,000 customers) is rated at two year-ends with a tiny real
bundle (``tests/serving/factory.make_bundle``: monitoring here measures cost, not quality).
Reported: ``rate_portfolio`` alone (the baseline), ``run_monitoring`` (rating + store + drift
+ migration + warnings + outcomes), ``write_report`` (HTML with plots, JSON, CSVs), and the
vectorised migration explanation against calling ``rating.explain.explain_migration`` for
every moved customer. Ratios are against the baseline of the same run.

Writes ``benchmarks/results/monitor.json``.
Usage: uv run python benchmarks/bench_monitor.py [--customers 5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from features.synthetic import GeneratorConfig, generate_tables  # noqa: E402
from monitoring.migration import explain_customer, explain_moves  # noqa: E402
from monitoring.report import write_report  # noqa: E402
from monitoring.run import run_monitoring  # noqa: E402
from monitoring.store import MonitoringStore  # noqa: E402
from rating.portfolio import rate_portfolio  # noqa: E402
from tests.serving.factory import make_bundle  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args()
    raw, _ = generate_tables(GeneratorConfig(customers=args.customers, seed=1))
    first, second = date(2024, 12, 31), date(2025, 12, 31)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp) / "bundle")
        rate_portfolio(raw, first, bundle)  # warm-up (imports, polars thread pool)
        _, rating = timed(lambda: rate_portfolio(raw, second, bundle))
        store = Path(tmp) / "m.duckdb"
        _, first_run = timed(lambda: run_monitoring(raw, first, bundle, store))
        run, second_run = timed(lambda: run_monitoring(raw, second, bundle, store))
        _, report = timed(lambda: write_report(run, Path(tmp) / "out"))
        stored = MonitoringStore(store)
        previous, current = stored.load_run(run.previous.run_id), stored.load_run(run.run_id)
        spec, reasons = bundle.spec, bundle.reasons
        _, vectorised = timed(lambda: explain_moves(previous, current, spec, reasons))
        ids = run.moves["customer_id"].tolist()
        _, per_customer = timed(
            lambda: [
                explain_customer(previous, current, c, spec, bundle.scale, bundle.policy)
                for c in ids
            ]
        )
        size = store.stat().st_size
    result = {
        "customers": run.info.customers,
        "moves": len(ids),
        "rate_portfolio_s": rating,
        "first_run_s": first_run,
        "second_run_s": second_run,
        "second_run_vs_rating": second_run / rating,
        "write_report_s": report,
        "explain_moves_vectorised_s": vectorised,
        "explain_migration_per_customer_s": per_customer,
        "vectorised_speedup": per_customer / vectorised if vectorised else None,
        "store_bytes_two_runs": size,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = ROOT / "results" / "monitor.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
