"""Fixes found by the reliability suite (issue 7): strict JSON types, 405 Allow, OpenAPI."""

from __future__ import annotations

import copy

import pytest

from serving.api.app import build_openapi
from serving.batch import request_example
from serving.schemas import ErrorResponse
from tests.serving.conftest import auth


@pytest.fixture
def body(portfolio, as_of):
    return request_example(portfolio, "C00002", as_of)


@pytest.fixture
def running(service_client):
    with service_client() as started:
        yield started


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("customer", "sanctions_hit"), 0),
        (("customer", "fraud"), "false"),
        (("statements", 0, "revenue"), "1500000.0"),
        (("as_of",), 1719705600),
    ],
    ids=["int-for-bool", "string-for-bool", "string-for-number", "epoch-for-date"],
)
def test_given_a_lax_json_type_when_scored_then_422_naming_the_field(running, body, path, value):
    client, tokens, _ = running
    bad = copy.deepcopy(body)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    response = client.post("/score", json=bad, headers=auth(tokens["scorer"]))
    assert response.status_code == 422
    error = ErrorResponse.model_validate(response.json())
    assert error.error.code == "validation_error"
    assert ".".join(str(p) for p in path) in [f.loc for f in error.error.fields]


def test_given_the_documented_body_when_scored_then_still_accepted(running, body):
    client, tokens, _ = running
    response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
    assert response.status_code == 200


def test_given_a_wrong_method_when_called_then_405_with_allow_header(running):
    client, tokens, _ = running
    response = client.get("/score", headers=auth(tokens["scorer"]))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert ErrorResponse.model_validate(response.json()).error.code == "method_not_allowed"


def test_given_the_openapi_document_then_operations_need_a_token_and_errors_share_a_schema():
    document = build_openapi()
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    assert {"ScoreRequest", "ExplainRequest", "ScoreBatchRequest", "ErrorResponse"} <= set(schemas)
    for path, item in document["paths"].items():
        for operation in item.values():
            if path in ("/livez", "/readyz"):
                assert operation["security"] == []
                continue
            assert operation["security"] == [{"bearer": []}]
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse")
    score = document["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    assert score["schema"]["$ref"].endswith("/ScoreRequest")
    assert schemas["CustomerProfile"]["additionalProperties"] is False


def test_given_a_path_with_a_newline_when_requested_then_404_in_the_error_schema(running):
    client, tokens, _ = running
    response = client.get("/audit/ab%0Acd", headers=auth(tokens["auditor"]))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert ErrorResponse.model_validate(response.json()).error.code == "not_found"


@pytest.mark.parametrize(
    "record_id",
    ["%C2%B2", "%D9%A3", "9" * 30, "0"],
    ids=["superscript-two", "arabic-three", "beyond-int64", "zero"],
)
def test_given_a_unicode_digit_record_id_when_requested_then_404_not_500(running, record_id):
    client, tokens, _ = running
    for response in (
        client.get(f"/audit/{record_id}", headers=auth(tokens["auditor"])),
        client.post(f"/audit/{record_id}/replay", headers=auth(tokens["auditor"])),
    ):
        assert response.status_code == 404
        assert ErrorResponse.model_validate(response.json()).error.code == "not_found"


def test_given_a_token_when_the_openapi_document_is_requested_then_it_lists_the_routes(running):
    client, tokens, _ = running
    assert client.get("/openapi.json").status_code == 401
    document = client.get("/openapi.json", headers=auth(tokens["auditor"])).json()
    assert document["openapi"].startswith("3.1")
    assert {"/score", "/score_batch", "/explain", "/model"} <= set(document["paths"])
