"""The OpenAPI contract of every route: a typed 2xx body, and real answers that conform to it.

The people's routes (judgement and customer management) are driven through a whole story
(assessment, overrides, status changes, reviews, contacts, terms, warnings, measures) and each
answer is checked by schemathesis' own response checks against the generated document.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from audit import AuditConfig, SqlAuditStore
from management import Actor
from management.warnings import WarningItem, record_warnings
from serving.api import lifecycle_routes, management_routes
from serving.api.app import build_openapi
from serving.auth import create_token
from serving.batch import request_example
from tests.serving.conftest import auth
from tests.serving.test_judgement_api import GOOD

CHECKS = [response_schema_conformance, content_type_conformance, status_code_conformance]
NOT_JSON = {("get", "/livez"), ("get", "/readyz"), ("get", "/review/api/report/{bundle_hash}")}
"""BentoML's probes (no body) and the validation report (``text/html``)."""
WHY = "covenant breach confirmed at the site visit"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi()


def _success(operation: dict[str, Any]) -> dict[str, Any]:
    codes = [code for code in operation["responses"] if code.startswith("2")]
    assert len(codes) == 1, codes
    return operation["responses"][codes[0]]


def test_given_the_document_then_every_operation_has_a_typed_success_body(document):
    # Given the generated OpenAPI document
    operations = [(m, p, op) for p, ops in document["paths"].items() for m, op in ops.items()]
    assert len(operations) > 30
    for method, path, operation in operations:
        # Then every operation answers one 2xx, with a non-empty JSON schema unless it is a
        # probe or the HTML report
        success = _success(operation)
        if (method, path) in NOT_JSON:
            assert path.startswith("/review") == ("text/html" in success.get("content", {}))
            continue
        schema = success["content"]["application/json"]["schema"]
        assert schema and (schema.get("$ref") or schema.get("anyOf")), f"{method} {path}"
        # And every error is the shared error schema
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), f"{method} {path} {code}"


def _people_operations() -> set[tuple[str, str]]:
    routes = [*management_routes.router.routes, *lifecycle_routes.router.routes]
    return {
        (method.lower(), route.path)
        for route in routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


class Conformance:
    """Calls the service and checks each answer with schemathesis against the document."""

    def __init__(self, client: Any, document: dict[str, Any]) -> None:
        self.client, self.schema = client, schemathesis.openapi.from_dict(document)
        self.seen: set[tuple[str, str]] = set()

    def __call__(
        self,
        method: str,
        template: str,
        token: str,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        url = template.format(**(path or {}))
        response: httpx.Response = self.client.request(
            method, url, params=query, json=body, headers=auth(token)
        )
        assert response.status_code in (200, 201), f"{method} {url}: {response.text}"
        case = self.schema[template][method.upper()].Case(
            path_parameters=path, query=query, body=body, media_type="application/json"
        )
        case.validate_response(response, checks=CHECKS)
        self.seen.add((method, template))
        return response.json()


def test_given_the_people_routes_when_each_succeeds_then_its_body_conforms(
    service_client, portfolio, as_of, tmp_path: Path, document
):
    with service_client() as (client, tokens, audit_db):
        for name, role in (
            ("ann", "analyst"),
            ("bob", "approver"),
            ("sue", "senior_approver"),
            ("ada", "admin"),
        ):
            tokens[name] = create_token(tmp_path / "tokens.json", name, role)
        ann, bob, sue, ada = (tokens[n] for n in ("ann", "bob", "sue", "ada"))
        auditor, scorer = tokens["auditor"], tokens["scorer"]
        call = Conformance(client, document)
        day, today = as_of.isoformat(), date.today()
        # Given a scored customer, and one scored without data (the analysts' queue)
        scored = client.post(
            "/score", json=request_example(portfolio, "C00002", as_of), headers=auth(scorer)
        )
        assert scored.status_code == 200, scored.text
        thin = copy.deepcopy(request_example(portfolio, "C00003", as_of))
        thin["statements"], thin["facilities"], thin["transactions"] = [], [], []
        assert client.post("/score", json=thin, headers=auth(scorer)).status_code == 200
        c2 = {"customer_id": "C00002"}
        # When every judgement route succeeds
        assert call("get", "/me", ann) == {"name": "ann", "role": "analyst"}
        assessment = {"customer_id": "C00002", "as_of": day, "answers": GOOD, "comment": "CFO"}
        call("post", "/assessments", ann, body=assessment)
        grade = scored.json()["grade"]
        proposal = {
            **c2,
            "as_of": day,
            "proposed_grade": grade,
            "reason_code": "OR04",
            "comment": "sector outlook",
        }
        first = call("post", "/overrides", ann, body=proposal)["override_id"]
        second = call("post", "/overrides", ann, body=proposal)["override_id"]
        decision = {"comment": "checked the sector report"}
        call("get", "/overrides", auditor, query={"status": "pending"})
        call(
            "post",
            "/overrides/{override_id}/reject",
            bob,
            path={"override_id": second},
            body=decision,
        )
        approved = call(
            "post",
            "/overrides/{override_id}/approve",
            bob,
            path={"override_id": first},
            body=decision,
        )
        assert approved["status"] == "approved"
        call("get", "/overrides/{override_id}", ann, path={"override_id": first})
        rating = call("get", "/customers/{customer_id}/rating", ann, path=c2, query={"as_of": day})
        assert rating["assessment"] and rating["override"]["override_id"] == first
        expert = {
            **proposal,
            "customer_id": "C00003",
            "reason_code": "OR07",
            "kind": "expert_rating",
        }
        call("post", "/overrides", ann, body=expert)
        queue = call("get", "/queue", ann, query={"as_of": day})
        assert [c["customer_id"] for c in queue["customers"]] == ["C00003"]
        # And every customer-management route succeeds
        status = "/customers/{customer_id}/status"
        call("post", status, ann, path=c2, body={"status": "watch", "reason": WHY})
        pending = call("post", status, ann, path=c2, body={"status": "suspended", "reason": WHY})
        call("get", "/status-changes", auditor)
        assert call("get", status, scorer, path=c2)["pending"]["status"] == "pending"
        change = {"change_id": pending["change_id"]}
        call("post", "/status-changes/{change_id}/approve", bob, path=change, body=decision)
        exit_by = (today + timedelta(days=60)).isoformat()
        exiting = {"status": "exiting", "reason": WHY, "exit_by": exit_by}
        change = {"change_id": call("post", status, ann, path=c2, body=exiting)["change_id"]}
        call("post", "/status-changes/{change_id}/reject", bob, path=change, body=decision)
        assert call("get", status, auditor, path=c2)["change"]["to"] == "suspended"
        review = {
            **c2,
            "review_date": today.isoformat(),
            "outcome": "watch",
            "next_review_date": (today + timedelta(days=90)).isoformat(),
        }
        call("post", "/reviews", ann, body=review)
        contact = {**c2, "date": today.isoformat(), "channel": "call", "summary": "CFO call"}
        call("post", "/contacts", ann, body=contact)
        terms = {"effective_date": today.isoformat(), "covenants": {"max_debt_ratio": 0.8}}
        call("post", "/customers/{customer_id}/terms", ann, path=c2, body=terms)
        records = call("get", "/customers/{customer_id}/records", auditor, path=c2)
        assert [len(records[k]) for k in ("reviews", "contacts", "terms")] == [1, 1, 1]
        _record_warning(audit_db, as_of)
        warnings = call("get", "/customers/{customer_id}/warnings", auditor, path=c2)
        assert warnings["warnings"][0]["grade"] == "6"  # a run's fact, after the common fields
        call("get", "/customers/{customer_id}/history", auditor, path=c2)
        measure = {
            "title": "Sector freeze",
            "scope": {"customer_ids": ["C00002"]},
            "effect": {"min_tier": "high", "suspend_new_credit": True},
            "reason": "sector-wide payment stress",
            "starts_on": today.isoformat(),
            "expires_on": (today + timedelta(days=30)).isoformat(),
        }
        ids = [call("post", "/measures", ada, body=measure)["measure_id"] for _ in range(2)]
        for verb, measure_id in zip(("approve", "reject"), ids, strict=True):
            path = {"measure_id": measure_id}
            call("post", f"/measures/{{measure_id}}/{verb}", sue, path=path, body=decision)
        assert {m["status"] for m in call("get", "/measures", scorer)["measures"]} == {
            "active",
            "rejected",
        }
        # Then every people's route was called, and each answer conformed to its schema
        assert call.seen == _people_operations()


def _record_warning(audit_db: Path, as_of: date) -> None:
    """A monitoring run's warning, recorded as ``riskgrade monitor`` records it."""
    store = SqlAuditStore(AuditConfig(path=audit_db), key=b"test-key")
    item = WarningItem(
        "C00002",
        "high",
        "restrict",
        ("covenant_breach",),
        ("debt ratio 0.9",),
        None,
        {"grade": "6"},
    )
    try:
        record_warnings(store, "run-1", as_of, [item], actor=Actor(name="monitor", role="system"))
    finally:
        store.close()
