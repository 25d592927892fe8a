"""Assessments, overrides and expert ratings on the audit chain, and the rating at a date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from management import Actor, ConflictError, ForbiddenError, InvalidInputError, ProposalStatus
from management.judgement import (
    AssessmentInput,
    OverrideInput,
    assessments,
    decide_override,
    history,
    insufficient_customers,
    overrides,
    propose_override,
    rating_at,
    record_assessment,
)
from rating.judgement import JudgementError, OverrideKind, Role
from tests.management.conftest import scored

AT = datetime.now(UTC) - timedelta(hours=1)
DAY = date(2026, 2, 27)
ANN = Actor(name="ann", role="analyst")
BOB = Actor(name="bob", role="approver")
SUE = Actor(name="sue", role="senior_approver")
GOOD = {
    "management": "strong",
    "market_position": "strong",
    "governance": "strong",
    "transparency": "strong",
    "collateral": "adequate",
    "due_diligence": "clean",
}
INSUFFICIENT = {
    "sufficient": False,
    "reasons": [
        {"code": "DS01", "text_en": "No statement", "text_zh": "无报表"},
        {"code": "DS02", "text_en": "No facility", "text_zh": "无授信"},
    ],
}


def test_given_a_scored_customer_when_assessed_then_notches_move_the_final_grade(backend, rules):
    # Given customer C1 scored grade 5 (medium) on DAY
    store = backend.open()
    store.append(scored("C1", DAY, "5", "medium"))
    # When ann records a strong assessment
    recorded = record_assessment(
        store, rules, ANN, AssessmentInput("C1", DAY, GOOD, "met CFO"), at=AT
    )
    # Then it scores +2 notches, valid for the medium tier's review frequency (180 days)
    assert (recorded.assessment.notches, recorded.assessment.valid_until) == (2, date(2026, 8, 26))
    rating = rating_at(store, rules, "C1", DAY)
    assert rating is not None
    assert (
        rating.rated.model_grade,
        rating.rated.qualitative_notches,
        rating.rated.final_grade,
    ) == (
        "5",
        2,
        "3",
    )
    assert rating.rated.tier.value == "low" and rating.to_dict()["assessment_id"] == (
        recorded.assessment.assessment_id
    )
    # And the day before the assessment, or after its validity, it does not apply
    assert rating_at(store, rules, "C1", date(2026, 2, 26)) is None
    assert rating_at(store, rules, "C1", date(2026, 8, 26)).rated.final_grade == "5"
    assert [a.assessment.analyst for a in assessments(store, "C1")] == ["ann"]
    store.close()


def test_given_bad_assessments_when_recorded_then_refused_by_code(backend, rules):
    store = backend.open()
    with pytest.raises(JudgementError) as unknown:
        record_assessment(store, rules, ANN, AssessmentInput("C1", DAY, {**GOOD, "x": "y"}), at=AT)
    with pytest.raises(JudgementError) as answer:
        record_assessment(
            store, rules, ANN, AssessmentInput("C1", DAY, {**GOOD, "management": "great"}), at=AT
        )
    with pytest.raises(InvalidInputError) as future:
        record_assessment(
            store, rules, ANN, AssessmentInput("C1", AT.date() + timedelta(days=1), GOOD), at=AT
        )
    with pytest.raises(ForbiddenError) as scorer:
        record_assessment(
            store, rules, Actor(name="s", role="scorer"), AssessmentInput("C1", DAY, GOOD)
        )
    assert [e.value.code for e in (unknown, answer, future, scorer)] == [
        "unknown_factor",
        "unknown_answer",
        "future_date",
        "not_an_analyst",
    ]
    assert store.search_events().total == 0
    store.close()


def test_given_no_model_decision_when_override_proposed_then_conflict_naming_why(backend, rules):
    store = backend.open()
    with pytest.raises(ConflictError, match="no model decision at or before 2026-02-27") as caught:
        propose_override(store, rules, ANN, OverrideInput("C9", DAY, "3", "OR02", "group support"))
    assert caught.value.code == "no_model_decision"
    store.close()


def test_given_an_override_when_approved_then_final_grade_is_the_override(backend, rules):
    # Given C1 at grade 5 with a +2 assessment (adjusted grade 3)
    store = backend.open()
    store.append(scored("C1", DAY, "5", "medium"))
    record_assessment(store, rules, ANN, AssessmentInput("C1", DAY, GOOD, "met CFO"), at=AT)
    # When ann proposes grade 4 (one notch worse than 3) and bob approves
    proposed = propose_override(
        store, rules, ANN, OverrideInput("C1", DAY, "4", "OR04", "sector outlook worsening"), at=AT
    )
    assert proposed.status is ProposalStatus.PENDING
    assert (proposed.payload["base_grade"], proposed.payload["notches"]) == ("3", -1)
    # Then pending it changes nothing
    assert rating_at(store, rules, "C1", DAY).rated.final_grade == "3"
    with pytest.raises(ForbiddenError) as own:
        decide_override(store, proposed.proposal_id, ANN, approve=True, comment="mine")
    assert own.value.code == "four_eyes"
    approved = decide_override(store, proposed.proposal_id, BOB, approve=True, comment="agreed")
    assert approved.status is ProposalStatus.APPROVED
    # And approved, it sets the final grade, tier and policy, with who approved it
    rating = rating_at(store, rules, "C1", DAY).to_dict()
    assert (rating["model_grade"], rating["qualitative_notches"], rating["final_grade"]) == (
        "5",
        2,
        "4",
    )
    assert rating["tier"] == "medium" and rating["override"]["decided_by"] == "bob"
    assert rating["policy"] == rules.policy.policy_of_tier("medium").model_dump(mode="json")
    # And a second decision is a conflict
    with pytest.raises(ConflictError):
        decide_override(store, proposed.proposal_id, SUE, approve=False, comment="too late")
    kinds = [h["type"] for h in history(store, "C1")]
    assert kinds == ["rating", "assessment", "override.proposed", "override.approved"]
    assert [o.status for o in overrides(store, customer_id="C1")] == [ProposalStatus.APPROVED]
    store.close()


def test_given_a_large_override_when_an_approver_decides_then_senior_needed(backend, rules):
    store = backend.open()
    store.append(scored("C1", DAY, "7", "high"))
    proposed = propose_override(
        store, rules, ANN, OverrideInput("C1", DAY, "3", "OR02", "parent guarantee signed"), at=AT
    )
    assert proposed.required_role is Role.SENIOR_APPROVER
    with pytest.raises(ForbiddenError) as caught:
        decide_override(store, proposed.proposal_id, BOB, approve=True, comment="fine")
    assert caught.value.code == "needs_senior_approver"
    done = decide_override(store, proposed.proposal_id, SUE, approve=True, comment="fine")
    assert done.decided_by == "sue"
    store.close()


def test_given_bad_overrides_when_proposed_then_refused_by_rule(backend, rules):
    store = backend.open()
    store.append(scored("C1", DAY, "5", "medium"))
    cases = [
        (OverrideInput("C1", DAY, "5", "OR02", "no change at all"), "same_grade"),
        (OverrideInput("C1", DAY, "X", "OR02", "grade not on scale"), "unknown_grade"),
        (OverrideInput("C1", DAY, "4", "OR42", "unknown reason code"), "unknown_reason"),
        (OverrideInput("C1", DAY, "4", "OR02", "short"), "comment_required"),
        (OverrideInput("C1", DAY, "4", "OR07", "expert code on an override"), "unknown_reason"),
    ]
    for item, code in cases:
        with pytest.raises(JudgementError) as caught:
            propose_override(store, rules, ANN, item, at=AT)
        assert caught.value.code == code
    with pytest.raises(ConflictError) as expert:
        propose_override(
            store,
            rules,
            ANN,
            OverrideInput(
                "C1", DAY, "4", "OR07", "model has enough data", OverrideKind.EXPERT_RATING
            ),
            at=AT,
        )
    assert expert.value.code == "data_sufficient"
    assert store.search_events().total == 0
    store.close()


def test_given_insufficient_data_when_expert_rated_then_queue_empties_and_tier_final(
    backend, rules
):
    # Given C2 scored grade 3 but with insufficient data: provisional high tier, in the queue
    store = backend.open()
    store.append(scored("C2", DAY, "3", "low", sufficiency=INSUFFICIENT))
    store.append(scored("C3", DAY, "3", "low"))
    rating = rating_at(store, rules, "C2", DAY)
    assert (rating.rated.insufficient_data, rating.rated.provisional, rating.rated.tier.value) == (
        True,
        True,
        "high",
    )
    assert [r.rated.customer_id for r in insufficient_customers(store, rules, DAY)] == ["C2"]
    # When an expert rating of grade 4 is proposed and approved
    item = OverrideInput(
        "C2", DAY, "4", "OR07", "site visit and bank references", OverrideKind.EXPERT_RATING
    )
    proposed = propose_override(store, rules, ANN, item, at=AT)
    assert proposed.kind == "expert_rating"
    decide_override(store, proposed.proposal_id, BOB, approve=True, comment="references checked")
    # Then the rating is final (not provisional) at grade 4, medium, and the queue is empty
    rated = rating_at(store, rules, "C2", DAY).rated
    assert (rated.final_grade, rated.tier.value, rated.provisional) == ("4", "medium", False)
    assert insufficient_customers(store, rules, DAY) == []
    store.close()
