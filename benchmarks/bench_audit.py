"""Benchmark the audit append on the scoring hot path: new store against the code it replaced.

On SQLite with WAL and ``synchronous=FULL`` (every commit fsynced, as the service runs), time
``append`` (one decision, one transaction) and ``append_many`` of 32 decisions (one
``/score_batch`` group, one transaction) for: the ``audit`` package; the store it replaced
(``serving/audit.py`` at ``tests.audit.legacy.LEGACY_COMMIT``, loaded from git in the same
run); and a bare ``sqlite3`` INSERT + COMMIT of the same row (the floor). Rounds alternate
between the implementations, each on its own fresh file in the same folder, so disk and load
affect them alike; the machine is shared, so the load average is recorded.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
RESULTS = ROOT / "results" / "audit.json"
KEY = b"bench-key"


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


def time_store(open_store: Callable[[Path], Any], module: Any, path: Path, n: int) -> dict:
    """Seconds per ``append`` and per ``append_many(32)`` (median over calls) on a fresh file."""
    store = open_store(path)
    singles = records(module, 0, n)
    groups = [records(module, 10**6 + g * 32, 32) for g in range(max(n // 8, 4))]
    one, many = [], []
    for rec in singles:
        t0 = time.perf_counter()
        store.append(rec)
        one.append(time.perf_counter() - t0)
    for group in groups:
        t0 = time.perf_counter()
        store.append_many(group)
        many.append(time.perf_counter() - t0)
    assert store.verify().ok
    store.close()
    return {"append": statistics.median(one), "append_many_32": statistics.median(many)}


def time_bare(path: Path, n: int) -> dict:
    """The floor: one INSERT of a row of the same size + COMMIT, WAL and synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT, body BLOB)")
    payload = json.dumps({"features": {f"f{k}": k / 7 for k in range(40)}})
    body = b"x" * 1200
    one, many = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (payload, body) VALUES (?, ?)", (payload, body))
        conn.execute("COMMIT")
        one.append(time.perf_counter() - t0)
    for _ in range(max(n // 8, 4)):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (payload, body) VALUES (?, ?)", [(payload, body)] * 32)
        conn.execute("COMMIT")
        many.append(time.perf_counter() - t0)
    conn.close()
    return {"append": statistics.median(one), "append_many_32": statistics.median(many)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=200, help="single appends per round")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the files")
    args = parser.parse_args()

    import audit
    from tests.audit.legacy import LEGACY_COMMIT, load_legacy_audit

    legacy = load_legacy_audit()
    contenders: dict[str, Callable[[Path], dict]] = {
        "audit_package": lambda p: time_store(
            lambda q: audit.SqlAuditStore(audit.AuditConfig(path=q), key=KEY), audit, p, args.n
        ),
        "legacy_serving_audit": lambda p: time_store(
            lambda q: legacy.AuditStore(legacy.AuditConfig(path=q), key=KEY), legacy, p, args.n
        ),
        "bare_sqlite3": lambda p: time_bare(p, args.n),
    }
    work = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.dir))
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    try:
        for r in range(args.rounds):
            for name, run in contenders.items():
                runs[name].append(run(work / f"{name}-{r}.db"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        name: {
            op: statistics.median(run[op] for run in results) * 1e3
            for op in ("append", "append_many_32")
        }
        for name, results in runs.items()
    }
    new, old = summary["audit_package"], summary["legacy_serving_audit"]
    out = {
        "what": "audit append on SQLite, WAL + synchronous=FULL; median ms per call",
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
