"""Every date the API accepts is bounded: 422 naming the field, never a 500 (issue 12 item 9)."""

from __future__ import annotations

import pytest

from rating.model import RatingModel
from reliability.hostile import REQUEST_CASES, check_request_case
from serving.batch import request_example
from serving.engine import Engine
from serving.schemas import MAX_DAY, MIN_DAY, ErrorResponse, ScoreRequest
from tests.serving.conftest import auth


@pytest.fixture
def running(service_client):
    with service_client() as started:
        yield started


def test_given_as_of_at_either_bound_when_scored_then_every_window_computes(
    portfolio, as_of, bundle
):
    # Given a customer rated on the last allowed day, and one with no records on the first
    engine = Engine(RatingModel(bundle))
    late = {**request_example(portfolio, "C00002", as_of), "as_of": MAX_DAY.isoformat()}
    early = request_example(portfolio, "C00002", as_of)
    early.update(as_of=MIN_DAY.isoformat(), statements=[], facilities=[], transactions=[])
    early["customer"].update(founded_date=MIN_DAY.isoformat(), onboarding_date=MIN_DAY.isoformat())
    # When scored (day-after, 12-month and longer windows derived from as_of)
    decisions = engine.decide([ScoreRequest.model_validate(b) for b in (late, early)], "t")
    # Then both are rated
    assert [d.response["as_of"] for d in decisions] == [MAX_DAY.isoformat(), MIN_DAY.isoformat()]
    assert all(0 < d.response["pd"] < 1 for d in decisions)


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[c.name for c in REQUEST_CASES])
def test_given_a_hostile_request_when_sent_then_the_documented_answer(
    running, portfolio, as_of, case
):
    # Given a valid /score body broken in one place
    client, tokens, _ = running
    body = request_example(portfolio, "C00002", as_of)

    def send(method, path, payload, query, role):
        response = client.request(
            method, path, json=payload, params=query, headers=auth(tokens[role])
        )
        return response.status_code, response.json()

    # When sent, then the expected status, and a 422 names the field in the error schema
    result = check_request_case(case, body, send)
    assert result["passed"], result


def test_given_as_of_9999_when_scored_then_422_in_the_error_schema_naming_as_of(
    running, portfolio, as_of
):
    client, tokens, _ = running
    body = {**request_example(portfolio, "C00002", as_of), "as_of": "9999-12-31"}
    response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
    assert response.status_code == 422
    error = ErrorResponse.model_validate(response.json()).error
    assert [f.loc for f in error.fields] == ["as_of"]
    assert "2200-12-31" in error.fields[0].message


def test_given_dates_at_both_bounds_when_validated_then_accepted(portfolio, as_of):
    body = request_example(portfolio, "C00002", as_of)
    body["facilities"][0]["maturity_date"] = MAX_DAY.isoformat()
    body["customer"]["founded_date"] = MIN_DAY.isoformat()
    request = ScoreRequest.model_validate(body)
    assert request.facilities[0].maturity_date == MAX_DAY
