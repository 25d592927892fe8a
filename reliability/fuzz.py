"""Schemathesis against the running service: all checks, per-role tokens, counted per endpoint.

One schemathesis run per role, each over the operations that role may call (scorer: score,
score_batch, explain, model; auditor: the audit routes and the review API; admin: reload and
the emergency measures it proposes; analyst: assessments, overrides, ratings, history, queue,
status, reviews, contacts, terms, records, warnings; approver: approving and rejecting
overrides and status changes; senior approver: approving and rejecting measures), so every
endpoint of the generated OpenAPI document (``serving.api.app``) is fuzzed past its
authentication. Schemathesis' own ``ignored_auth`` check sends the same cases without and with
a wrong token.

Random ids rarely name a rated customer or a pending proposal, so the people's routes would
mostly answer 404. Before their runs the service is seeded over HTTP (scored customers, a
pending override, status change and measure each) and each people's role gets a second,
positive-only run on a copy of the document whose customer and proposal ids are those seeded
ones: the proposals are then decided, the statuses changed and the records written by fuzzed
bodies.

The NDJSON reports are re-read here: cases per endpoint, status counts, every 5xx, every 4xx
body checked against the documented error schema (``serving.schemas.ErrorResponse``)
independently of schemathesis, and every role refusal (403 ``forbidden``) of a people's role,
which may call every operation of its run.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from rating.scale import MasterScale
from reliability.server import Server, Workspace, dump
from serving.api.app import write_openapi
from serving.auth import create_token
from serving.schemas import ErrorResponse


@dataclass(frozen=True)
class Run:
    """One role's schemathesis run."""

    role: str
    operations: str
    """Regex over the operations' names (``METHOD /path``)."""
    expected: tuple[str, ...]
    """Statuses a schema-valid request may get."""
    people: bool = False
    """A people's role: also run positive-only on the seeded ids; role refusals fail it."""


_ANALYST_OPS = (
    r"^(GET /(me|queue|status-changes|overrides|overrides/[^/]+|customers/.+)"
    r"|POST /(assessments|overrides|reviews|contacts|customers/[^/]+/(status|terms)))$"
)
RUNS: tuple[Run, ...] = (
    Run("scorer", r"^(POST /(score|score_batch|explain)|GET /model)$", ("2XX", "409", "422")),
    Run("auditor", r"^\w+ /(audit|review/api)/", ("2XX", "404", "409", "422")),
    Run("admin", r"^(POST /admin/reload|\w+ /measures)$", ("2XX", "409", "422")),
    Run("analyst", _ANALYST_OPS, ("2XX", "404", "409", "422"), people=True),
    Run(
        "approver",
        r"^POST /(overrides|status-changes)/[^/]+/(approve|reject)$",
        ("2XX", "403", "404", "409", "422"),
        people=True,
    ),
    Run(
        "senior_approver",
        r"^POST /measures/[^/]+/(approve|reject)$",
        ("2XX", "403", "404", "409", "422"),
        people=True,
    ),
)
"""The runs, by role.

422 is accepted for schema-valid bodies because cross-field rules (dates after ``as_of``,
exactly one of customer / feature_vector, repeated ids, answers of the questionnaire, grades
of the scale) are not expressible in JSON schema; 404/409 because a random id rarely exists,
a random bundle path is refused, a proposal is already decided, or a generated
``Idempotency-Key`` comes back with another body; 403 for deciders because of the four-eyes
rule (the seeded proposals' proposer) and the approver's notch limit.
"""
PEOPLE_ROLES = tuple(run.role for run in RUNS if run.people)


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
    """Cases per endpoint, statuses, 5xx, error-schema violations and role refusals (NDJSON)."""
    cases: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    server_errors: list[str] = []
    bad_errors: list[str] = []
    refusals: list[str] = []
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
                    error = ErrorResponse.model_validate_json(body).error
                except ValidationError:
                    bad_errors.append(f"{label} -> {code}: {body[:120]!r}")
                    continue
                if code == 403 and error.code == "forbidden":
                    refusals.append(f"{label}: {error.message}")
    return {
        "cases": dict(cases),
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "server_errors": server_errors,
        "error_schema_violations": bad_errors,
        "role_refusals": refusals,
        "failed_scenarios": failed_scenarios,
    }


def people_tokens(workspace: Workspace) -> None:
    """Add a token of each people's role to ``workspace`` (the service re-reads the file)."""
    for role in PEOPLE_ROLES:
        if role not in workspace.tokens:
            name = f"{role.replace('_', '-')}-user"
            workspace.tokens[role] = create_token(workspace.tokens_file, name, role)


def seed_people(workspace: Workspace, server: Server, customers: int = 4) -> dict[str, list[str]]:
    """Rated customers and pending proposals to aim the people's runs at, made over HTTP.

    Per customer: a score, an override proposed by the analyst, a watch then a (pending)
    suspension; and one emergency measure per customer proposed by the admin.

    Returns:
        The seeded ids by parameter name: ``customer_id``, ``override_id``, ``change_id``,
        ``measure_id``.

    Raises:
        RuntimeError: a seeding call failed (the service is broken before fuzzing starts).
    """
    seeded: dict[str, list[str]] = defaultdict(list)
    why = "seeded for fuzzing: payment delays"
    today = date.today()
    with httpx.Client(base_url=server.base, timeout=60) as client:

        def call(role: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(path, json=body, headers=workspace.auth(role))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"seeding POST {path}: {response.status_code} {response.text}")
            answer: dict[str, Any] = response.json()
            return answer

        model = client.get("/model", headers=workspace.auth("scorer")).json()
        grades = MasterScale.model_validate(model["scale"]).names[:-1]  # not the default grade
        for body in workspace.bodies[:customers]:
            scored = call("scorer", "/score", body)
            customer = scored["customer_id"]
            seeded["customer_id"].append(customer)
            at = grades.index(scored["grade"]) if scored["grade"] in grades else 0
            override = {
                "customer_id": customer,
                "as_of": scored["as_of"],
                "proposed_grade": grades[at + 1 if at + 1 < len(grades) else at - 1],
                "reason_code": "OR04",
                "comment": why,
            }
            seeded["override_id"].append(call("analyst", "/overrides", override)["override_id"])
            status = f"/customers/{customer}/status"
            call("analyst", status, {"status": "watch", "reason": why})
            change = call("analyst", status, {"status": "suspended", "reason": why})
            seeded["change_id"].append(change["change_id"])
            measure = {
                "title": f"Freeze {customer}",
                "scope": {"customer_ids": [customer]},
                "effect": {"min_tier": "high", "suspend_new_credit": True},
                "reason": why,
                "starts_on": today.isoformat(),
                "expires_on": (today + timedelta(days=30)).isoformat(),
            }
            seeded["measure_id"].append(call("admin", "/measures", measure)["measure_id"])
    return dict(seeded)


def aim(document: dict[str, Any], seeded: dict[str, list[str]]) -> dict[str, Any]:
    """A copy of ``document`` whose ids take only the seeded values.

    Path parameters named as in ``seeded`` and ``customer_id`` body properties become enums:
    for positive-only runs (other ids are not invalid, only unknown).
    """
    aimed = copy.deepcopy(document)
    for operations in aimed["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in seeded:
                    parameter["schema"] = {"type": "string", "enum": seeded[parameter["name"]]}
    for schema in aimed["components"]["schemas"].values():
        prop = schema.get("properties", {}).get("customer_id")
        if prop is not None and prop.get("type") == "string":
            schema["properties"]["customer_id"] = {"type": "string", "enum": seeded["customer_id"]}
    return aimed


def _schemathesis(
    spec: Path, run: Run, token: str, base: str, out: Path, tag: str, options: list[str]
) -> tuple[int, dict[str, Any] | None]:
    """One schemathesis run of ``run``'s operations; its exit code and report summary."""
    config = out / f"schemathesis.{tag}.toml"
    config.write_text(_config(run.expected))
    report = out / f"{tag}.ndjson"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color"),
        *("run", str(spec), "--url", base, "--header", f"Authorization: Bearer {token}"),
        *("--checks", "all", "--include-name-regex", run.operations, *options),
        *("--request-timeout", "30", "--warnings", "off"),
        *("--report", "ndjson", "--report-ndjson-path", str(report)),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    (out / f"{tag}.stdout.txt").write_text(result.stdout + result.stderr)
    return result.returncode, summarise_report(report) if report.exists() else None


def run_fuzz(
    workspace: Workspace,
    server: Server,
    out: Path,
    max_examples: int = 700,
    seed: int = 7,
    workers: int = 2,
    roles: tuple[str, ...] | None = None,
    people_examples: int = 150,
) -> dict[str, Any]:
    """Run schemathesis (all checks) per role against ``server``; return the summary.

    Args:
        workspace: tokens (those of the people's roles are added).
        server: a running, ready server.
        out: folder for the specs, configs, NDJSON reports and schemathesis' stdout.
        max_examples: fuzzing-phase examples per scoring operation (the coverage phase adds
            ~550 more there); the cheaper audit and admin operations get at least 1,000.
        seed: schemathesis seed (reproducible runs).
        workers: schemathesis workers (the server has one worker; generation is the bottleneck).
        roles: the roles to run (default: every role of `RUNS`).
        people_examples: fuzzing-phase examples per people's operation, in each of its two
            runs (at most ``max_examples``).
    """
    out.mkdir(parents=True, exist_ok=True)
    runs = [run for run in RUNS if roles is None or run.role in roles]
    spec = write_openapi(out / "openapi.json")
    merged: dict[str, Any] = {
        "roles": [run.role for run in runs],
        "cases": Counter(),
        "statuses": defaultdict(Counter),
        "server_errors": [],
        "error_schema_violations": [],
        "role_refusals": [],
        "failed_scenarios": [],
        "schemathesis_exit_codes": {},
    }
    started = time.monotonic()
    people = [run for run in runs if run.people]
    if people:
        people_tokens(workspace)
        seeded = seed_people(workspace, server)
        merged["seeded"] = {name: len(ids) for name, ids in seeded.items()}
        aimed = out / "openapi.aimed.json"
        dump(aimed, aim(json.loads(spec.read_text()), seeded))
    for run in runs:
        if run.role == "scorer":
            examples = max_examples
        else:
            examples = min(max_examples, people_examples) if run.people else max(max_examples, 1000)
        # One worker for the people's runs: hypothesis' lambda descriptions race on Python 3.11's
        # ast module in the coverage phase ("AST constructor recursion depth mismatch").
        threads = 1 if run.people else workers
        common = ["--max-examples", str(examples), "--seed", str(seed), "--workers", str(threads)]
        passes = [(spec, run.role, ["--phases", "examples,coverage,fuzzing", *common])]
        if run.people:
            aimed_options = ["--phases", "fuzzing", "--mode", "positive", *common]
            passes.append((aimed, f"{run.role}.aimed", aimed_options))
        for document_path, tag, options in passes:
            token = workspace.tokens[run.role]
            code, part = _schemathesis(document_path, run, token, server.base, out, tag, options)
            merged["schemathesis_exit_codes"][tag] = code
            if part is None:
                continue
            merged["cases"].update(part["cases"])
            for label, counts in part["statuses"].items():
                merged["statuses"][label].update(counts)
            for key in ("server_errors", "error_schema_violations", "failed_scenarios"):
                merged[key] += part[key]
            if run.people:
                merged["role_refusals"] += part["role_refusals"]
    merged["cases"] = dict(sorted(merged["cases"].items()))
    merged["statuses"] = {k: dict(sorted(v.items())) for k, v in sorted(merged["statuses"].items())}
    merged["seconds"] = round(time.monotonic() - started, 1)
    merged["max_examples"] = max_examples
    merged["people_examples"] = min(max_examples, people_examples)
    body_ops = [n for label, n in merged["cases"].items() if label.startswith("POST")]
    merged["min_cases_per_body_endpoint"] = min(body_ops) if body_ops else 0
    merged["passed"] = (
        not merged["server_errors"]
        and not merged["error_schema_violations"]
        and not merged["role_refusals"]
        and not merged["failed_scenarios"]
        and all(code == 0 for code in merged["schemathesis_exit_codes"].values())
    )
    return merged


def main(argv: list[str] | None = None) -> int:
    """Fuzz the people's roles alone and record them as ``people`` in the ``fuzz`` section.

    Usage: ``python -m reliability.fuzz [--examples N] [--out DIR] [--no-record]``. The full
    suite (``make reliability``) fuzzes every role in its ``fuzz`` section, which replaces this.
    """
    import argparse
    import tempfile
    from datetime import UTC, datetime

    from reliability.run import RESULTS

    parser = argparse.ArgumentParser(prog="python -m reliability.fuzz")
    parser.add_argument("--examples", type=int, default=150, help="per people's operation")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: temp)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="riskgrade-fuzz-"))
    workspace = Workspace.create(work / "workspace")
    with Server(workspace, work / "fuzz.db", work / "fuzz.log") as server:
        if not server.wait_ready(timeout=600):
            print(f"server not ready; see {work / 'fuzz.log'}", file=sys.stderr)
            return 1
        result = run_fuzz(
            workspace,
            server,
            work / "fuzz",
            args.examples,
            roles=PEOPLE_ROLES,
            people_examples=args.examples,
        )
        result["server_alive_after"] = server.process is not None and server.process.poll() is None
    result["passed"] = result["passed"] and result["server_alive_after"]
    result["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, indent=2))
    if not args.no_record:
        record_people(args.results, result)
    return 0 if result["passed"] else 1


def record_people(path: Path, result: dict[str, Any]) -> None:
    """Put ``result`` as ``people`` in the ``fuzz`` section of a reliability summary."""
    summary = json.loads(path.read_text())
    sections = summary["results"]
    fuzz = sections.setdefault("fuzz", {"passed": True})
    fuzz["people"] = result
    fuzz["passed"] = bool(fuzz.get("passed")) and result["passed"]
    gating = [v for k, v in sections.items() if k != "pip_audit"]
    summary["sections_passed"] = sum(bool(v.get("passed")) for v in gating)
    summary["all_passed"] = all(v.get("passed") for v in gating)
    dump(path, summary)


if __name__ == "__main__":
    sys.exit(main())
