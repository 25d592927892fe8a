"""What fuzzing the people's roles found: each case answers 4xx naming the problem, never 500."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from serving.auth import create_token
from serving.batch import request_example
from tests.serving.conftest import auth

WHY = "covenant breach confirmed at the site visit"


@pytest.fixture
def running(service_client, tmp_path: Path, portfolio, as_of):
    with service_client() as (client, tokens, _):
        tokens["ann"] = create_token(tmp_path / "tokens.json", "ann", "analyst")
        tokens["ada"] = create_token(tmp_path / "tokens.json", "ada", "admin")
        body = request_example(portfolio, "C00002", as_of)
        assert client.post("/score", json=body, headers=auth(tokens["scorer"])).status_code == 200
        yield client, tokens


def _refused(response, field: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    assert [f["loc"] for f in response.json()["error"]["fields"]] == [field]


def test_given_a_date_outside_the_contract_when_recorded_then_422_and_records_stay_readable(
    running,
):
    client, tokens = running
    headers = auth(tokens["ann"])
    today = date.today().isoformat()
    # Given a review dated in year 1 (it used to be recorded, and every later read of the
    # customer's records, and of the reviews table by monitoring, failed with 500)
    review = {
        "customer_id": "C00002",
        "review_date": "0001-01-01",
        "outcome": "watch",
        "next_review_date": "2000-01-01",
    }
    # When it is posted, then it is refused naming the field, as are terms and measures
    _refused(client.post("/reviews", json=review, headers=headers), "review_date")
    contact = {"customer_id": "C00002", "date": "1899-12-31", "channel": "call", "summary": "x"}
    _refused(client.post("/contacts", json=contact, headers=headers), "date")
    terms = {"effective_date": "2201-01-01", "template": "high"}
    _refused(client.post("/customers/C00002/terms", json=terms, headers=headers), "effective_date")
    exiting = {"status": "exiting", "reason": WHY, "exit_by": "0001-01-01"}
    _refused(client.post("/customers/C00002/status", json=exiting, headers=headers), "exit_by")
    measure = {
        "title": "Freeze",
        "scope": {"customer_ids": ["C00002"]},
        "effect": {"min_tier": "high"},
        "reason": "sector-wide payment stress",
        "starts_on": "1800-01-01",
        "expires_on": today,
    }
    _refused(client.post("/measures", json=measure, headers=auth(tokens["ada"])), "starts_on")
    # And a review inside the bounds is recorded and read back
    review.update(
        review_date=today, next_review_date=(date.today() + timedelta(days=9)).isoformat()
    )
    assert client.post("/reviews", json=review, headers=headers).status_code == 201
    records = client.get("/customers/C00002/records", headers=headers)
    assert records.status_code == 200 and len(records.json()["reviews"]) == 1


@pytest.mark.parametrize("value", ["0", "1700000000", "2026-1-5", "1899-12-31", "2201-01-01"])
def test_given_a_query_date_not_an_iso_day_in_bounds_then_422_naming_as_of(running, value):
    client, tokens = running
    headers = auth(tokens["ann"])
    # Given lax parsing would read "0" as 1970-01-01; when each date route gets such a value
    for path in ("/queue", "/customers/C00002/status", "/customers/C00002/rating"):
        # Then it is refused naming as_of
        _refused(client.get(path, params={"as_of": value}, headers=headers), "as_of")


def test_given_a_path_with_two_methods_when_another_is_sent_then_405_allows_both(running):
    client, tokens = running
    headers = auth(tokens["ann"])
    # Given paths served by a GET and a POST route, when another method is sent
    for path in ("/overrides", "/customers/C00002/status", "/measures"):
        response = client.request("OPTIONS", path, headers=headers)
        # Then 405 names both methods, not only the first route's
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        assert response.json()["error"]["code"] == "method_not_allowed"
    # And a path with one route still names its one method
    assert client.get("/score", headers=headers).headers["allow"] == "POST"
