"""Benchmark raw data from a database: load, point-in-time read, PostgreSQL read paths, by-id reads.

On a generated portfolio: ``load_folder`` into DuckDB and PostgreSQL (a throwaway cluster,
as the tests start one); ``load_raw_at`` from the folder, DuckDB and PostgreSQL (the as-of cut
in the query for the databases); the PostgreSQL read of the largest table by the path the
package uses (``COPY ... TO STDOUT`` as CSV parsed by Arrow) against a plain cursor
``fetchall`` into pandas (the SQLAlchemy/DB-API path); and the read of one customer's records
(``read_customers_at``, what a by-id ``/score`` does) from each database. The machine is
shared, so the load average is recorded.

Writes ``benchmarks/results/raw_database.json``.
Usage: uv run python benchmarks/bench_raw_database.py [--customers 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
RESULTS = ROOT / "results" / "raw_database.json"
AS_OF = date(2024, 6, 30)


def timed(call: Any, rounds: int) -> tuple[float, Any]:
    """Median seconds of ``rounds`` calls, and the last result."""
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    """Run the benchmark and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=50)
    args = parser.parse_args()

    import pandas as pd

    from features.dbload import load_folder
    from features.source import DatabaseSource, point_in_time_query
    from features.synthetic import GeneratorConfig, generate
    from features.validate import load_raw_at
    from tests.conftest import create_pg_database, start_pg_cluster

    work = Path(tempfile.mkdtemp(prefix="bench-rawdb-"))
    config = GeneratorConfig(
        customers=args.customers, seed=3, start=date(2021, 1, 1), end=date(2025, 6, 30)
    )
    generate(config, work / "raw")
    folder_mb = sum(p.stat().st_size for p in (work / "raw").glob("*.parquet")) / 1e6
    result: dict[str, Any] = {
        "customers": args.customers,
        "folder_parquet_mb": round(folder_mb, 1),
        "as_of": AS_OF.isoformat(),
        "rounds": args.rounds,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_before": os.getloadavg()[0],
    }
    with start_pg_cluster() as cluster:
        urls = {
            "duckdb": f"duckdb:///{work / 'raw.duckdb'}",
            "postgresql": create_pg_database(cluster, "bench_raw"),
        }
        result["load_s"] = {}
        for name, url in urls.items():
            start = time.perf_counter()
            summary = load_folder(work / "raw", url)
            result["load_s"][name] = round(time.perf_counter() - start, 3)
        result["rows"] = summary.row_counts
        result["load_raw_at_s"] = {}
        for name, raw in (("folder", work / "raw"), *urls.items()):
            seconds, known = timed(lambda raw=raw: load_raw_at(raw, AS_OF), args.rounds)
            result["load_raw_at_s"][name] = round(seconds, 3)
        result["rows_known_at_as_of"] = known.tables.row_counts()

        # PostgreSQL: the package's COPY/Arrow read against a DB-API fetchall of the same query.
        pg = DatabaseSource(urls["postgresql"])
        sql = point_in_time_query("transactions", AS_OF)
        copy_s, frame = timed(lambda: pg.query("transactions", sql), args.rounds)

        def fetchall() -> pd.DataFrame:
            with pg.connect() as connection:
                cursor = connection.execute(sql)
                names = [c.name for c in cursor.description]
                return pd.DataFrame(cursor.fetchall(), columns=names)

        fetch_s, fetched = timed(fetchall, args.rounds)
        assert len(fetched) == len(frame)
        result["postgresql_transactions_read"] = {
            "rows": len(frame),
            "copy_csv_arrow_s": round(copy_s, 3),
            "cursor_fetchall_pandas_s": round(fetch_s, 3),
            "ratio_fetchall_over_copy": round(fetch_s / copy_s, 2),
        }

        # One customer's records at AS_OF (a by-id /score), pooled connections as the service.
        ids = sorted(known.tables.customers["customer_id"])[: args.lookups]
        result["by_id_read_ms"] = {}
        for name, url in urls.items():
            source = DatabaseSource(url, pooled=True)
            source.read_customers_at(ids[:1], AS_OF)  # warm: connections, catalog
            times = []
            for cid in ids:
                start = time.perf_counter()
                source.read_customers_at([cid], AS_OF)
                times.append((time.perf_counter() - start) * 1000)
            source.close()
            times.sort()
            result["by_id_read_ms"][name] = {
                "p50": round(statistics.median(times), 2),
                "p90": round(times[int(0.9 * (len(times) - 1))], 2),
                "n": len(times),
            }
    result["load_average_after"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
