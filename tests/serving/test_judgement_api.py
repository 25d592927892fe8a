"""Human judgement through the service (ASGI app): assessments, overrides, ratings, the queue."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from rating.config import default_rating_config
from serving.auth import create_token
from serving.batch import request_example
from tests.serving.conftest import auth

GOOD = {
    "management": "strong",
    "market_position": "strong",
    "governance": "adequate",
    "transparency": "strong",
    "collateral": "adequate",
    "due_diligence": "clean",
}
NAMES = default_rating_config().scale.names


@pytest.fixture
def running(service_client, tmp_path: Path):
    with service_client() as (client, tokens, audit_db):
        for name, role in (("ann", "analyst"), ("bob", "approver"), ("sue", "senior_approver")):
            tokens[name] = create_token(tmp_path / "tokens.json", name, role)
        yield client, tokens, audit_db


def _worse(grade: str) -> str:
    """One notch worse (or better at the bottom of the non-default grades)."""
    i = NAMES.index(grade)
    return NAMES[i + 1] if i + 1 < len(NAMES) - 1 else NAMES[i - 1]


def test_given_an_approved_override_when_rated_and_scored_then_final_grade_applies(
    running, portfolio, as_of
):
    client, tokens, _ = running
    body = request_example(portfolio, "C00002", as_of)
    day = as_of.isoformat()
    # Given a scored customer with nothing decided by people: final grade is the model's
    first = client.post("/score", json=body, headers=auth(tokens["scorer"])).json()
    assert first["model_grade"] == first["grade"] == first["final_grade"]
    assert (first["qualitative_notches"], first["override"], first["insufficient_data"]) == (
        0,
        None,
        False,
    )
    # When ann records an assessment
    assessed = client.post(
        "/assessments",
        json={"customer_id": "C00002", "as_of": day, "answers": GOOD, "comment": "met the CFO"},
        headers=auth(tokens["ann"]),
    )
    assert assessed.status_code == 201, assessed.text
    notches = assessed.json()["notches"]
    rating = client.get(f"/customers/C00002/rating?as_of={day}", headers=auth(tokens["ann"]))
    adjusted = rating.json()["adjusted_grade"]
    assert rating.json()["qualitative_notches"] == NAMES.index(first["grade"]) - NAMES.index(
        adjusted
    )
    assert notches >= rating.json()["qualitative_notches"] >= 0
    # And proposes an override one notch from the adjusted grade
    target = _worse(adjusted)
    proposed = client.post(
        "/overrides",
        json={
            "customer_id": "C00002",
            "as_of": day,
            "proposed_grade": target,
            "reason_code": "OR04",
            "comment": "sector outlook worsening",
        },
        headers=auth(tokens["ann"]),
    )
    assert proposed.status_code == 201, proposed.text
    override_id = proposed.json()["override_id"]
    assert proposed.json()["status"] == "pending"
    # Then her own approval is refused (four eyes), an analyst cannot approve at all
    decision = {"comment": "checked the sector report"}
    own = client.post(
        f"/overrides/{override_id}/approve", json=decision, headers=auth(tokens["ann"])
    )
    assert own.status_code == 403 and own.json()["error"]["code"] == "forbidden"
    # (an approver who proposed is refused by the four-eyes rule itself)
    dan = create_token_for(running, "dan", "approver")
    by_proposer = client.post(
        "/overrides",
        json={**proposed_body(day, target), "customer_id": "C00002"},
        headers=auth(dan),
    )
    own_id = by_proposer.json()["override_id"]
    refused = client.post(f"/overrides/{own_id}/approve", json=decision, headers=auth(dan))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "four_eyes"
    # And bob's approval applies; a second decision is a conflict
    approved = client.post(
        f"/overrides/{override_id}/approve", json=decision, headers=auth(tokens["bob"])
    )
    assert approved.status_code == 200 and approved.json()["decided_by"] == "bob"
    again = client.post(
        f"/overrides/{override_id}/reject", json=decision, headers=auth(tokens["sue"])
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    # And the rating, for the auditor, shows every part
    rated = client.get(f"/customers/C00002/rating?as_of={day}", headers=auth(tokens["auditor"]))
    view = rated.json()
    assert (view["model_grade"], view["final_grade"]) == (first["grade"], target)
    assert view["override"]["override_id"] == override_id
    assert view["override"]["proposer"] == "ann" and view["override"]["decided_by"] == "bob"
    policy = default_rating_config().policy
    tier = policy.tier_of_grade(target).value
    assert view["tier"] == tier
    assert view["policy"] == policy.policy_of_tier(tier).model_dump(mode="json")
    # And /score now answers with the model grade and the final grade, tier and policy
    again_scored = client.post("/score", json=body, headers=auth(tokens["scorer"])).json()
    assert (again_scored["model_grade"], again_scored["final_grade"]) == (first["grade"], target)
    assert again_scored["tier"] == tier and again_scored["override"]["override_id"] == override_id
    assert again_scored["policy"] == view["policy"]
    # And the history lists everything in time order
    history = client.get("/customers/C00002/history", headers=auth(tokens["auditor"])).json()
    assert [h["type"] for h in history["history"]] == [
        "rating",
        "assessment",
        "override.proposed",
        "override.proposed",
        "override.approved",
        "rating",
    ]
    # And the chain verifies
    assert client.get("/audit/verify", headers=auth(tokens["auditor"])).json()["ok"]


def create_token_for(running, name: str, role: str) -> str:
    audit_db = running[2]
    return create_token(Path(audit_db).parent / "tokens.json", name, role)


def proposed_body(day: str, grade: str) -> dict[str, str]:
    return {
        "as_of": day,
        "proposed_grade": grade,
        "reason_code": "OR01",
        "comment": "recent event not in the data",
    }


def test_given_no_decision_when_override_proposed_then_409_naming_why(running, as_of):
    client, tokens, _ = running
    response = client.post(
        "/overrides",
        json={**proposed_body(as_of.isoformat(), "3"), "customer_id": "C00009"},
        headers=auth(tokens["ann"]),
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "no_model_decision" and "C00009" in error["message"]
    missing = client.get("/customers/C00009/rating", headers=auth(tokens["scorer"]))
    assert missing.status_code == 404


def test_given_bad_judgement_input_when_posted_then_422_naming_the_field(running, as_of):
    client, tokens, _ = running
    day = as_of.isoformat()
    headers = auth(tokens["ann"])
    base = {"customer_id": "C00002", "as_of": day, "answers": GOOD}
    cases = [
        ({**base, "answers": {**GOOD, "vibes": "good"}}, "answers.vibes", "unknown_factor"),
        (
            {**base, "answers": {**GOOD, "management": "great"}},
            "answers.management",
            "unknown_answer",
        ),
        ({**base, "colour": "red"}, "colour", "validation_error"),
        ({**base, "as_of": "2099-01-01"}, "as_of", "future_date"),
        ({**base, "customer_id": "a b"}, "customer_id", "validation_error"),
    ]
    for payload, field, code in cases:
        response = client.post("/assessments", json=payload, headers=headers)
        assert response.status_code == 422, (payload, response.text)
        error = response.json()["error"]
        assert (error["code"], error["fields"][0]["loc"]) == (code, field)
    blank = client.post("/overrides/x/approve", json={"comment": " "}, headers=auth(tokens["bob"]))
    assert blank.status_code == 422
    unknown = client.post(
        "/overrides/x/approve", json={"comment": "ok"}, headers=auth(tokens["bob"])
    )
    assert unknown.status_code == 404
    # Nothing was recorded
    assert client.get("/customers/C00002/history", headers=headers).json()["history"] == []


def test_given_roles_when_calling_judgement_routes_then_ladder_and_separation(running, as_of):
    client, tokens, _ = running
    day = as_of.isoformat()
    body = {"customer_id": "C00002", "as_of": day, "answers": GOOD}
    # scorer, auditor, admin may not record an assessment; analyst, approver, senior may
    for role in ("scorer", "auditor", "admin"):
        response = client.post("/assessments", json=body, headers=auth(tokens[role]))
        assert response.status_code == 403, role
    for name in ("ann", "bob", "sue"):
        assert client.post("/assessments", json=body, headers=auth(tokens[name])).status_code == 201
    # the queue is the analysts'; ratings are read by scorer, analysts and auditor, not admin
    assert client.get("/queue", headers=auth(tokens["scorer"])).status_code == 403
    assert client.get("/queue", headers=auth(tokens["sue"])).status_code == 200
    assert client.get("/customers/C00002/history", headers=auth(tokens["admin"])).status_code == 403
    # an analyst token still cannot score (no hierarchy across the other roles)
    assert client.post("/score", json={}, headers=auth(tokens["ann"])).status_code == 403


def test_given_no_records_when_scored_then_insufficient_provisional_and_queued(
    running, portfolio, as_of
):
    client, tokens, _ = running
    day = as_of.isoformat()
    body = copy.deepcopy(request_example(portfolio, "C00003", as_of))
    body["statements"], body["facilities"], body["transactions"] = [], [], []
    # When a customer with no statement, facility or transaction is scored
    scored = client.post("/score", json=body, headers=auth(tokens["scorer"]))
    assert scored.status_code == 200, scored.text
    answer = scored.json()
    # Then it is marked insufficient with its reasons, the tier provisional (high, or restricted
    # under a hard rule)
    assert answer["insufficient_data"] and answer["provisional"]
    assert {r["code"] for r in answer["data_sufficiency"]["reasons"]} >= {"DS01", "DS02"}
    assert answer["tier"] == ("restricted" if answer["hard_rules"] else "high")
    assert "insufficient_data" in {r["source"] for r in answer["judgement_reasons"]}
    # And it is in the analysts' queue
    queue = client.get(f"/queue?as_of={day}", headers=auth(tokens["ann"])).json()
    assert [c["customer_id"] for c in queue["customers"]] == ["C00003"]
    # When an expert rating is proposed and approved
    grade = answer["grade"] if answer["grade"] != "D" else "5"
    proposed = client.post(
        "/overrides",
        json={
            "customer_id": "C00003",
            "as_of": day,
            "proposed_grade": grade,
            "reason_code": "OR07",
            "comment": "site visit, bank references, management accounts",
            "kind": "expert_rating",
        },
        headers=auth(tokens["ann"]),
    )
    assert proposed.status_code == 201, proposed.text
    queue = client.get(f"/queue?as_of={day}", headers=auth(tokens["ann"])).json()
    assert queue["customers"][0]["pending_expert_ratings"] == [proposed.json()["override_id"]]
    decided = client.post(
        f"/overrides/{proposed.json()['override_id']}/approve",
        json={"comment": "references verified"},
        headers=auth(tokens["sue"]),
    )
    assert decided.status_code == 200, decided.text
    # Then the queue is empty and the rating is final, no longer provisional
    assert client.get(f"/queue?as_of={day}", headers=auth(tokens["ann"])).json()["customers"] == []
    rating = client.get(f"/customers/C00003/rating?as_of={day}", headers=auth(tokens["ann"])).json()
    assert (rating["final_grade"], rating["provisional"], rating["insufficient_data"]) == (
        grade,
        False,
        True,
    )


def test_given_pending_overrides_when_listed_then_filtered_by_status(running, portfolio, as_of):
    client, tokens, _ = running
    day = as_of.isoformat()
    client.post(
        "/score", json=request_example(portfolio, "C00002", as_of), headers=auth(tokens["scorer"])
    )
    model = client.get(f"/customers/C00002/rating?as_of={day}", headers=auth(tokens["ann"])).json()
    made = client.post(
        "/overrides",
        json={**proposed_body(day, _worse(model["final_grade"])), "customer_id": "C00002"},
        headers=auth(tokens["ann"]),
    )
    assert made.status_code == 201
    pending = client.get("/overrides?status=pending", headers=auth(tokens["auditor"])).json()
    assert [o["override_id"] for o in pending["overrides"]] == [made.json()["override_id"]]
    assert client.get("/overrides?status=approved", headers=auth(tokens["bob"])).json() == {
        "overrides": []
    }
    assert client.get("/overrides?status=maybe", headers=auth(tokens["bob"])).status_code == 422
