"""Human-judgement rules: questionnaire config and scoring, override checks, four eyes, validity."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from rating.judgement import (
    JudgementError,
    Override,
    OverrideConfig,
    OverrideStatus,
    QualitativeConfig,
    Role,
    can_approve,
    check_override,
    override_status_at,
    override_valid_at,
    score_assessment,
    valid_until,
)
from rating.policy import RatingPolicy
from rating.scale import MasterScale
from riskgrade.config import ParamsError, load_params

SCALE = MasterScale()
QUESTIONS = QualitativeConfig()
RULES = OverrideConfig()


def answers(level: int) -> dict[str, str]:
    """Every factor answered at the same level (0 = best)."""
    return {f.code: f.answers[level].code for f in QUESTIONS.factors}


def test_best_and_worst_answers_give_the_notch_bounds() -> None:
    # given the default questionnaire, when every answer is the best / the worst
    best, worst = score_assessment(answers(0), QUESTIONS), score_assessment(answers(3), QUESTIONS)
    # then the score spans [-1, 1] and the notches hit the configured bounds
    assert (best.score, best.notches) == (1.0, QUESTIONS.max_notches)
    assert (worst.score, worst.notches) == (-1.0, QUESTIONS.min_notches)
    assert best.questionnaire_version == QUESTIONS.version


@pytest.mark.parametrize(
    ("given", "code", "field"),
    [
        ({**answers(0), "weather": "sunny"}, "unknown_factor", "answers.weather"),
        ({**answers(0), "management": "superb"}, "unknown_answer", "answers.management"),
        ({k: v for k, v in answers(0).items() if k != "collateral"}, "missing_factor", None),
    ],
)
def test_bad_assessment_names_the_factor(given: dict[str, str], code: str, field: str) -> None:
    with pytest.raises(JudgementError) as error:
        score_assessment(given, QUESTIONS)
    assert error.value.code == code
    assert error.value.field == (field or "answers.collateral")


def _params_with(tmp_path: Path, edit: dict) -> Path:
    document = yaml.safe_load(Path("params.yaml").read_text())
    section = document["rating"]
    for key, value in edit.items():
        *parents, last = key.split(".")
        node = section
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"qualitative.factors.0.weight": 0}, "rating.qualitative.factors.0.weight"),
        ({"qualitative.factors.1.answers.1.score": 1.0}, "rating.qualitative.factors.1"),
        ({"qualitative.max_notches": 1}, "rating.qualitative"),
        ({"qualitative.max_notches": 9, "qualitative.steps.0.notches": 9}, "max_notches"),
        ({"overrides.max_approver_notches": 10}, "rating.overrides.max_approver_notches"),
        ({"data_sufficiency.provisional_tier": "severe"}, "rating.data_sufficiency"),
    ],
)
def test_bad_judgement_config_is_one_error_naming_the_key(
    tmp_path: Path, edit: dict, named: str
) -> None:
    # given params.yaml with one bad judgement setting, when loaded, then one error names it
    with pytest.raises(ParamsError) as error:
        load_params(_params_with(tmp_path, edit))
    assert named in str(error.value)


def test_params_yaml_judgement_equals_the_defaults() -> None:
    assert load_params(Path("params.yaml")).rating.judgement.qualitative == QUESTIONS


def test_override_check_gives_size_and_required_role() -> None:
    small = check_override("6", "4", "OR02", "parent guarantees the debt", SCALE, RULES)
    large = check_override("6", "3", "OR02", "parent guarantees the debt", SCALE, RULES)
    down = check_override("3", "7", "OR01", "lost its main customer", SCALE, RULES)
    assert (small.notches, small.required_role) == (2, Role.APPROVER)
    assert (large.notches, large.required_role) == (3, Role.SENIOR_APPROVER)
    assert (down.notches, down.required_role) == (-4, Role.SENIOR_APPROVER)


@pytest.mark.parametrize(
    ("base", "proposed", "reason", "comment", "code"),
    [
        ("6", "6", "OR01", "a long enough comment", "same_grade"),
        ("6", "5", "OR42", "a long enough comment", "unknown_reason"),
        ("6", "5", "OR01", "short", "comment_required"),
        ("6", "X", "OR01", "a long enough comment", "unknown_grade"),
        ("6", "D", "OR01", "a long enough comment", "default_grade"),
        ("D", "5", "OR01", "a long enough comment", "default_grade"),
    ],
)
def test_inadmissible_override_is_refused_with_its_code(
    base: str, proposed: str, reason: str, comment: str, code: str
) -> None:
    with pytest.raises(JudgementError) as error:
        check_override(base, proposed, reason, comment, SCALE, RULES)
    assert error.value.code == code


def test_override_beyond_the_hard_cap_is_refused() -> None:
    with pytest.raises(JudgementError) as error:
        check_override(
            "9",
            "1",
            "OR01",
            "a long enough comment",
            SCALE,
            RULES.model_copy(update={"max_notches": 4, "max_approver_notches": 2}),
        )
    assert error.value.code == "too_many_notches"


@pytest.mark.parametrize(
    ("proposer", "approver", "role", "notches", "code"),
    [
        ("alice", "alice", Role.SENIOR_APPROVER, 1, "four_eyes"),
        ("alice", " ALICE ", Role.APPROVER, 1, "four_eyes"),
        ("alice", "bob", Role.ANALYST, 1, "not_an_approver"),
        ("alice", "bob", Role.APPROVER, 3, "needs_senior_approver"),
        ("alice", "bob", Role.APPROVER, -3, "needs_senior_approver"),
        ("alice", "bob", Role.APPROVER, 2, "ok"),
        ("alice", "carol", Role.SENIOR_APPROVER, 5, "ok"),
    ],
)
def test_four_eyes(proposer: str, approver: str, role: Role, notches: int, code: str) -> None:
    decision = can_approve(proposer, approver, role, notches, RULES)
    assert decision.code == code
    assert decision.allowed is (code == "ok")


def _override(**changes: object) -> Override:
    fields: dict[str, object] = {
        "override_id": "O1",
        "customer_id": "C1",
        "proposer": "alice",
        "proposed_on": date(2025, 1, 10),
        "base_grade": "6",
        "proposed_grade": "5",
        "reason_code": "OR02",
        "status": OverrideStatus.APPROVED,
        "approver": "bob",
        "decided_on": date(2025, 1, 15),
        "valid_until": date(2025, 4, 15),
    }
    return Override.model_validate({**fields, **changes})


def test_override_validity_and_status_through_time() -> None:
    approved = _override()
    assert not override_valid_at(approved, date(2025, 1, 14))  # not decided yet
    assert override_status_at(approved, date(2025, 1, 14), RULES) is OverrideStatus.PROPOSED
    assert override_valid_at(approved, date(2025, 1, 15))
    assert override_valid_at(approved, date(2025, 4, 14))
    assert not override_valid_at(approved, date(2025, 4, 15))
    assert override_status_at(approved, date(2025, 4, 15), RULES) is OverrideStatus.EXPIRED
    pending = _override(status="proposed", approver=None, decided_on=None, valid_until=None)
    assert not override_valid_at(pending, date(2025, 1, 20))
    assert override_status_at(pending, date(2025, 2, 8), RULES) is OverrideStatus.PROPOSED
    assert override_status_at(pending, date(2025, 2, 9), RULES) is OverrideStatus.EXPIRED


def test_approved_override_without_its_approver_is_invalid() -> None:
    with pytest.raises(ValueError, match="approver"):
        _override(approver=None)


def test_validity_defaults_to_the_tier_review_frequency() -> None:
    policy = RatingPolicy()
    assert valid_until(date(2025, 1, 1), "high", policy, None) == date(2025, 4, 1)
    assert valid_until(date(2025, 1, 1), "low", policy, 30) == date(2025, 1, 31)
