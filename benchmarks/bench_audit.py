"""Benchmark the audit append on the scoring hot path: new store against the code it replaced.

On SQLite with WAL and ``synchronous=FULL`` (every commit fsynced, as the service runs), time
``append`` (one decision, one transaction) and ``append_many`` of 32 decisions (one
``/score_batch`` group, one transaction) for: the ``audit`` package; the store it replaced
(``serving/audit.py`` at ``tests.audit.legacy.LEGACY_COMMIT``, loaded from git in the same
run); and a bare ``sqlite3`` INSERT + COMMIT of the same rows (the floor). Each round opens
one fresh file per implementation in the same folder and interleaves their calls one by one in
rotating order, so disk and load affect them alike; the machine is shared, so the load average
is recorded.

Writes ``benchmarks/results/audit.json``.
Usage: uv run python benchmarks/bench_audit.py [--rounds 5] [--n 200] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
RESULTS = ROOT / "results" / "audit.json"
KEY = b"bench-key"
CONTENDERS = ("audit_package", "legacy_serving_audit", "bare_sqlite3")


def records(module: Any, start: int, n: int) -> list[Any]:
    """``n`` decisions shaped like the engine's (features, response, a ~1 kB body)."""
    body = json.dumps({"customer_id": "C1", "statements": [{"v": i} for i in range(60)]}).encode()
    payload = {
        "features": {f"f{k}": k / 7 for k in range(40)},
        "response": {"as_of": "2024-12-31", "grade": "4", "reasons": ["r1", "r2", "r3"]},
    }
    return [
        module.DecisionRecord(
            decision_id=f"b{start + i}",
            kind="score",
            caller="bench",
            customer_id=f"C{i % 50}",
            model_version="m1",
            bundle_hash="ab" * 32,
            policy_version="p1",
            pd=0.01 + i / 1e5,
            grade="4",
            tier="medium",
            payload=payload,
            request_body=body,
        )
        for i in range(n)
    ]


class Bare:
    """The floor: INSERT of a row of the same size + COMMIT, WAL and synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT, body BLOB)")

    def append_many(self, group: list[Any]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "INSERT INTO t (payload, body) VALUES (?, ?)",
            [(json.dumps(r.payload), r.request_body) for r in group],
        )
        self.conn.execute("COMMIT")

    def append(self, record: Any) -> None:
        self.append_many([record])

    def close(self) -> None:
        self.conn.close()


def one_round(stores: dict[str, tuple[Any, Any]], n: int) -> dict[str, dict[str, float]]:
    """Median seconds per call; calls interleaved across stores, in rotating order.

    Interleaving call by call keeps a shared disk's bursts of slow fsyncs from landing on one
    implementation only.
    """
    names = list(stores)
    singles = {name: records(module, 0, n) for name, (_, module) in stores.items()}
    n_groups = max(n // 8, 4)
    groups = {
        name: [records(module, 10**6 + g * 32, 32) for g in range(n_groups)]
        for name, (_, module) in stores.items()
    }
    times: dict[str, dict[str, list[float]]] = {
        name: {op: [] for op in ("append", "append_many_32", "append_cpu", "append_many_32_cpu")}
        for name in names
    }
    for op, count in (("append", n), ("append_many_32", n_groups)):
        for i in range(count):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                store = stores[name][0]
                c0, t0 = time.process_time(), time.perf_counter()
                if op == "append":
                    store.append(singles[name][i])
                else:
                    store.append_many(groups[name][i])
                times[name][op].append(time.perf_counter() - t0)
                times[name][f"{op}_cpu"].append(time.process_time() - c0)
    return {
        name: {op: statistics.median(values) for op, values in ops.items()}
        for name, ops in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=200, help="single appends per round")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the files")
    args = parser.parse_args()

    import audit
    from tests.audit.legacy import LEGACY_COMMIT, load_legacy_audit

    legacy = load_legacy_audit()
    work = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.dir))
    runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    try:
        for r in range(args.rounds):
            stores = {
                "audit_package": (
                    audit.SqlAuditStore(audit.AuditConfig(path=work / f"new-{r}.db"), key=KEY),
                    audit,
                ),
                "legacy_serving_audit": (
                    legacy.AuditStore(legacy.AuditConfig(path=work / f"old-{r}.db"), key=KEY),
                    legacy,
                ),
                "bare_sqlite3": (Bare(work / f"bare-{r}.db"), audit),
            }
            for name, result in one_round(stores, args.n).items():
                runs[name].append(result)
            for name in ("audit_package", "legacy_serving_audit"):
                assert stores[name][0].verify().ok
            for store, _ in stores.values():
                store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        name: {
            op: statistics.median(run[op] for run in results) * 1e3
            for op in ("append", "append_many_32", "append_cpu", "append_many_32_cpu")
        }
        for name, results in runs.items()
    }
    new, old = summary["audit_package"], summary["legacy_serving_audit"]
    out = {
        "what": "audit append on SQLite, WAL + synchronous=FULL; median ms per call (wall, and CPU "
        "time of the process: *_cpu)",
        "legacy_commit": LEGACY_COMMIT,
        "rounds": args.rounds,
        "single_appends_per_round": args.n,
        "groups_of_32_per_round": max(args.n // 8, 4),
        "ms": summary,
        "ratio_new_over_legacy": {op: new[op] / old[op] for op in new},
        "ratio_new_over_bare": {op: new[op] / summary["bare_sqlite3"][op] for op in new},
        "filesystem": str(args.dir or tempfile.gettempdir()),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
