"""Service scenarios against real ``bentoml serve`` processes: load, overload, faults, replay.

Each function starts its own server(s) in ``out`` and returns a JSON-ready dict with ``passed``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from reliability.load import (
    LoadResult,
    audit_check,
    percentiles,
    run_load,
    sqlite_integrity,
)
from reliability.server import AUDIT_KEY, Server, Workspace, descendants
from serving.audit import verify
from serving.ports import PortUnavailableError, check_port_free
from serving.watchdog import process_alive


def _server(ws: Workspace, out: Path, name: str, **env: str) -> Server:
    return Server(ws, out / f"{name}.db", out / f"{name}.log", env_extra=env)


def _verify(db: Path) -> dict[str, Any]:
    result = verify(db, key=AUDIT_KEY.encode())
    return {"ok": result.ok, "records": result.records, "problem": result.problem}


def _background_load(
    server: Server, ws: Workspace, clients: int, seconds: float
) -> tuple[threading.Thread, threading.Event, dict[str, LoadResult]]:
    stop, box = threading.Event(), {}

    def go() -> None:
        box["result"] = run_load(
            server.base, ws.bodies, ws.auth(), clients=clients, seconds=seconds, stop=stop
        )

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, stop, box


def load(ws: Workspace, out: Path, clients: int = 32, seconds: float = 60.0) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds``: no error, every 2xx audited once."""
    server = _server(ws, out, "load", RISKGRADE_MAX_CONCURRENCY=str(2 * clients))
    with server:
        if not server.wait_ready():
            return {"passed": False, "problem": "server not ready"}
        result = run_load(server.base, ws.bodies, ws.auth(), clients=clients, seconds=seconds)
    summary = result.summary()
    audit = audit_check(server.audit_db, result)
    passed = summary["errors"] == 0 and audit["exactly_once"] and summary["requests"] > 0
    return {
        "passed": passed,
        "clients": clients,
        **summary,
        "audit": audit,
        "verify": _verify(server.audit_db),
    }


def overload(
    ws: Workspace, out: Path, limit: int = 4, clients: int = 48, seconds: float = 15.0
) -> dict[str, Any]:
    """More clients than the concurrency limit: rejections are fast 503s, admitted ones bounded."""
    server = _server(ws, out, "overload", RISKGRADE_MAX_CONCURRENCY=str(limit))
    with server:
        if not server.wait_ready():
            return {"passed": False, "problem": "server not ready"}
        result = run_load(
            server.base, ws.bodies, ws.auth(), clients=clients, seconds=seconds, timeout=10
        )
    rejected = [o for o in result.outcomes if o.status in (429, 503)]
    admitted = result.ok()
    others = [o for o in result.outcomes if o not in rejected and o not in admitted]
    rejected_ms = percentiles([o.latency for o in rejected])
    admitted_ms = percentiles([o.latency for o in admitted])
    audit = audit_check(server.audit_db, result)
    passed = (
        not others
        and bool(rejected)
        and bool(admitted)
        and all(o.code == "overloaded" for o in rejected)
        and (rejected_ms["p99"] or 0) < 1000
        and (admitted_ms["max"] or 0) < 10_000
        and audit["exactly_once"]
    )
    return {
        "passed": passed,
        "limit": limit,
        "clients": clients,
        "requests": len(result.outcomes),
        "admitted": len(admitted),
        "rejected": len(rejected),
        "hung_or_other": len(others),
        "rejected_latency_ms": rejected_ms,
        "admitted_latency_ms": admitted_ms,
        "audit": audit,
    }


def kill9(ws: Workspace, out: Path, clients: int = 16) -> dict[str, Any]:
    """SIGKILL server + workers during load, restart on the same audit db, check everything."""
    server = _server(ws, out, "kill9", RISKGRADE_MAX_CONCURRENCY="64")
    server.start()
    if not server.wait_ready():
        server.stop()
        return {"passed": False, "problem": "server not ready"}
    thread, stop, box = _background_load(server, ws, clients, 60)
    time.sleep(6)
    server.kill9()
    killed_at = time.monotonic()
    time.sleep(1)
    stop.set()
    thread.join(60)
    result = box["result"]
    integrity_after_crash = sqlite_integrity(server.audit_db)
    restarted = _server(ws, out, "kill9", RISKGRADE_MAX_CONCURRENCY="64")
    restarted.log_path = out / "kill9.restart.log"
    with restarted:
        ready = restarted.wait_ready()
        over_http: dict[str, Any] = {}
        if ready:
            response = httpx.get(
                f"{restarted.base}/audit/verify", headers=ws.auth("auditor"), timeout=120
            )
            over_http = response.json()
            after = run_load(restarted.base, ws.bodies, ws.auth(), clients=4, seconds=3)
    audit = audit_check(server.audit_db, result)
    answered_after_kill = [o for o in result.ok() if o.end > killed_at]
    checks = {
        "restarted_ready": ready,
        "verify_ok": _verify(server.audit_db)["ok"],
        "verify_over_http_ok": bool(over_http.get("ok")),
        "acknowledged_all_present": audit["missing_in_audit"] == 0,
        "integrity_ok": integrity_after_crash == "ok" and sqlite_integrity(server.audit_db) == "ok",
        "scores_after_restart": ready and after.summary()["errors"] == 0,
    }
    return {
        "passed": all(checks.values()) and not answered_after_kill,
        **checks,
        "acknowledged_before_kill": audit["acknowledged"],
        "audit": audit,
        "verify": _verify(server.audit_db),
        "integrity_check": integrity_after_crash,
    }


def _port_free(port: int) -> bool:
    try:
        check_port_free("127.0.0.1", port)
    except PortUnavailableError:
        return False
    return True


def supervisor_kill9(
    ws: Workspace, out: Path, clients: int = 8, wait_s: float = 30.0
) -> dict[str, Any]:
    """SIGKILL of BentoML's supervisor alone during load (``kill -9`` of ``riskgrade serve``).

    Its workers stop, the port is free, a restart on the same port serves, and every
    acknowledged decision is in the audit log.
    """
    server = _server(ws, out, "supervisor_kill9", RISKGRADE_MAX_CONCURRENCY="64")
    server.start()
    if not server.wait_ready() or server.process is None:
        server.stop()
        return {"passed": False, "problem": "server not ready"}
    workers = descendants(server.process.pid)
    thread, stop, box = _background_load(server, ws, clients, 60)
    time.sleep(4)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    killed_at = time.monotonic()
    alive = list(workers)
    while alive and time.monotonic() - killed_at < wait_s:
        time.sleep(0.1)
        alive = [pid for pid in alive if process_alive(pid)]
    workers_gone_s = round(time.monotonic() - killed_at, 2)
    stop.set()
    thread.join(60)
    for pid in alive:  # orphans: the check fails; clean up so the run can go on
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    port_free = _port_free(server.port)
    result = box["result"]
    restarted = Server(
        ws,
        server.audit_db,
        out / "supervisor_kill9.restart.log",
        env_extra={"RISKGRADE_MAX_CONCURRENCY": "64"},
        port=server.port,
    )
    with restarted:
        ready = restarted.wait_ready()
        after = run_load(restarted.base, ws.bodies, ws.auth(), clients=2, seconds=3)
    audit = audit_check(server.audit_db, result)
    after_audit = audit_check(server.audit_db, after)
    checks = {
        "workers_found": bool(workers),
        "no_orphan": not alive,
        "port_free_after": port_free,
        "restarted_on_same_port": ready,
        "scores_after_restart": ready and after.summary()["errors"] == 0,
        "acknowledged_all_present": audit["missing_in_audit"] == 0
        and after_audit["missing_in_audit"] == 0,
        "verify_ok": _verify(server.audit_db)["ok"],
    }
    return {
        "passed": all(checks.values()),
        **checks,
        "workers": len(workers),
        "workers_gone_seconds": workers_gone_s,
        "acknowledged_before_restart": audit["acknowledged"],
        "statuses": result.summary()["statuses"],
        "audit": audit,
        "verify": _verify(server.audit_db),
    }


def sigterm(ws: Workspace, out: Path, clients: int = 16) -> dict[str, Any]:
    """SIGTERM during load: requests in flight finish with 200 and are audited."""
    server = _server(ws, out, "sigterm", RISKGRADE_MAX_CONCURRENCY="64")
    server.start()
    if not server.wait_ready():
        server.stop()
        return {"passed": False, "problem": "server not ready"}
    thread, stop, box = _background_load(server, ws, clients, 60)
    time.sleep(5)

    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    try:
        exit_code = server.process.wait(timeout=60) if server.process else None
    except subprocess.TimeoutExpired:
        exit_code = None
    shutdown_s = time.monotonic() - sent
    stop.set()
    thread.join(60)
    server.stop()
    result = box["result"]
    in_flight = [o for o in result.outcomes if o.start < sent < o.end]
    in_flight_ok = [o for o in in_flight if o.status == 200]
    audit = audit_check(server.audit_db, result)
    passed = (
        bool(in_flight)
        and len(in_flight_ok) == len(in_flight)
        and audit["exactly_once"]
        and _verify(server.audit_db)["ok"]
        and exit_code is not None
    )
    return {
        "passed": passed,
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_finished_200": len(in_flight_ok),
        "shutdown_seconds": round(shutdown_s, 2),
        "exit_code": exit_code,
        "audit": audit,
        "verify": _verify(server.audit_db),
    }


def _chattr(flag: str, paths: list[Path]) -> bool:
    existing = [str(p) for p in paths if p.exists()]
    done = subprocess.run(["chattr", flag, *existing], capture_output=True, check=False)
    return done.returncode == 0


def unwritable(ws: Workspace, out: Path, clients: int = 8) -> dict[str, Any]:
    """Audit db and WAL made immutable mid-run: 503 audit_unavailable, no unlogged decision.

    The harness runs as root, for which permission bits do not stop writes; ``chattr +i`` does
    (the ``-shm`` file stays writable: it is memory-mapped and an immutable one would SIGBUS).
    """
    server = _server(ws, out, "unwritable", RISKGRADE_MAX_CONCURRENCY="64")
    files = [server.audit_db, server.audit_db.with_name(server.audit_db.name + "-wal")]
    with server:
        if not server.wait_ready():
            return {"passed": False, "problem": "server not ready"}
        thread, _, box = _background_load(server, ws, clients, 12)
        time.sleep(3)
        locked = _chattr("+i", files)
        locked_at = time.monotonic()
        time.sleep(4)
        ready_while_locked = httpx.get(f"{server.base}/readyz", timeout=5).status_code
        unlocked = _chattr("-i", files)
        unlocked_at = time.monotonic()
        thread.join(60)
        recovered = run_load(server.base, ws.bodies, ws.auth(), clients=2, seconds=2)
    result = box["result"]
    during = [o for o in result.outcomes if locked_at + 0.2 < o.start and o.end < unlocked_at]
    during_503 = [o for o in during if o.status == 503 and o.code == "audit_unavailable"]
    audit = audit_check(server.audit_db, result)
    rec = audit_check(server.audit_db, recovered)
    checks = {
        "chattr_worked": locked and unlocked,
        "all_503_while_unwritable": bool(during) and len(during_503) == len(during),
        "not_ready_while_unwritable": ready_while_locked == 503,
        "no_unlogged_decision": audit["missing_in_audit"] == 0 and rec["missing_in_audit"] == 0,
        "recovered_after": recovered.summary()["errors"] == 0 and rec["acknowledged"] > 0,
        "verify_ok": _verify(server.audit_db)["ok"],
    }
    return {
        "passed": all(checks.values()),
        **checks,
        "requests_while_unwritable": len(during),
        "statuses": result.summary()["statuses"],
        "audit": audit,
    }


def tampered(ws: Workspace, out: Path, wait_s: float = 20.0) -> dict[str, Any]:
    """One byte changed in a bundle file: the service never reports ready, scoring gets 503."""
    bundle = out / "tampered_bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(ws.bundle, bundle)
    victim = next(
        p for p in sorted(bundle.iterdir()) if p.suffix == ".json" and "manifest" not in p.name
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    server = _server(ws, out, "tampered", RISKGRADE_BUNDLE=str(bundle))
    statuses: set[int] = set()
    with server:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                statuses.add(httpx.get(f"{server.base}/readyz", timeout=2).status_code)
            time.sleep(0.5)
        score = httpx.post(f"{server.base}/score", json=ws.bodies[0], headers=ws.auth(), timeout=10)
        body = score.json()
    return {
        "passed": 200 not in statuses and score.status_code == 503,
        "tampered_file": victim.name,
        "readyz_statuses_seen": sorted(statuses),
        "score_status": score.status_code,
        "score_message": body.get("error", {}).get("message", "")[:200],
    }


def reproducibility(ws: Workspace, out: Path, n: int = 8) -> dict[str, Any]:
    """Decisions replayed after a restart: same PD to 1e-12, grade, tier and reasons."""
    first = _server(ws, out, "replay")
    decisions = []
    with first:
        if not first.wait_ready():
            return {"passed": False, "problem": "server not ready"}
        for body in ws.bodies[:n]:
            response = httpx.post(f"{first.base}/explain", json=body, headers=ws.auth(), timeout=30)
            decisions.append(response.json())
    second = _server(ws, out, "replay")
    second.log_path = out / "replay.restart.log"
    rows = []
    with second:
        if not second.wait_ready():
            return {"passed": False, "problem": "restarted server not ready"}
        for decision in decisions:
            decision_id = decision["decision_id"]
            replay = httpx.post(
                f"{second.base}/audit/{decision_id}/replay", headers=ws.auth("auditor"), timeout=30
            ).json()
            stored = httpx.get(
                f"{second.base}/audit/{decision_id}", headers=ws.auth("auditor"), timeout=30
            ).json()
            request = {k: v for k, v in stored["request"].items() if k != "chart"}
            again = httpx.post(
                f"{second.base}/score", json=request, headers=ws.auth(), timeout=30
            ).json()
            rows.append(
                {
                    "equal": bool(replay.get("equal")),
                    "abs_diff": replay.get("abs_diff"),
                    "pd_rescored_diff": abs(again["pd"] - decision["pd"]),
                    "grade_equal": again["grade"] == decision["grade"],
                    "tier_equal": again["tier"] == decision["tier"],
                    "reasons_equal": again["reasons"] == decision["reasons"],
                }
            )
    max_diff = max(max(r["abs_diff"] or 0.0, r["pd_rescored_diff"]) for r in rows)
    passed = all(
        r["equal"] and r["grade_equal"] and r["tier_equal"] and r["reasons_equal"] for r in rows
    )
    return {
        "passed": passed and max_diff <= 1e-12,
        "decisions": len(rows),
        "max_abs_pd_diff": max_diff,
        "all_replays_equal": all(r["equal"] for r in rows),
        "reasons_equal": all(r["reasons_equal"] for r in rows),
    }
