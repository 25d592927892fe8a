import itertools

import numpy as np
import pytest
from scipy.special import logit

from features.spec import FeatureGroup
from rating.explain import (
    PROTECTED_FACTOR,
    explain,
    explain_migration,
    render_waterfall,
    tier_bands,
)
from rating.policy import RatingPolicy, Tier
from rating.scale import MasterScale

SCALE, POLICY = MasterScale(), RatingPolicy()


def _contribs(spec, **values):
    row = np.zeros(len(spec.names))
    for name, value in values.items():
        row[spec.names.index(name)] = value
    return row


def test_path_starts_at_base_adds_largest_first_and_ends_at_the_final_rating(spec):
    # Given a base in grade 4 (medium) and a few contributions
    base = float(logit(0.006))
    row = _contribs(spec, debt_ratio=1.2, current_ratio=-0.3, max_dpd_12m=2.0, inflow_cv_12m=0.1)
    # When explained
    e = explain(row, base, spec, SCALE, POLICY)
    # Then the steps go by absolute size, starting at the base and chaining
    assert [s.feature for s in e.steps] == [
        "max_dpd_12m",
        "debt_ratio",
        "current_ratio",
        "inflow_cv_12m",
    ]
    assert e.steps[0].log_odds_before == base
    for before, after in zip(e.steps, e.steps[1:], strict=False):
        assert after.log_odds_before == before.log_odds_after
    # And the last step is the final rating
    assert e.steps[-1].log_odds_after == e.log_odds
    assert e.log_odds == pytest.approx(base + row.sum(), abs=1e-12)
    assert e.steps[-1].grade_after == e.grade == SCALE.grade_of(np.array([e.pd]))[0]
    assert e.steps[-1].tier_after is e.tier is POLICY.tier_of_grade(e.grade)
    assert e.group_contributions[FeatureGroup.FINANCIAL.value] == pytest.approx(0.9)


def test_crossings_are_consistent_with_grade_and_tier_moves(spec, trained):
    rng = np.random.default_rng(3)
    for _ in range(50):
        # Given random contributions around a random base
        row = rng.normal(0, 1.2, len(spec.names))
        base = rng.uniform(-7, 0)
        e = explain(row, base, spec, SCALE, POLICY)
        grade, tier = e.base_grade, e.base_tier
        for step in e.steps:
            # Then each step crosses exactly the boundaries between its grades and tiers
            move = SCALE.index_of(step.grade_after) - SCALE.index_of(grade)
            assert len(step.grade_crossings) == abs(move)
            assert len(step.tier_crossings) == abs(step.tier_after.rank - tier.rank)
            if move:
                assert (move > 0) == (step.contribution > 0)
                first = step.grade_crossings[0].split("/")
                assert grade in first
            grade, tier = step.grade_after, step.tier_after
        assert (grade, tier) == (e.grade, e.model_tier)


def test_distance_and_blocking_factors_to_the_next_better_tier(spec):
    # Given a customer in the high tier
    base = float(logit(0.004))
    row = _contribs(spec, max_dpd_12m=1.5, debt_ratio=0.8, inflow_cv_12m=0.2, current_ratio=-0.1)
    e = explain(row, base, spec, SCALE, POLICY)
    assert e.model_tier is Tier.HIGH
    # Then the distance is to the upper boundary of the medium tier (PD 2%)
    assert e.next_better_tier is Tier.MEDIUM
    assert e.distance_to_next_better_tier == pytest.approx(e.log_odds - logit(0.02))
    # And removing the blocking factors together would cross it, but not without the last one
    removed = sum(f.contribution for f in e.blocking_factors)
    assert e.blocking_sufficient and removed > e.distance_to_next_better_tier
    assert removed - e.blocking_factors[-1].contribution <= e.distance_to_next_better_tier
    assert e.blocking_factors[0].feature == "max_dpd_12m"
    contributions = [f.contribution for f in e.blocking_factors]
    assert contributions == sorted(contributions, reverse=True)
    better = explain(
        row - _contribs(spec, **{f.feature: f.contribution for f in e.blocking_factors}),
        base,
        spec,
        SCALE,
        POLICY,
    )
    assert better.model_tier.rank < e.model_tier.rank


def test_low_tier_has_no_better_tier_and_hard_rules_force_restricted(spec):
    row = _contribs(spec, debt_ratio=-1.0)
    e = explain(row, float(logit(0.001)), spec, SCALE, POLICY)
    assert e.model_tier is Tier.LOW and e.next_better_tier is None and e.blocking_factors == ()
    hits = POLICY.apply_hard_rules(
        {"flag_sanctions_hit": 0, "flag_legal_enforcement": 0, "flag_fraud": 1}
    )
    forced = explain(row, float(logit(0.001)), spec, SCALE, POLICY, hard_rules=hits)
    assert forced.tier is Tier.RESTRICTED and forced.model_tier is Tier.LOW


def test_tier_bands_are_contiguous_in_log_odds():
    bands = tier_bands(SCALE, POLICY)
    assert bands[0].lower_log_odds is None and bands[-1].upper_log_odds is None
    for prev, nxt in itertools.pairwise(bands):
        assert prev.upper_log_odds == nxt.lower_log_odds


def test_migration_ranks_the_contribution_differences(spec):
    # Given the same customer rated twice: days past due jumped, debt ratio improved a little
    base = float(logit(0.004))
    previous = _contribs(spec, max_dpd_12m=0.1, debt_ratio=0.5, inflow_cv_12m=0.2)
    current = _contribs(spec, max_dpd_12m=2.6, debt_ratio=0.3, inflow_cv_12m=0.2)
    # When the migration is explained
    m = explain_migration(
        previous, current, spec, SCALE, POLICY, previous_base=base, current_base=base
    )
    # Then it is a downgrade driven first by days past due, then by the debt ratio
    assert m.direction == "downgrade" and m.tier_changed
    assert m.current.tier.rank > m.previous.tier.rank
    assert [c.feature for c in m.feature_changes] == ["max_dpd_12m", "debt_ratio"]
    assert m.feature_changes[0].delta == pytest.approx(2.5)
    assert m.group_changes[0].group is FeatureGroup.CREDIT
    assert m.delta_log_odds == pytest.approx(sum(c.delta for c in m.feature_changes) + m.base_delta)
    assert m.grade_notches > 0


def test_migration_by_hard_rule(spec):
    row = _contribs(spec, debt_ratio=0.1)
    hits = POLICY.apply_hard_rules(
        {"flag_sanctions_hit": 1, "flag_legal_enforcement": 0, "flag_fraud": 0}
    )
    m = explain_migration(
        row,
        row,
        spec,
        SCALE,
        POLICY,
        previous_base=-5.0,
        current_base=-5.0,
        current_hard_rules=hits,
    )
    assert m.direction == "downgrade" and m.hard_rules_added == ("HR01",)
    assert m.feature_changes == () and m.grade_notches == 0


def test_waterfall_renders_png_and_svg(spec):
    rng = np.random.default_rng(5)
    e = explain(rng.normal(0, 0.8, len(spec.names)), -4.0, spec, SCALE, POLICY)
    png = render_waterfall(e, "png", max_steps=4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    svg = render_waterfall(e, "svg")
    assert b"<svg" in svg
    assert render_waterfall(e, "svg") == svg  # deterministic
    with pytest.raises(ValueError, match="'png' or 'svg'"):
        render_waterfall(e, "gif")


def test_mismatched_contributions_are_rejected(spec):
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        explain(np.zeros(3), 0.0, spec, SCALE, POLICY)
    with pytest.raises(ValueError, match="base must be finite"):
        explain(np.zeros(9), float("nan"), spec, SCALE, POLICY)


def test_protected_features_are_merged_and_never_named(spec):
    # Given a protected attribute pushing the risk up
    base = float(logit(0.004))
    row = _contribs(spec, owner_age=0.9, debt_ratio=0.6)
    # When explained, alone and as a migration
    e = explain(row, base, spec, SCALE, POLICY)
    m = explain_migration(
        np.zeros_like(row), row, spec, SCALE, POLICY, previous_base=base, current_base=base
    )
    # Then its contribution is kept (the path adds up) under an anonymous factor
    named = (
        {s.feature for s in e.steps}
        | {f.feature for f in e.blocking_factors}
        | {c.feature for c in m.feature_changes}
    )
    assert "owner_age" not in named
    assert PROTECTED_FACTOR in named
    assert e.log_odds == pytest.approx(base + 1.5)
