"""Closed-loop load on loopback: N clients, each sending /score requests back to back."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np


@dataclass(frozen=True)
class Outcome:
    """One request: when it started and ended (monotonic s), its status (0: no answer)."""

    start: float
    end: float
    status: int
    decision_id: str | None = None
    code: str | None = None
    error: str | None = None

    @property
    def latency(self) -> float:
        """Seconds from send to answer (or failure)."""
        return self.end - self.start


@dataclass
class LoadResult:
    """Every outcome of a load run."""

    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0

    def ok(self) -> list[Outcome]:
        """The 2xx outcomes (acknowledged decisions)."""
        return [o for o in self.outcomes if 200 <= o.status < 300]

    def summary(self) -> dict[str, Any]:
        """Counts by status, error samples, latency percentiles (ms) and throughput."""
        statuses: dict[str, int] = {}
        for outcome in self.outcomes:
            key = str(outcome.status) if outcome.status else "no_answer"
            statuses[key] = statuses.get(key, 0) + 1
        ok = self.ok()
        return {
            "requests": len(self.outcomes),
            "statuses": statuses,
            "errors": sum(1 for o in self.outcomes if not 200 <= o.status < 300),
            "error_samples": sorted({o.error or o.code or "" for o in self.outcomes if o.error})[
                :5
            ],
            "ok_latency_ms": percentiles([o.latency for o in ok]),
            "throughput_per_s": round(len(ok) / self.seconds, 1) if self.seconds else 0.0,
            "seconds": round(self.seconds, 1),
        }


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of seconds, in milliseconds (None when empty)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    array = np.asarray(values) * 1000
    return {
        "p50": round(float(np.percentile(array, 50)), 1),
        "p90": round(float(np.percentile(array, 90)), 1),
        "p99": round(float(np.percentile(array, 99)), 1),
        "max": round(float(array.max()), 1),
    }


def run_load(
    base: str,
    bodies: list[dict[str, Any]],
    headers: dict[str, str],
    *,
    clients: int = 32,
    seconds: float = 60.0,
    timeout: float = 30.0,
    stop: threading.Event | None = None,
    path: str = "/score",
) -> LoadResult:
    """Run ``clients`` threads, each posting bodies in turn until ``seconds`` pass or ``stop``.

    A client whose request gets no answer (connection refused/reset, timeout) records status 0
    and, when ``stop`` is given, keeps trying (the server may come back); otherwise it stops.
    """
    stop = stop or threading.Event()
    result = LoadResult(started=time.monotonic())
    lock = threading.Lock()
    deadline = result.started + seconds

    def client(k: int) -> None:
        local: list[Outcome] = []
        with httpx.Client(timeout=timeout) as session:
            i = k
            while time.monotonic() < deadline and not stop.is_set():
                body = bodies[i % len(bodies)]
                i += clients
                t0 = time.monotonic()
                try:
                    response = session.post(base + path, json=body, headers=headers)
                except httpx.HTTPError as error:
                    local.append(Outcome(t0, time.monotonic(), 0, error=type(error).__name__))
                    time.sleep(0.05)
                    continue
                t1 = time.monotonic()
                data = _json(response)
                decision = data.get("decision_id") if response.status_code == 200 else None
                code = (
                    (data.get("error") or {}).get("code") if response.status_code >= 400 else None
                )
                local.append(Outcome(t0, t1, response.status_code, decision, code))
        with lock:
            result.outcomes.extend(local)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout + 30)
    result.seconds = time.monotonic() - result.started
    result.outcomes.sort(key=lambda o: o.start)
    return result


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def audit_counts(db: Path, decision_ids: list[str]) -> dict[str, int]:
    """How often each decision id occurs in the audit database (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT decision_id, COUNT(*) FROM decisions GROUP BY decision_id"
        ).fetchall()
    finally:
        conn.close()
    counts = dict(rows)
    return {d: int(counts.get(d, 0)) for d in decision_ids}


def audit_check(db: Path, result: LoadResult) -> dict[str, Any]:
    """Every acknowledged decision id in the audit log exactly once."""
    ids = [o.decision_id for o in result.ok() if o.decision_id]
    counts = audit_counts(db, ids)
    missing = [d for d, n in counts.items() if n == 0]
    duplicated = [d for d, n in counts.items() if n > 1]
    return {
        "acknowledged": len(ids),
        "unique_acknowledged": len(set(ids)),
        "missing_in_audit": len(missing),
        "duplicated_in_audit": len(duplicated),
        "exactly_once": not missing and not duplicated and len(set(ids)) == len(ids),
    }


def sqlite_integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of the database ("ok" when sound)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
