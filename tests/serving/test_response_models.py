"""Every success body conforms to the response schema the OpenAPI document gives for it."""

from __future__ import annotations

from datetime import date

import jsonschema
import pytest

from serving.api.app import build_openapi
from serving.batch import request_example
from tests.serving.conftest import auth


@pytest.fixture(scope="module")
def document() -> dict:
    return build_openapi()


def _check(document: dict, method: str, template: str, response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    operation = document["paths"][template][method]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema, f"{method} {template} has no success schema"
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())
    ]
    assert not errors, f"{method} {template}: {errors[:3]}"


def test_given_every_route_when_it_succeeds_then_its_body_matches_the_document(
    service_client, portfolio, as_of, document
):
    # Given a running service with a few decisions
    with service_client() as (client, tokens, _):
        scorer, auditor, admin = (auth(tokens[r]) for r in ("scorer", "auditor", "admin"))
        bodies = [request_example(portfolio, c, as_of, lang="zh") for c in ("C00001", "C00004")]
        calls = [
            ("post", "/score", client.post("/score", json=bodies[0], headers=scorer)),
            (
                "post",
                "/score_batch",
                client.post("/score_batch", json={"requests": bodies}, headers=scorer),
            ),
        ]
        for chart in ("none", "svg"):
            explained = client.post("/explain", json={**bodies[1], "chart": chart}, headers=scorer)
            calls.append(("post", "/explain", explained))
        decision_id = calls[0][2].json()["decision_id"]
        today = date.today().isoformat()
        # When every other route is called
        calls += [
            ("get", "/model", client.get("/model", headers=scorer)),
            ("get", "/audit/verify", client.get("/audit/verify", headers=auditor)),
            ("get", "/audit/{record_id}", client.get(f"/audit/{decision_id}", headers=auditor)),
            (
                "post",
                "/audit/{record_id}/replay",
                client.post("/audit/1/replay", headers=auditor),
            ),
            ("post", "/admin/reload", client.post("/admin/reload", json={}, headers=admin)),
            ("get", "/review/api/facets", client.get("/review/api/facets", headers=auditor)),
            ("get", "/review/api/decisions", client.get("/review/api/decisions", headers=auditor)),
            (
                "get",
                "/review/api/decisions/{record_id}",
                client.get("/review/api/decisions/2", headers=auditor),
            ),
            ("get", "/review/api/chain", client.get("/review/api/chain", headers=auditor)),
            (
                "get",
                "/review/api/export",
                client.get("/review/api/export?id=1", headers=auditor),
            ),
            (
                "get",
                "/review/api/export",
                client.get(f"/review/api/export?from={today}&to={today}", headers=auditor),
            ),
        ]
        # Then each body matches the schema of its operation
        for method, template, response in calls:
            _check(document, method, template, response)
