"""Schemathesis against the running service: all checks, per-role tokens, counted per endpoint.

One schemathesis run per role, each over the operations that role may call (scorer: score,
score_batch, explain, model; auditor: the audit routes and the review API; admin: reload), so
every endpoint of the generated OpenAPI document (``serving.api.app``) is
fuzzed past its authentication. Schemathesis' own ``ignored_auth`` check sends the same cases
without and with a wrong token. The NDJSON report is re-read here: cases per endpoint, status
counts, every 5xx, and every 4xx body checked against the documented error schema
(``serving.schemas.ErrorResponse``) independently of schemathesis.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reliability.server import Server, Workspace
from serving.api.app import write_openapi
from serving.schemas import ErrorResponse

RUNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("scorer", "^/(score|score_batch|explain|model)$", ("2XX", "409", "422")),
    ("auditor", "^/(audit|review/api)/", ("2XX", "404", "409", "422")),
    ("admin", "^/admin/reload$", ("2XX", "409", "422")),
)
"""(role, path regex, statuses a schema-valid request may get).

422 is accepted for schema-valid bodies because cross-field rules (dates after ``as_of``,
exactly one of customer / feature_vector, repeated ids) are not expressible in JSON schema;
404/409 because a random record id rarely exists / a random bundle path is refused; 409 also
when a generated ``Idempotency-Key`` comes back with another body.
"""


def _config(expected: tuple[str, ...]) -> str:
    statuses = ", ".join(f'"{s}"' for s in expected)
    return f"[checks.positive_data_acceptance]\nexpected-statuses = [{statuses}]\n"


def _decode(content: dict[str, Any] | None) -> bytes:
    if not content:
        return b""
    if "$base64" in content:
        return base64.b64decode(content["$base64"])
    return str(content.get("string", "")).encode()


def summarise_report(path: Path) -> dict[str, Any]:
    """Cases per endpoint, statuses, 5xx and error-schema violations from an NDJSON report."""
    cases: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    server_errors: list[str] = []
    bad_errors: list[str] = []
    failed_scenarios: list[str] = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder", {})
        label = recorder.get("label", "?")
        if finished.get("status") in ("failure", "error"):
            failed_scenarios.append(f"{finished.get('phase')} {label}")
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response")
            if response is None:
                continue
            cases[label] += 1
            code = int(response["status_code"])
            statuses[label][str(code)] += 1
            if code >= 500:
                server_errors.append(f"{label} -> {code}")
            elif code >= 400:
                body = _decode(response.get("content"))
                try:
                    ErrorResponse.model_validate_json(body)
                except ValidationError:
                    bad_errors.append(f"{label} -> {code}: {body[:120]!r}")
    return {
        "cases": dict(cases),
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "server_errors": server_errors,
        "error_schema_violations": bad_errors,
        "failed_scenarios": failed_scenarios,
    }


def run_fuzz(
    workspace: Workspace,
    server: Server,
    out: Path,
    max_examples: int = 700,
    seed: int = 7,
    workers: int = 2,
) -> dict[str, Any]:
    """Run schemathesis (all checks) per role against ``server``; return the summary.

    Args:
        workspace: tokens.
        server: a running, ready server.
        out: folder for the spec, configs, NDJSON reports and schemathesis' stdout.
        max_examples: fuzzing-phase examples per scoring operation (the coverage phase adds
            ~550 more there); the cheaper audit and admin operations get at least 1,000.
        seed: schemathesis seed (reproducible runs).
        workers: schemathesis workers (the server has one worker; generation is the bottleneck).
    """
    out.mkdir(parents=True, exist_ok=True)
    spec = write_openapi(out / "openapi.json")
    merged: dict[str, Any] = {
        "cases": {},
        "statuses": {},
        "server_errors": [],
        "error_schema_violations": [],
        "failed_scenarios": [],
        "schemathesis_exit_codes": {},
    }
    started = time.monotonic()
    for role, regex, expected in RUNS:
        config = out / f"schemathesis.{role}.toml"
        config.write_text(_config(expected))
        report = out / f"{role}.ndjson"
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "--no-color",
            "run",
            str(spec),
            "--url",
            server.base,
            "--header",
            f"Authorization: Bearer {workspace.tokens[role]}",
            "--checks",
            "all",
            "--max-examples",
            str(max_examples if role == "scorer" else max(max_examples, 1000)),
            "--include-path-regex",
            regex,
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            str(seed),
            "--workers",
            str(workers),
            "--request-timeout",
            "30",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
            "--warnings",
            "off",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        (out / f"{role}.stdout.txt").write_text(result.stdout + result.stderr)
        merged["schemathesis_exit_codes"][role] = result.returncode
        if report.exists():
            part = summarise_report(report)
            for key in ("cases", "statuses"):
                merged[key].update(part[key])
            for key in ("server_errors", "error_schema_violations", "failed_scenarios"):
                merged[key] += part[key]
    merged["seconds"] = round(time.monotonic() - started, 1)
    merged["max_examples"] = max_examples
    body_ops = [n for label, n in merged["cases"].items() if label.startswith("POST")]
    merged["min_cases_per_body_endpoint"] = min(body_ops) if body_ops else 0
    merged["passed"] = (
        not merged["server_errors"]
        and not merged["error_schema_violations"]
        and not merged["failed_scenarios"]
        and all(code == 0 for code in merged["schemathesis_exit_codes"].values())
    )
    return merged
