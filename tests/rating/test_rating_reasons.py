from datetime import date

import numpy as np
import pytest

from features.spec import FeatureGroup
from rating.policy import DefaultStatus, RatingPolicy, default_status
from rating.reasons import (
    ReasonText,
    build_reason_dictionary,
    default_reason,
    derive_text,
    top_reasons,
)


def test_dictionary_has_one_stable_code_per_non_protected_feature(spec):
    # When the dictionary is built twice from the same spec
    first, second = build_reason_dictionary(spec), build_reason_dictionary(spec)
    # Then it is identical, codes are prefixed by group, and the protected feature has no entry
    assert first == second
    assert first.entry("owner_age") is None
    assert first.entry("debt_ratio").code == "FIN01"
    assert first.entry("current_ratio").code == "FIN02"
    assert first.entry("max_dpd_12m").code == "CRD01"
    assert first.entry("inflow_cv_12m").code == "TRX01"
    assert first.entry("industry").code.startswith("PRO")
    assert first.version == "reasons-spec-test-1"


def test_texts_are_derived_from_the_spec_descriptions(spec):
    dictionary = build_reason_dictionary(spec)
    debt = dictionary.entry("debt_ratio")
    assert (debt.text_en, debt.text_zh) == ("High debt ratio", "资产负债率偏高")
    current = dictionary.entry("current_ratio")
    assert (current.text_en, current.text_zh) == ("Low current ratio", "流动比率偏低")
    assert dictionary.entry("industry").text_en == "Unfavourable industry"
    assert derive_text(spec.by_name("flag_fraud")).text_en == "Fraud on record"


def test_overrides_replace_texts_but_not_for_protected_features(spec):
    text = ReasonText(text_en="Heavily leveraged", text_zh="杠杆过高")
    dictionary = build_reason_dictionary(spec, overrides={"debt_ratio": text})
    assert dictionary.entry("debt_ratio").text_en == "Heavily leveraged"
    with pytest.raises(ValueError, match="protected feature 'owner_age'"):
        build_reason_dictionary(spec, overrides={"owner_age": text})
    with pytest.raises(ValueError, match="'nope', which is not in the spec"):
        build_reason_dictionary(spec, overrides={"nope": text})


def test_codes_survive_spec_changes_and_are_never_reused(spec):
    # Given a dictionary, then a new spec without current_ratio and with features reordered
    old = build_reason_dictionary(spec)
    names = [n for n in reversed(spec.names) if n != "current_ratio"]
    new = build_reason_dictionary(spec.select(names), previous=old)
    # Then kept features keep their codes and the dropped code is retired
    assert new.entry("debt_ratio").code == "FIN01"
    assert new.entry("max_dpd_12m").code == "CRD01"
    assert "FIN02" in new.retired
    # And a feature added back later gets a fresh code, not the retired one
    again = build_reason_dictionary(spec, previous=new)
    assert again.entry("current_ratio").code == "FIN03"


def test_top_reasons_are_the_largest_positive_contributions_at_most_four(spec):
    # Given contributions where the protected feature is the largest risk driver
    contribs = np.zeros(len(spec.names))
    values = np.arange(len(spec.names), dtype=float)
    for name, value in {
        "owner_age": 3.0,
        "debt_ratio": 0.4,
        "current_ratio": 0.9,
        "max_dpd_12m": 0.2,
        "inflow_cv_12m": -0.7,
        "industry": 0.1,
        "flag_fraud": 0.05,
    }.items():
        contribs[spec.names.index(name)] = value
    # When the top reasons are taken
    reasons = top_reasons(contribs, spec, values)
    # Then they are the four largest positive, non-protected, largest first
    assert [r.feature for r in reasons] == [
        "current_ratio",
        "debt_ratio",
        "max_dpd_12m",
        "industry",
    ]
    assert all(r.contribution > 0 for r in reasons)
    assert reasons[0].group == FeatureGroup.FINANCIAL.value
    assert reasons[0].value == values[spec.names.index("current_ratio")]
    assert top_reasons(-np.abs(contribs), spec) == []


def test_hard_rule_reasons_come_first(spec):
    hits = RatingPolicy().apply_hard_rules(
        {"flag_sanctions_hit": 0, "flag_legal_enforcement": 1, "flag_fraud": 0}
    )
    contribs = np.full(len(spec.names), 0.1)
    reasons = top_reasons(contribs, spec, hard_rules=hits)
    assert reasons[0].code == "HR02" and reasons[0].group == "hard_rule"
    assert reasons[0].text_zh == "涉及司法强制执行"
    assert len(reasons) == 4


def test_wrong_shapes_are_rejected(spec):
    with pytest.raises(ValueError, match=r"shape \(9,\) in spec order"):
        top_reasons(np.zeros(3), spec)


def test_a_default_counts_from_its_date_and_the_first_one_gives_the_status():
    records = [(date(2024, 5, 1), "write_off"), (date(2023, 2, 1), "dpd90")]
    # Given defaults before and after a rating date, when the status is taken at each date
    assert default_status(records, date(2023, 1, 31)) is None
    assert default_status(records, date(2023, 2, 1)) == DefaultStatus(
        default_date=date(2023, 2, 1), default_type="dpd90"
    )
    assert default_status(records, date(2025, 1, 1)).default_date == date(2023, 2, 1)
    assert default_status([], date(2025, 1, 1)) is None


def test_hard_rules_then_the_default_then_features_never_dropping_a_status_reason(spec):
    hits = RatingPolicy().apply_hard_rules(
        {"flag_sanctions_hit": 1, "flag_legal_enforcement": 1, "flag_fraud": 1}
    )
    status = DefaultStatus(default_date=date(2024, 6, 30), default_type="insolvency")
    contribs = np.full(len(spec.names), 0.1)
    reasons = top_reasons(contribs, spec, hard_rules=hits, default=status)
    assert [r.code for r in reasons] == ["HR01", "HR02", "HR03", "DEF03"]
    assert reasons[3].text_zh == "2024-06-30起违约（破产）"
    one = top_reasons(contribs, spec, default=status)
    assert one[0].code == "DEF03" and len(one) == 4
    assert all(r.group == "financial" or r.feature for r in one[1:])
    assert top_reasons(contribs, spec, k=0, default=status) == [default_reason(status)]


def test_given_a_categorical_reason_when_given_then_it_names_the_level_not_the_code(spec):
    # Given the industry (code 2) and the debt ratio as the only adverse factors
    industries = spec.by_name("industry").categories
    contribs = np.zeros(len(spec.names))
    values = np.full(len(spec.names), 0.5)
    contribs[spec.names.index("industry")] = 0.3
    contribs[spec.names.index("debt_ratio")] = 0.2
    values[spec.names.index("industry")] = 2.0
    # When the reasons are taken
    industry, debt = top_reasons(contribs, spec, values)
    # Then the industry reason carries the industry's name, the numeric one no label
    assert (industry.feature, industry.value, industry.label) == ("industry", 2.0, industries[2])
    assert (debt.feature, debt.label) == ("debt_ratio", None)


@pytest.mark.parametrize("value", [float("nan"), 1.5, -1.0, 99.0])
def test_given_an_unknown_category_code_when_labelled_then_no_label(spec, value):
    assert spec.by_name("industry").category_label(value) is None
    assert spec.by_name("debt_ratio").category_label(1.0) is None
