"""Customer status and emergency measures as rules: transitions, four eyes, effects."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from rating.chain import ModelDecision, rate_customer
from rating.judgement import Role
from rating.lifecycle import (
    CustomerStatus,
    LifecycleConfig,
    LifecycleError,
    Measure,
    MeasureEffect,
    MeasureScope,
    check_status_change,
    measure_stricter,
    measures_for,
    status_stricter,
)
from rating.policy import RatingPolicy, Tier
from rating.scale import MasterScale
from riskgrade.config import load_params

SCALE = MasterScale()
POLICY = RatingPolicy()
CONFIG = LifecycleConfig()
REASON = "Covenant breach confirmed at the site visit"
S = CustomerStatus


def decision(grade: str) -> ModelDecision:
    return ModelDecision(customer_id="C1", pd=0.01, model_grade=grade)


def measure(**changes: object) -> Measure:
    values: dict[str, object] = {
        "measure_id": "M-1",
        "title": "Property downturn",
        "scope": MeasureScope(industries=("real_estate",), regions=("north",)),
        "effect": MeasureEffect(min_tier=Tier.HIGH, suspend_new_credit=True),
        "reason": "Sector-wide payment stress",
        "starts_on": date(2024, 1, 1),
        "expires_on": date(2024, 7, 1),
        "proposer": "ada",
        "approver": "grace",
        "decided_on": date(2024, 1, 1),
    }
    values.update(changes)
    return Measure.model_validate(values)


def test_params_hold_the_code_defaults() -> None:
    # given the project's params.yaml, when loaded, then it states the same rules as the code
    assert load_params().rating.lifecycle == CONFIG


@pytest.mark.parametrize(
    ("current", "target", "four_eyes"),
    [
        (S.NORMAL, S.WATCH, False),
        (S.WATCH, S.RESTRICTED, False),
        (S.NORMAL, S.SUSPENDED, True),
        (S.RESTRICTED, S.EXITING, True),
        (S.SUSPENDED, S.NORMAL, True),  # reinstatement loosens: a second person confirms
        (S.EXITING, S.EXITED, False),
        (S.RESTRICTED, S.WATCH, False),
    ],
)
def test_four_eyes_on_suspension_exit_and_reinstatement(
    current: CustomerStatus, target: CustomerStatus, four_eyes: bool
) -> None:
    exit_by = date(2025, 1, 1) if target is S.EXITING else None
    transition = check_status_change(current, target, REASON, CONFIG, exit_by=exit_by)
    assert transition.four_eyes is four_eyes
    assert transition.required_role is (Role.APPROVER if four_eyes else Role.ANALYST)


@pytest.mark.parametrize(
    ("current", "target", "code"),
    [
        (S.WATCH, S.WATCH, "same_status"),
        (S.NORMAL, S.EXITED, "transition_not_allowed"),
        (S.EXITED, S.WATCH, "transition_not_allowed"),
        (S.NORMAL, S.EXITING, "exit_plan_required"),
    ],
)
def test_inadmissible_changes_name_the_rule(
    current: CustomerStatus, target: CustomerStatus, code: str
) -> None:
    with pytest.raises(LifecycleError) as raised:
        check_status_change(current, target, REASON, CONFIG)
    assert raised.value.code == code


def test_a_reason_and_an_exit_date_after_the_start_are_required() -> None:
    with pytest.raises(LifecycleError, match="reason of at least"):
        check_status_change(S.NORMAL, S.WATCH, "bad", CONFIG)
    with pytest.raises(LifecycleError) as raised:
        check_status_change(
            S.NORMAL,
            S.EXITING,
            REASON,
            CONFIG,
            exit_by=date(2024, 1, 1),
            effective_on=date(2024, 1, 1),
        )
    assert raised.value.field == "exit_by"


def test_status_only_tightens_the_policy() -> None:
    # given a low-risk customer, when suspended, then the grade stays, new credit stops
    base = rate_customer(decision("2"), SCALE, POLICY)
    suspended = status_stricter(S.SUSPENDED, "SC-1", CONFIG)
    assert suspended is not None
    rated = rate_customer(decision("2"), SCALE, POLICY, stricter=[suspended])
    assert (rated.final_grade, rated.tier) == ("2", Tier.LOW)
    assert base.policy.new_credit_allowed and not rated.policy.new_credit_allowed
    assert rated.policy.credit_limit_factor == base.policy.credit_limit_factor
    assert rated.reasons[-1].source == "status" and rated.reasons[-1].code == "SC-1"
    # when exiting, then the tier is restricted and the limit factor 0
    exiting = status_stricter(S.EXITING, "SC-2", CONFIG)
    assert exiting is not None
    out = rate_customer(decision("2"), SCALE, POLICY, stricter=[exiting])
    assert out.tier is Tier.RESTRICTED and out.policy.credit_limit_factor == 0.0
    assert out.policy.exit_review
    # and a normal status adds nothing to the chain
    assert status_stricter(S.NORMAL, "SC-3", CONFIG) is None


def test_every_status_is_at_least_as_strict_as_a_looser_one() -> None:
    for grade in SCALE.names[:-1]:
        previous = None
        for status in (S.NORMAL, S.WATCH, S.RESTRICTED, S.EXITING, S.EXITED):
            item = status_stricter(status, "SC", CONFIG)
            rated = rate_customer(decision(grade), SCALE, POLICY, stricter=[item] if item else [])
            if previous is not None:
                assert rated.tier.rank >= previous.tier.rank
                assert rated.policy.credit_limit_factor <= previous.policy.credit_limit_factor
            previous = rated


def test_measure_scope_matches_every_given_segment_or_a_listed_customer() -> None:
    scope = MeasureScope(industries=("real_estate",), regions=("north",), customer_ids=("C9",))
    assert scope.covers("C1", {"industry": "real_estate", "region": "north"})
    assert not scope.covers("C1", {"industry": "real_estate", "region": "south"})
    assert scope.covers("C9", {"industry": "retail", "region": "south"})
    with pytest.raises(ValidationError, match="scope needs"):
        MeasureScope()
    with pytest.raises(ValidationError, match="needs an effect"):
        MeasureEffect()


def test_measure_is_active_from_approval_and_start_until_it_expires() -> None:
    active = measure()
    segment = {"industry": "real_estate", "region": "north"}
    assert measures_for("C1", segment, [active], date(2024, 3, 1)) == [active]
    assert measures_for("C1", segment, [active], date(2024, 7, 1)) == []  # expired by itself
    assert (
        measures_for("C1", segment, [measure(approver=None, decided_on=None)], date(2024, 3, 1))
        == []
    )
    assert active.status_at(date(2024, 7, 1)) == "expired"
    assert measure(starts_on=date(2024, 2, 1)).status_at(date(2024, 1, 15)) == "scheduled"
    rejected = measure(rejected=True)
    assert not rejected.active_at(date(2024, 3, 1))
    assert rejected.status_at(date(2024, 3, 1)) == "rejected"


def test_active_measure_tightens_and_names_itself() -> None:
    rated = rate_customer(decision("1"), SCALE, POLICY, stricter=[measure_stricter(measure())])
    assert rated.tier is Tier.HIGH and not rated.policy.new_credit_allowed
    assert "M-1" in rated.reasons[-1].text_en
    # and a measure never loosens a restricted customer
    worst = rate_customer(decision("8"), SCALE, POLICY, stricter=[measure_stricter(measure())])
    assert worst.tier is Tier.RESTRICTED
