"""Customer management through the service (ASGI): status, reviews, contacts, terms, measures."""

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
    with service_client() as (client, tokens, _audit_db):
        for name, role in (
            ("ann", "analyst"),
            ("bob", "approver"),
            ("sue", "senior_approver"),
            ("ada", "admin"),
        ):
            tokens[name] = create_token(tmp_path / "tokens.json", name, role)
        body = request_example(portfolio, "C00002", as_of)
        scored = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert scored.status_code == 200, scored.text
        yield client, tokens, body


def test_given_a_suspension_when_approved_by_a_second_person_then_status_applies(running):
    client, tokens, _ = running
    # Given ann puts the customer on watch: effective at once
    watch = client.post(
        "/customers/C00002/status",
        json={"status": "watch", "reason": WHY},
        headers=auth(tokens["ann"]),
    )
    assert watch.status_code == 201, watch.text
    assert (watch.json()["status"], watch.json()["to"]) == ("effective", "watch")
    # When she proposes suspension, then it waits and she may not approve it
    proposed = client.post(
        "/customers/C00002/status",
        json={"status": "suspended", "reason": WHY},
        headers=auth(tokens["ann"]),
    )
    assert proposed.status_code == 201 and proposed.json()["status"] == "pending"
    change = proposed.json()["change_id"]
    decision = {"comment": "agreed after the call with the CFO"}
    own = client.post(
        f"/status-changes/{change}/approve", json=decision, headers=auth(tokens["ann"])
    )
    assert own.status_code == 403 and own.json()["error"]["code"] == "four_eyes"
    pending = client.get("/status-changes?status=pending", headers=auth(tokens["auditor"]))
    assert [p["proposal_id"] for p in pending.json()["status_changes"]] == [change]
    # When bob approves, then the customer is suspended; a second decision is a conflict
    approved = client.post(
        f"/status-changes/{change}/approve", json=decision, headers=auth(tokens["bob"])
    )
    assert approved.status_code == 200 and approved.json()["decided_by"] == "bob"
    again = client.post(
        f"/status-changes/{change}/reject", json=decision, headers=auth(tokens["sue"])
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    status = client.get("/customers/C00002/status", headers=auth(tokens["scorer"])).json()
    assert status["status"] == "suspended" and status["change"]["confirmed_by"] == "bob"
    # And /score and the rating carry the status: no new credit, the reason names it
    body = running[2]
    later = {**body, "as_of": date.today().isoformat()}
    scored = client.post("/score", json=later, headers=auth(tokens["scorer"])).json()
    assert scored["status"] == "suspended" and not scored["policy"]["new_credit_allowed"]
    assert any(r["source"] == "status" for r in scored["judgement_reasons"])
    rating = client.get("/customers/C00002/rating", headers=auth(tokens["ann"])).json()
    assert rating["status"] == "suspended" and not rating["policy"]["new_credit_allowed"]
    # And the history lists the changes in order
    history = client.get("/customers/C00002/history", headers=auth(tokens["auditor"])).json()
    kinds = [h["type"] for h in history["history"] if h["type"] != "rating"]
    assert kinds[-3:] == ["status.changed", "status_change.proposed", "status_change.approved"]


def test_given_bad_status_input_then_4xx_naming_the_problem(running):
    client, tokens, _ = running
    headers = auth(tokens["ann"])
    cases = [
        ({"status": "asleep", "reason": WHY}, 422, "validation_error"),
        ({"status": "watch", "reason": WHY, "colour": "red"}, 422, "validation_error"),
        ({"status": "exiting", "reason": WHY}, 422, "exit_plan_required"),
        ({"status": "watch", "reason": "bad"}, 422, "reason_required"),
        ({"status": "normal", "reason": WHY}, 409, "same_status"),
    ]
    for payload, code, error in cases:
        response = client.post("/customers/C00002/status", json=payload, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (code, error), payload
    unknown = client.post(
        "/customers/C09999/status", json={"status": "watch", "reason": WHY}, headers=headers
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_customer"
    scorer = client.post(
        "/customers/C00002/status",
        json={"status": "watch", "reason": WHY},
        headers=auth(tokens["scorer"]),
    )
    assert scorer.status_code == 403
    assert client.get("/customers/C00002/history", headers=headers).json()["history"][1:] == []


def test_given_reviews_contacts_and_terms_when_recorded_then_read_back(running):
    client, tokens, _ = running
    headers = auth(tokens["ann"])
    today = date.today()
    review = {
        "customer_id": "C00002",
        "review_date": (today - timedelta(days=3)).isoformat(),
        "outcome": "watch",
        "notes": "margins falling",
        "next_review_date": (today + timedelta(days=90)).isoformat(),
    }
    assert client.post("/reviews", json=review, headers=headers).status_code == 201
    duplicate = client.post("/reviews", json=review, headers=auth(tokens["bob"]))
    assert duplicate.status_code == 409
    backwards = {**review, "next_review_date": review["review_date"]}
    bad = client.post("/reviews", json=backwards, headers=headers)
    assert bad.status_code == 422
    contact = {
        "customer_id": "C00002",
        "date": today.isoformat(),
        "channel": "visit",
        "summary": "site visit, stock levels low",
    }
    assert client.post("/contacts", json=contact, headers=headers).status_code == 201
    fax = client.post("/contacts", json={**contact, "channel": "fax"}, headers=headers)
    assert fax.status_code == 422 and fax.json()["error"]["fields"][0]["loc"] == "channel"
    future = client.post(
        "/contacts",
        json={**contact, "date": (today + timedelta(days=2)).isoformat()},
        headers=headers,
    )
    assert future.status_code == 422 and future.json()["error"]["code"] == "future_date"
    terms = client.post(
        "/customers/C00002/terms",
        json={"effective_date": today.isoformat(), "template": "high"},
        headers=headers,
    )
    assert terms.status_code == 201, terms.text
    unknown_template = client.post(
        "/customers/C00002/terms",
        json={"effective_date": today.isoformat(), "template": "gold"},
        headers=headers,
    )
    assert unknown_template.json()["error"]["code"] == "unknown_template"
    records = client.get("/customers/C00002/records", headers=auth(tokens["auditor"])).json()
    assert [r["outcome"] for r in records["reviews"]] == ["watch"]
    assert [c["channel"] for c in records["contacts"]] == ["visit"]
    assert records["contacts"][0]["recorded_by"] == "ann"
    assert {t["covenant"] for t in records["terms"]} >= {"max_debt_ratio", "reporting_months"}


def test_given_a_measure_when_a_senior_approves_then_it_is_active(running):
    client, tokens, body = running
    today = date.today()
    measure = {
        "title": "Sector freeze",
        "scope": {"industries": [body["customer"]["industry"]]},
        "effect": {"min_tier": "high", "suspend_new_credit": True},
        "reason": "sector-wide payment stress after the rate rise",
        "starts_on": today.isoformat(),
        "expires_on": (today + timedelta(days=90)).isoformat(),
    }
    assert client.post("/measures", json=measure, headers=auth(tokens["ann"])).status_code == 403
    proposed = client.post("/measures", json=measure, headers=auth(tokens["ada"]))
    assert proposed.status_code == 201, proposed.text
    measure_id = proposed.json()["measure_id"]
    decision = {"comment": "approved by the risk committee"}
    by_approver = client.post(
        f"/measures/{measure_id}/approve", json=decision, headers=auth(tokens["bob"])
    )
    assert by_approver.status_code == 403
    approved = client.post(
        f"/measures/{measure_id}/approve", json=decision, headers=auth(tokens["sue"])
    )
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    listed = client.get("/measures?status=active", headers=auth(tokens["scorer"])).json()
    assert [m["measure_id"] for m in listed["measures"]] == [measure_id]
    # And /score at a date it is active applies it at once: tier at least high, no new credit
    scored = client.post(
        "/score", json={**body, "as_of": today.isoformat()}, headers=auth(tokens["scorer"])
    ).json()
    assert scored["measures"] == [measure_id]
    assert scored["tier"] in ("high", "restricted") and not scored["policy"]["new_credit_allowed"]
    assert any(measure_id in r["text"] for r in scored["judgement_reasons"])
    before = client.post("/score", json=body, headers=auth(tokens["scorer"])).json()
    assert before["measures"] == []  # not active at the earlier as_of
    empty_scope = client.post(
        "/measures", json={**measure, "scope": {}}, headers=auth(tokens["ada"])
    )
    assert empty_scope.status_code == 422
