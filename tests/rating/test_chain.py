"""The rating chain: notches, overrides, hard rules, default and insufficient data."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.chain import (
    ChainInputError,
    ModelDecision,
    RatedCustomer,
    StricterPolicy,
    rate_customer,
)
from rating.judgement import (
    Assessment,
    AssessmentScore,
    Override,
    OverrideKind,
    QualitativeConfig,
    score_assessment,
)
from rating.lifecycle import PolicyEffect
from rating.policy import HardRuleHit, RatingPolicy, Tier
from rating.scale import MasterScale
from rating.sufficiency import Sufficiency, SufficiencyReason

SCALE = MasterScale()
POLICY = RatingPolicy()
QUESTIONS = QualitativeConfig()
GRADES = [g.name for g in SCALE.grades]
SANCTIONS = HardRuleHit(code="HR01", flag="flag_sanctions_hit", text_en="x", text_zh="x")
NO_DATA = Sufficiency(
    sufficient=False, reasons=(SufficiencyReason(code="DS01", text_en="e", text_zh="z"),)
)


def decision(grade: str, **changes: object) -> ModelDecision:
    return ModelDecision.model_validate(
        {"customer_id": "C1", "pd": 0.03, "model_grade": grade, **changes}
    )


def assessment(notches: int) -> Assessment:
    return Assessment(
        assessment_id="A1",
        customer_id="C1",
        analyst="alice",
        assessed_on=date(2025, 1, 1),
        valid_until=date(2025, 7, 1),
        questionnaire_version=QUESTIONS.version,
        notches=notches,
    )


def override(grade: str, kind: OverrideKind = OverrideKind.OVERRIDE) -> Override:
    return Override(
        override_id="O1",
        customer_id="C1",
        kind=kind,
        proposer="alice",
        proposed_on=date(2025, 1, 2),
        base_grade="5",
        proposed_grade=grade,
        reason_code="OR07" if kind is OverrideKind.EXPERT_RATING else "OR02",
        status="approved",
        approver="bob",
        decided_on=date(2025, 1, 3),
        valid_until=date(2025, 4, 3),
    )


def test_readme_example_grade_6_plus_one_notch_then_override_to_6() -> None:
    # given model grade 6, an assessment worth +1 notch and an approved override back to 6
    rated = rate_customer(
        decision("6"), SCALE, POLICY, assessment=assessment(1), override=override("6")
    )
    # then the parts show each step and the final tier is grade 6's
    assert (rated.model_grade, rated.qualitative_notches, rated.adjusted_grade) == ("6", 1, "5")
    assert rated.override is not None and rated.override.approver == "bob"
    assert (rated.final_grade, rated.tier) == ("6", Tier.HIGH)
    assert rated.policy == POLICY.policy_of_tier("high")
    assert [r.source for r in rated.reasons] == ["qualitative", "override"]


def test_notches_are_clamped_to_the_non_default_grades() -> None:
    assert rate_customer(decision("2"), SCALE, POLICY, assessment=assessment(2)).final_grade == "1"
    worst = rate_customer(decision("9"), SCALE, POLICY, assessment=assessment(-2))
    assert (worst.final_grade, worst.qualitative_notches) == ("9", 0)


def test_default_grade_never_moves_and_ignores_overrides() -> None:
    rated = rate_customer(
        decision("D", in_default=True), SCALE, POLICY, assessment=assessment(2),
        override=override("3"),
    )  # fmt: skip
    assert (rated.final_grade, rated.tier, rated.override) == ("D", Tier.RESTRICTED, None)
    assert rated.qualitative_notches == 0


def test_hard_rule_dominates_an_upgrade() -> None:
    rated = rate_customer(
        decision("3", hard_rules=(SANCTIONS,)), SCALE, POLICY, override=override("1")
    )
    assert (rated.final_grade, rated.tier) == ("1", Tier.RESTRICTED)
    assert rated.reasons[0].code == "HR01"


def test_insufficient_data_gets_the_provisional_tier_until_an_expert_rating() -> None:
    # given a customer the model knows too little about, with a model grade of 8 or 2
    for grade in ("8", "2"):
        rated = rate_customer(decision(grade, sufficiency=NO_DATA), SCALE, POLICY)
        # then its tier is the provisional one, flagged, with the reason
        assert (rated.tier, rated.insufficient_data, rated.provisional) == (Tier.HIGH, True, True)
        assert rated.reasons[-1].code == "DS01"
    # and a hard rule still makes it restricted
    hit = rate_customer(decision("2", sufficiency=NO_DATA, hard_rules=(SANCTIONS,)), SCALE, POLICY)
    assert hit.tier is Tier.RESTRICTED
    # when an expert rating is approved, then it decides the grade and the tier
    expert = override("4", OverrideKind.EXPERT_RATING)
    rated = rate_customer(decision("8", sufficiency=NO_DATA), SCALE, POLICY, override=expert)
    assert (rated.final_grade, rated.tier, rated.provisional) == ("4", Tier.MEDIUM, False)


def test_stricter_policy_only_tightens() -> None:
    measure = StricterPolicy(
        source="measure",
        ref="M1",
        effect=PolicyEffect(min_tier=Tier.HIGH),
        text_en="Segment measure",
        text_zh="措施",
    )
    tightened = rate_customer(decision("2"), SCALE, POLICY, stricter=[measure])
    kept = rate_customer(decision("8"), SCALE, POLICY, stricter=[measure])
    assert (tightened.final_grade, tightened.tier) == ("2", Tier.HIGH)
    assert kept.tier is Tier.RESTRICTED


def test_judgement_of_another_customer_is_refused() -> None:
    with pytest.raises(ChainInputError, match="customer"):
        rate_customer(decision("5", customer_id="C2"), SCALE, POLICY, assessment=assessment(1))


answer_levels = st.lists(
    st.integers(0, 3), min_size=len(QUESTIONS.factors), max_size=len(QUESTIONS.factors)
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    grade=st.sampled_from(GRADES),
    levels=answer_levels,
    factor=st.integers(0, len(QUESTIONS.factors) - 1),
    hard=st.booleans(),
    insufficient=st.booleans(),
)
def test_a_better_answer_never_worsens_the_rating(
    grade: str, levels: list[int], factor: int, hard: bool, insufficient: bool
) -> None:
    # given an assessment, and the same one with one answer improved by a level
    better = list(levels)
    better[factor] = max(0, better[factor] - 1)

    def rate(chosen: list[int]) -> tuple[RatedCustomer, AssessmentScore]:
        given_answers = {
            f.code: f.answers[level].code
            for f, level in zip(QUESTIONS.factors, chosen, strict=True)
        }
        scored = score_assessment(given_answers, QUESTIONS)
        return rate_customer(
            decision(
                grade,
                hard_rules=(SANCTIONS,) if hard else (),
                sufficiency=NO_DATA if insufficient else Sufficiency(),
            ),
            SCALE,
            POLICY,
            assessment=assessment(scored.notches),
        ), scored

    base, base_score = rate(levels)
    improved, improved_score = rate(better)
    # then the score, the notches, the grade and the tier never get worse
    assert improved_score.score >= base_score.score
    assert QUESTIONS.min_notches <= base_score.notches <= QUESTIONS.max_notches
    assert SCALE.index_of(improved.final_grade) <= SCALE.index_of(base.final_grade)
    assert improved.tier.rank <= base.tier.rank
    # and the final tier is never better than the hard-rule tier or the grade's tier
    assert base.tier.rank >= POLICY.tier_of_grade(base.final_grade).rank or insufficient
    if hard:
        assert base.tier is Tier.RESTRICTED
    assert abs(SCALE.index_of(base.final_grade) - SCALE.index_of(grade)) <= 2


@settings(max_examples=200, deadline=None, derandomize=True)
@given(model=st.sampled_from(GRADES), target=st.sampled_from(GRADES), hard=st.booleans())
def test_an_override_sets_the_final_grade_and_the_tier_follows_it(
    model: str, target: str, hard: bool
) -> None:
    rated = rate_customer(
        decision(model, hard_rules=(SANCTIONS,) if hard else ()),
        SCALE,
        POLICY,
        override=override(target),
    )
    assert rated.final_grade == target
    expected = Tier.RESTRICTED if hard else POLICY.tier_of_grade(target)
    assert rated.tier is expected
