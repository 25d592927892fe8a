from datetime import date

import lightgbm as lgb
import numpy as np
import pytest

from rating.model import RatingModel, ScoreInputError
from rating.policy import DefaultStatus, Tier

FLAG_COLUMNS = {"flag_sanctions_hit": 6, "flag_legal_enforcement": 7, "flag_fraud": 8}


@pytest.fixture
def model(bundle):
    return RatingModel.load(bundle.path, expected_hash=bundle.bundle_hash)


def _clean_rows(trained, n=300):
    x = trained.x[:n].copy()
    x[:, list(FLAG_COLUMNS.values())] = 0.0
    return x


def test_scores_are_probabilities_and_contributions_are_additive(model, trained, calibration):
    # Given a batch from the training distribution
    x = trained.x[:500]
    # When scored
    result = model.score(x)
    # Then PDs are probabilities at or above the floor
    assert len(result) == 500
    assert np.all((result.pd > 0) & (result.pd < 1))
    assert result.pd.min() >= model.scale.pd_floor
    # And contributions plus base give exactly the calibrated margin of the booster
    margin = lgb.Booster(model_str=trained.model_text).predict(x, raw_score=True)
    np.testing.assert_allclose(
        result.contributions.sum(axis=1) + result.base, calibration.log_odds(margin), atol=1e-9
    )
    np.testing.assert_allclose(result.log_odds, calibration.log_odds(margin), atol=1e-9)
    # And group totals add up to the same contributions
    total = sum(result.group_contributions.values())
    np.testing.assert_allclose(total, result.contributions.sum(axis=1), atol=1e-9)
    # And grades, tiers and points agree with the PD
    assert list(result.grade) == list(model.scale.grade_of(result.pd))
    assert all(
        t is model.policy.tier_of_grade(g)
        for t, g in zip(result.model_tier, result.grade, strict=True)
    )
    order = np.argsort(result.pd)
    assert np.all(np.diff(result.points[order]) <= 0)


def test_reasons_are_positive_contributors_at_most_four_never_protected(model, trained):
    x = _clean_rows(trained)
    result = model.score(x)
    protected = {f.name for f in model.spec.features if f.protected}
    names = model.spec.names
    # The protected attribute does drive the model, so the filter is really exercised
    assert np.abs(result.contributions[:, names.index("owner_age")]).max() > 0.05
    for i, reasons in enumerate(result.reasons):
        assert len(reasons) <= 4
        contributions = [r.contribution for r in reasons]
        assert contributions == sorted(contributions, reverse=True)
        for reason in reasons:
            assert reason.feature not in protected
            assert reason.contribution > 0
            assert reason.contribution == result.contributions[i, names.index(reason.feature)]
            assert reason.text_en and reason.text_zh


def test_hard_rule_forces_restricted_with_the_rule_as_first_reason(model, trained):
    # Given clean customers, one of whom gets a sanctions hit in the flags
    x = _clean_rows(trained, 20)
    flags = {name: x[:, col].copy() for name, col in FLAG_COLUMNS.items()}
    flags["flag_sanctions_hit"][3] = 1.0
    # When scored
    result = model.score(x, flags)
    # Then that customer is restricted, its PD unchanged, the rule first among its reasons
    assert result.tier[3] is Tier.RESTRICTED
    assert result.reasons[3][0].code == "HR01"
    assert result.reasons[3][0].group == "hard_rule"
    assert result.pd[3] == model.score(x).pd[3]
    others = np.arange(20) != 3
    assert list(result.tier[others]) == list(result.model_tier[others])


def test_flags_default_to_the_model_feature_columns(model, trained):
    x = _clean_rows(trained, 5)
    x[2, FLAG_COLUMNS["flag_fraud"]] = 1.0
    result = model.score(x)
    assert [h.code for h in result.hard_rules[2]] == ["HR03"]
    assert result.tier[2] is Tier.RESTRICTED


def test_scoring_is_deterministic_and_row_independent(model, trained):
    x = trained.x[:50]
    whole = model.score(x)
    single = model.score(np.ascontiguousarray(x[7:8]))
    assert whole.pd[7] == single.pd[0]
    assert whole.reasons[7] == single.reasons[0]
    assert np.array_equal(model.score(x).pd, whole.pd)


def test_explain_matches_the_score(model, trained):
    result = model.score(trained.x[:30])
    for row in range(30):
        explanation = model.explain(result, row)
        assert explanation.grade == result.grade[row]
        assert explanation.tier is result.tier[row]
        assert explanation.log_odds == pytest.approx(result.log_odds[row], abs=1e-9)


def test_bad_input_is_rejected_naming_the_problem(model, trained):
    x = _clean_rows(trained, 4)
    with pytest.raises(ScoreInputError, match="9 columns"):
        model.score(x[:, :5])
    bad = x.copy()
    bad[1, 0] = np.inf
    with pytest.raises(ScoreInputError, match="'debt_ratio' is infinite at row 1"):
        model.score(bad)
    bad = x.copy()
    bad[2, 4] = 3.0
    with pytest.raises(
        ScoreInputError, match=r"categorical feature 'industry' needs integer codes in \[0, 3\)"
    ):
        model.score(bad)
    with pytest.raises(ScoreInputError, match="'flag_fraud' must be 0 or 1"):
        model.score(x, {"flag_fraud": np.full(4, 0.5)})
    with pytest.raises(ScoreInputError, match="differ in length"):
        model.score(x, {"flag_fraud": np.zeros(3)})


def test_unknown_category_as_nan_and_empty_batch_are_scored(model, trained):
    x = _clean_rows(trained, 3)
    x[:, 4] = np.nan
    assert np.all(np.isfinite(model.score(x).pd))
    empty = model.score(np.empty((0, len(model.spec.names))))
    assert len(empty) == 0 and empty.reasons == []


def test_a_customer_in_default_is_grade_d_restricted_with_the_default_reason_first(model, trained):
    # Given clean customers, row 2 in default, row 4 in default and under a fraud flag
    x = _clean_rows(trained, 6)
    flags = {name: x[:, col].copy() for name, col in FLAG_COLUMNS.items()}
    flags["flag_fraud"][4] = 1.0
    status = DefaultStatus(default_date=date(2024, 3, 31), default_type="dpd90")
    defaults = [None, None, status, None, status, None]
    # When scored
    result = model.score(x, flags, defaults=defaults)
    plain = model.score(x, flags)
    # Then the defaulted rows are D and restricted, PD and model tier untouched
    assert list(result.grade[[2, 4]]) == ["D", "D"]
    assert list(result.grade_index[[2, 4]]) == [model.scale.default_index] * 2
    assert result.tier[2] is Tier.RESTRICTED and result.tier[4] is Tier.RESTRICTED
    np.testing.assert_array_equal(result.pd, plain.pd)
    assert list(result.model_tier) == list(plain.model_tier)
    assert list(result.in_default) == [False, False, True, False, True, False]
    # and the reasons: default first; hard rule, then default; at most four in all
    assert result.reasons[2][0].code == "DEF01" and result.reasons[2][0].group == "default"
    assert result.reasons[2][0].text_en == "In default since 2024-03-31 (90+ days past due)"
    assert [r.code for r in result.reasons[4][:2]] == ["HR03", "DEF01"]
    assert all(len(rs) <= 4 for rs in result.reasons)
    assert result.reasons[0] == plain.reasons[0]
    # and the explanation shows the restricted tier
    assert model.explain(result, 2).tier is Tier.RESTRICTED and model.explain(result, 2).in_default
    with pytest.raises(ScoreInputError, match="defaults has 2 entries for 6 rows"):
        model.score(x, flags, defaults=[None, status])


def test_given_industry_among_the_reasons_when_scored_then_the_reason_names_the_industry(
    model, trained
):
    # Given customers scored by a model in which one industry carries extra risk
    result = model.score(_clean_rows(trained, 500))
    levels = model.spec.by_name("industry").categories
    # When a reason is the industry, then it names the industry, not its code
    named = [r for rs in result.reasons for r in rs if r.feature == "industry"]
    assert named
    assert all(r.label == levels[int(r.value)] for r in named)
    assert all(r.label is None for rs in result.reasons for r in rs if r.feature != "industry")
