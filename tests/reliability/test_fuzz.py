"""The fuzzing harness: its runs cover every operation, its report reading, aiming and recording."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reliability.fuzz import RUNS, aim, record_people, summarise_report
from serving.api.app import build_openapi


def _names(document: dict) -> set[str]:
    return {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}


def test_given_the_runs_then_every_operation_is_fuzzed_by_a_role_that_may_call_it():
    # Given the document's operations (BentoML's probes aside)
    names = _names(build_openapi()) - {"GET /livez", "GET /readyz"}
    # Then each is matched by at least one run, and the people's roles each have a run
    unmatched = {n for n in names if not any(re.search(r.operations, n) for r in RUNS)}
    assert unmatched == set()
    assert {r.role for r in RUNS if r.people} == {"analyst", "approver", "senior_approver"}
    analyst = next(r for r in RUNS if r.role == "analyst")
    assert not re.search(analyst.operations, "POST /overrides/abc/approve")
    assert re.search(analyst.operations, "GET /customers/{customer_id}/rating")


def _finished(label: str, status: int, body: dict | str) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    response = {"status_code": status, "content": {"string": text}}
    recorder = {"label": label, "interactions": {"1": {"response": response}}}
    return json.dumps({"ScenarioFinished": {"status": "success", "recorder": recorder}})


def test_given_a_report_then_5xx_bad_error_bodies_and_role_refusals_are_listed(tmp_path: Path):
    # Given a report with a success, a four-eyes refusal, a role refusal, a 500 and a bare 404
    error = {"error": {"code": "four_eyes", "message": "not your own", "fields": []}}
    refused = {"error": {"code": "forbidden", "message": "role 'analyst' may not", "fields": []}}
    report = tmp_path / "r.ndjson"
    lines = [
        _finished("POST /overrides", 201, {"override_id": "x"}),
        _finished("POST /overrides/{override_id}/approve", 403, error),
        _finished("POST /overrides/{override_id}/approve", 403, refused),
        _finished("GET /queue", 500, "Internal Server Error"),
        _finished("GET /queue", 404, "Not Found"),
    ]
    report.write_text("\n".join(lines) + "\n")
    # When it is summarised
    summary = summarise_report(report)
    # Then only the role refusal counts as one, the 500 and the non-schema 404 are listed
    assert summary["cases"] == {
        "POST /overrides": 1,
        "POST /overrides/{override_id}/approve": 2,
        "GET /queue": 2,
    }
    assert summary["role_refusals"] == [
        "POST /overrides/{override_id}/approve: role 'analyst' may not"
    ]
    assert summary["server_errors"] == ["GET /queue -> 500"]
    assert summary["error_schema_violations"] == ["GET /queue -> 404: b'Not Found'"]


def test_given_seeded_ids_when_aimed_then_only_ids_and_customer_ids_are_narrowed():
    # Given the document and seeded ids
    document = build_openapi()
    seeded = {
        "customer_id": ["C1", "C2"],
        "override_id": ["o1"],
        "change_id": ["c1"],
        "measure_id": ["m1"],
    }
    # When aimed
    aimed = aim(document, seeded)
    # Then the id path parameters and customer_id properties take the seeded values only
    rating = aimed["paths"]["/customers/{customer_id}/rating"]["get"]["parameters"]
    assert next(p for p in rating if p["name"] == "customer_id")["schema"]["enum"] == ["C1", "C2"]
    approve = aimed["paths"]["/measures/{measure_id}/approve"]["post"]["parameters"]
    assert next(p for p in approve if p["name"] == "measure_id")["schema"]["enum"] == ["m1"]
    schemas = aimed["components"]["schemas"]
    for model in ("AssessmentRequest", "OverrideRequest", "ReviewInput", "ContactInput"):
        assert schemas[model]["properties"]["customer_id"]["enum"] == ["C1", "C2"], model
    # And the rest is as generated (the original untouched)
    assert aimed["paths"]["/audit/{record_id}"] == document["paths"]["/audit/{record_id}"]
    assert (
        "enum"
        not in document["components"]["schemas"]["OverrideRequest"]["properties"]["customer_id"]
    )


def test_given_a_summary_when_people_recorded_then_fuzz_holds_them_and_totals_follow(
    tmp_path: Path,
):
    # Given a reliability summary whose sections all passed
    path = tmp_path / "reliability.json"
    results = {
        "fuzz": {"passed": True, "cases": {}},
        "load": {"passed": True},
        "pip_audit": {"passed": False},
    }
    path.write_text(json.dumps({"results": results, "sections_passed": 2, "all_passed": True}))
    # When a failing people's run is recorded
    record_people(path, {"passed": False, "server_errors": ["GET /queue -> 500"]})
    # Then it sits in the fuzz section, which fails, and the totals say so
    summary = json.loads(path.read_text())
    assert summary["results"]["fuzz"]["people"]["server_errors"] == ["GET /queue -> 500"]
    assert summary["results"]["fuzz"]["passed"] is False
    assert (summary["sections_passed"], summary["all_passed"]) == (1, False)
    assert summary["results"]["load"] == {"passed": True}
