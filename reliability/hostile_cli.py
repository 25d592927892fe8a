"""Hostile command lines: states and arguments a user reaches, each refused in one line.

Every case runs the installed ``riskgrade`` console script as a subprocess in a project folder
of its own (an empty MLflow store, default params), as a user's shell would. Each must exit 2
with exactly one ``error:`` line naming the problem and no traceback, and write nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAY = "2024-12-31"
_MLFLOW_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow\.")


@dataclass(frozen=True)
class CliCase:
    """One hostile command line and the words its error line must contain."""

    name: str
    description: str
    args: Callable[[Path], list[str]]
    expected: str


def _rate(command: str) -> Callable[[Path], list[str]]:
    def args(work: Path) -> list[str]:
        out = ["--out", str(work / "out" / "scores.parquet")] if command == "score" else []
        store = ["--store", str(work / "out" / "monitoring.duckdb")] if command == "monitor" else []
        return [command, "--raw", str(work / "raw"), "--as-of", DAY, *out, *store]

    return args


def _with_bundle(command: str) -> Callable[[Path], list[str]]:
    def args(work: Path) -> list[str]:
        base = ["serve", "--port", "1"] if command == "serve" else _rate(command)(work)
        return [*base, "--bundle", str(work / "own_bundle")]

    return args


CLI_CASES: tuple[CliCase, ...] = (
    CliCase(
        "monitor_no_champion",
        "riskgrade monitor before any model is promoted",
        _rate("monitor"),
        "no 'champion' alias",
    ),
    CliCase(
        "score_no_champion",
        "riskgrade score before any model is promoted",
        _rate("score"),
        "no 'champion' alias",
    ),
    CliCase(
        "score_incompatible_bundle",
        "riskgrade score with a bundle trained on an own table (a feature the code lacks)",
        _with_bundle("score"),
        "noise (not computed)",
    ),
    CliCase(
        "monitor_incompatible_bundle",
        "riskgrade monitor with a bundle trained on an own table",
        _with_bundle("monitor"),
        "noise (not computed)",
    ),
    CliCase(
        "serve_incompatible_bundle",
        "riskgrade serve with a bundle trained on an own table (refused before BentoML)",
        _with_bundle("serve"),
        "noise (not computed)",
    ),
    CliCase(
        "features_at_year_9999",
        "riskgrade features at --as-of 9999-12-31 (the 12-month windows would overflow)",
        lambda work: [
            "features",
            "at",
            "--raw",
            str(work / "raw"),
            "--as-of",
            "9999-12-31",
            "--out",
            str(work / "out" / "features.csv"),
        ],
        "outside 1900-01-01..2200-12-31",
    ),
    CliCase(
        "audit_export_year_9999",
        "riskgrade audit export --logged-to 9999-12-31 (the end of the range would overflow)",
        lambda work: [
            "audit",
            "export",
            "--logged-from",
            DAY,
            "--logged-to",
            "9999-12-31",
            "--db",
            str(work / "audit.db"),
        ],
        "outside 1900-01-01..2200-12-31",
    ),
)


def prepare(work: Path) -> Path:
    """A project folder: a small valid raw folder, an own-table bundle, an empty audit db."""
    from audit import AuditConfig, open_audit_store
    from features.io import write_raw
    from reliability.hostile import base_tables
    from tests.cli_helpers import write_incompatible_bundle

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "raw").is_dir():
        write_raw(base_tables(), work / "raw")
    write_incompatible_bundle(work / "own_bundle")
    open_audit_store(AuditConfig(path=work / "audit.db"))
    return work


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script in ``cwd`` with an MLflow store of its own (no model registered)."""
    script = Path(sys.executable).with_name("riskgrade")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    for name in ("RISKGRADE_DEBUG", "RISKGRADE_AUDIT_URL"):
        env.pop(name, None)
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=300, check=False,
        cwd=cwd, env=env,
    )  # fmt: skip


def check_cli_case(case: CliCase, work: Path) -> dict[str, Any]:
    """Run one case; its checks and the error line."""
    started = time.perf_counter()
    result = run_cli(case.args(work), work)
    lines = [
        line for line in result.stderr.splitlines() if line.strip() and not _MLFLOW_LOG.match(line)
    ]
    written = sorted(p.name for p in (work / "out").iterdir()) if (work / "out").is_dir() else []
    checks = {
        "exit_2": result.returncode == 2,
        "one_error_line": len(lines) == 1 and lines[0].startswith("error: "),
        "names_the_problem": any(case.expected in line for line in lines),
        "no_traceback": "Traceback" not in result.stdout + result.stderr,
        "nothing_written": not written,
    }
    return {
        "case": case.name,
        "description": case.description,
        "passed": all(checks.values()),
        **checks,
        "exit_code": result.returncode,
        "message": lines[0] if lines else result.stderr[-300:],
        "seconds": round(time.perf_counter() - started, 2),
    }


def run_catalogue(work: Path) -> dict[str, Any]:
    """Every hostile command line against one prepared project folder."""
    prepare(work)
    results = [check_cli_case(case, work) for case in CLI_CASES]
    return {
        "passed": all(r["passed"] for r in results),
        "cases": len(results),
        "refused_in_one_line": sum(r["passed"] for r in results),
        "results": results,
    }
