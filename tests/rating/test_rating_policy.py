import numpy as np
import pytest
from pydantic import ValidationError

from rating.config import RatingConfig
from rating.policy import TIER_ORDER, RatingPolicy, Tier, TierDef
from rating.scale import MasterScale


def test_tier_order_is_low_medium_high_restricted():
    assert [t.value for t in TIER_ORDER] == ["low", "medium", "high", "restricted"]
    assert Tier.LOW.rank < Tier.MEDIUM.rank < Tier.HIGH.rank < Tier.RESTRICTED.rank


def test_default_tiers_partition_the_scale_and_restricted_holds_worst_grades_and_default():
    # Given the default scale and policy
    scale, policy = MasterScale(), RatingPolicy()
    # Then they fit together
    policy.check_scale(scale)
    # And tiers never get better as grades get worse
    ranks = [policy.tier_of_grade(g).rank for g in scale.names]
    assert ranks == sorted(ranks)
    assert policy.tier_of_grade("D") is Tier.RESTRICTED
    assert policy.tier_of_grade(scale.grades[-1].name) is Tier.RESTRICTED


def test_credit_policy_tightens_with_the_tier():
    policy = RatingPolicy()
    rules = [policy.policy_of_tier(t) for t in TIER_ORDER]
    assert [r.credit_limit_factor for r in rules] == sorted(
        (r.credit_limit_factor for r in rules), reverse=True
    )
    assert [r.max_payment_term_days for r in rules] == sorted(
        (r.max_payment_term_days for r in rules), reverse=True
    )
    restricted = policy.policy_of_tier("restricted")
    assert not restricted.new_credit_allowed and restricted.exit_review


def test_non_contiguous_tier_is_rejected_naming_the_tier():
    # Given a policy whose medium tier skips grade 5 (given to high)
    tiers = list(RatingPolicy().tiers)
    tiers[1] = tiers[1].model_copy(update={"grades": ("4", "6")})
    tiers[2] = tiers[2].model_copy(update={"grades": ("5", "7")})
    policy = RatingPolicy(tiers=tuple(tiers))
    # Then checking it against the scale names the offending tier
    with pytest.raises(ValueError, match="tier 'medium' grades"):
        policy.check_scale(MasterScale())
    with pytest.raises(ValidationError, match="tier 'medium'"):
        RatingConfig(policy=policy)


def test_missing_grade_and_wrong_tier_order_are_rejected():
    tiers = list(RatingPolicy().tiers)
    tiers[3] = tiers[3].model_copy(update={"grades": ("8", "D")})
    with pytest.raises(ValueError, match=r"in no tier: \['9'\]"):
        RatingPolicy(tiers=tuple(tiers)).check_scale(MasterScale())
    with pytest.raises(ValidationError, match="in that order"):
        RatingPolicy(tiers=tuple(reversed(RatingPolicy().tiers)))
    only_default = list(RatingPolicy().tiers)
    only_default[2] = only_default[2].model_copy(update={"grades": ("6", "7", "8", "9")})
    only_default[3] = TierDef(**{**only_default[3].model_dump(), "grades": ("D",)})
    with pytest.raises(ValueError, match="only the default grade"):
        RatingPolicy(tiers=tuple(only_default)).check_scale(MasterScale())


def test_hard_rules_fire_per_flag_in_rule_order():
    policy = RatingPolicy()
    # Given a customer with fraud and sanctions flags
    flags = {"flag_sanctions_hit": 1, "flag_legal_enforcement": 0, "flag_fraud": True}
    # When the hard rules are applied
    hits = policy.apply_hard_rules(flags)
    # Then both fire, in rule order, with English and Chinese texts
    assert [h.code for h in hits] == ["HR01", "HR03"]
    assert hits[0].text_zh == "命中制裁名单"
    assert policy.apply_hard_rules(dict.fromkeys(flags, 0)) == []


def test_hard_rule_inputs_are_checked():
    policy = RatingPolicy()
    with pytest.raises(ValueError, match="needs flag 'flag_fraud'"):
        policy.apply_hard_rules({"flag_sanctions_hit": 0, "flag_legal_enforcement": 0})
    with pytest.raises(ValueError, match="'flag_fraud' must be 0 or 1, got nan at row 1"):
        policy.hard_rule_mask(
            {
                "flag_sanctions_hit": np.zeros(2),
                "flag_legal_enforcement": np.zeros(2),
                "flag_fraud": np.array([0.0, np.nan]),
            }
        )
    with pytest.raises(ValueError, match="differ in length"):
        policy.hard_rule_mask({f: np.zeros(2) for f in policy.flag_names}, n_rows=3)
