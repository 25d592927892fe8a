"""Run the whole reliability suite and write ``benchmarks/results/reliability.json``.

Usage: ``python -m reliability [--quick] [--out DIR]`` (``make reliability``). ``--quick`` shortens
the load (10 s) and fuzzing (100 fuzzing examples per operation, plus the coverage phase)
for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability.server import ROOT, Server, Workspace, dump

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"


def _timed(name: str, func: Callable[[], dict[str, Any]], sections: dict[str, Any]) -> None:
    started = time.monotonic()
    print(f"[reliability] {name} ...", flush=True)
    try:
        result = func()
    except Exception as error:  # a harness failure is a failed section, reported as such
        result = {"passed": False, "problem": f"{type(error).__name__}: {error}"}
    result["seconds_total"] = round(time.monotonic() - started, 1)
    sections[name] = result
    print(
        f"[reliability] {name}: {'PASS' if result.get('passed') else 'FAIL'} "
        f"({result['seconds_total']} s)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run every section; 0 when all pass (pip-audit without a reachable DB is reported only)."""
    parser = argparse.ArgumentParser(prog="python -m reliability")
    parser.add_argument("--quick", action="store_true", help="short load and fuzzing")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--only", default="", help="comma-separated sections to run")
    args = parser.parse_args(argv)

    from reliability import fuzz, hostile, hostile_cli, scenarios, security

    work = args.out or Path(tempfile.mkdtemp(prefix="riskgrade-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    load_s = 10.0 if args.quick else 60.0
    examples = 100 if args.quick else 700
    started = time.monotonic()
    ws = Workspace.create(work / "workspace")
    sections: dict[str, Any] = {}
    wanted = set(filter(None, args.only.split(",")))

    def run(name: str, func: Callable[[], dict[str, Any]]) -> None:
        if not wanted or name in wanted:
            _timed(name, func, sections)

    run("hostile_data", lambda: hostile.run_catalogue(work / "hostile"))
    run("hostile_cli", lambda: hostile_cli.run_catalogue(work / "hostile_cli"))

    def fuzz_and_security() -> dict[str, Any]:
        server = Server(ws, work / "fuzz.db", work / "fuzz.log")
        with server:
            if not server.wait_ready():
                return {"passed": False, "problem": "server not ready"}
            result = fuzz.run_fuzz(ws, server, work / "fuzz", max_examples=examples)
            result["server_alive_after"] = (
                server.process is not None and server.process.poll() is None
            )
            result["passed"] = result["passed"] and result["server_alive_after"]
            sections["hostile_requests"] = hostile.run_request_catalogue(
                server.base, ws.auth, ws.bodies[0]
            )
            sections["security_pickle"] = security.pickle_refused(server, ws, work)
            sections["security_tokens_required"] = security.tokens_required(server, ws)
        return result

    run("fuzz", fuzz_and_security)
    run("load", lambda: scenarios.load(ws, work, clients=32, seconds=load_s))
    run("overload", lambda: scenarios.overload(ws, work))
    run("kill9", lambda: scenarios.kill9(ws, work))
    run("supervisor_kill9", lambda: scenarios.supervisor_kill9(ws, work))
    run("sigterm", lambda: scenarios.sigterm(ws, work))
    run("unwritable_audit", lambda: scenarios.unwritable(ws, work))
    run("tampered_bundle", lambda: scenarios.tampered(ws, work))
    run("reproducibility", lambda: scenarios.reproducibility(ws, work))
    run(
        "security_tokens_never_logged",
        lambda: security.tokens_never_logged(
            ws, sorted(work.glob("*.log")) + sorted(work.glob("*.db")) + [work / "fuzz.db"]
        ),
    )
    run("pip_audit", lambda: security.pip_audit(work))

    gating = {k: v for k, v in sections.items() if k != "pip_audit"}
    audit = sections.get("pip_audit", {})
    summary = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "sections_passed": sum(bool(v.get("passed")) for v in gating.values()),
        "sections": len(gating),
        "all_passed": all(v.get("passed") for v in gating.values()),
        "pip_audit_db_reachable": audit.get("db_reachable"),
        "results": sections,
    }
    if not args.quick:
        dump(args.results, summary)
    else:
        dump(work / "reliability.json", summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=2))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return (
        0
        if summary["all_passed"]
        and (not audit or audit.get("passed") or not audit.get("db_reachable"))
        else 1
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
