"""Covenant checks: thresholds crossed, missing reports, terms in force at the date."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.covenants import CovenantConfig, CovenantTemplate, template_terms
from monitoring.covenants import CHECK_COLUMNS, breach_text, check_covenants, terms_in_force

AS_OF = date(2025, 6, 30)


def _terms(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["customer_id", "covenant", "threshold", "effective_date", "expiry_date"]
    )
    frame["effective_date"] = pd.to_datetime(frame["effective_date"])
    frame["expiry_date"] = pd.to_datetime(frame["expiry_date"])
    return frame


def _features(rows: list[dict]) -> pd.DataFrame:
    columns = ["debt_ratio", "interest_coverage", "current_ratio", "months_since_period_end"]
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = float("nan")
    return frame


@pytest.mark.parametrize(
    ("covenant", "feature", "threshold", "observed", "breached"),
    [
        ("max_debt_ratio", "debt_ratio", 0.8, 0.79, False),
        ("max_debt_ratio", "debt_ratio", 0.8, 0.8, False),
        ("max_debt_ratio", "debt_ratio", 0.8, 0.81, True),
        ("min_interest_coverage", "interest_coverage", 1.5, 1.6, False),
        ("min_interest_coverage", "interest_coverage", 1.5, 1.5, False),
        ("min_interest_coverage", "interest_coverage", 1.5, 1.4, True),
        ("min_current_ratio", "current_ratio", 1.0, 0.99, True),
    ],
)
def test_given_a_ratio_covenant_when_observed_crosses_threshold_then_breached(
    covenant, feature, threshold, observed, breached
):
    # Given one term in force and the feature at the date
    terms = _terms([("A", covenant, threshold, "2024-01-01", None)])
    features = _features([{"customer_id": "A", feature: observed}])
    # When checked
    check = check_covenants(terms, features, AS_OF).iloc[0]
    # Then it is breached exactly when the observed value lies beyond the threshold
    assert bool(check["breached"]) is breached
    assert check["observed"] == pytest.approx(observed)
    assert check["threshold"] == threshold and check["feature"] == feature
    assert check["days_past_reporting_due"] == 0


def test_given_an_unobservable_ratio_when_checked_then_not_a_breach():
    terms = _terms([("A", "max_debt_ratio", 0.8, "2024-01-01", None)])
    check = check_covenants(terms, _features([{"customer_id": "A"}]), AS_OF).iloc[0]
    assert not check["breached"] and pd.isna(check["observed"])


def test_given_reporting_covenant_when_statement_is_late_then_days_past_due():
    # Given reporting every 6 months with 120 days' grace
    config = CovenantConfig(reporting_grace_days=120)
    terms = _terms(
        [
            ("fresh", "reporting_months", 6, "2024-01-01", None),
            ("late", "reporting_months", 6, "2024-01-01", None),
            ("none", "reporting_months", 6, "2024-01-01", None),
            ("new", "reporting_months", 6, "2025-05-01", None),
        ]
    )
    features = _features(
        [
            {"customer_id": "fresh", "months_since_period_end": 9.0},  # 6 months + 90 days
            {"customer_id": "late", "months_since_period_end": 12.0},
            {"customer_id": "none"},
            {"customer_id": "new"},
        ]
    )
    checks = check_covenants(terms, features, AS_OF, config).set_index("customer_id")
    # Then within the grace nothing is due, past it the report is missing by so many days
    assert not checks.loc["fresh", "breached"]
    assert checks.loc["late", "breached"]
    assert checks.loc["late", "days_past_reporting_due"] == round(6 * 365.25 / 12 - 120)
    # And without any statement the clock runs from the term's effective date
    assert checks.loc["none", "breached"]
    expected = (pd.Timestamp(AS_OF) - pd.Timestamp("2024-01-01")).days - 6 * 365.25 / 12 - 120
    assert checks.loc["none", "days_past_reporting_due"] == round(expected)
    assert not checks.loc["new", "breached"]
    assert "no statement known" in breach_text(checks.loc["none"])
    assert "last period ended 12 months ago" in breach_text(checks.loc["late"])


def test_given_terms_over_time_when_checked_then_only_those_in_force_count():
    terms = _terms(
        [
            ("A", "max_debt_ratio", 0.9, "2023-01-01", None),
            ("A", "max_debt_ratio", 0.7, "2024-06-01", None),  # tightened later: this one wins
            ("B", "max_debt_ratio", 0.5, "2023-01-01", "2025-01-01"),  # expired
            ("C", "max_debt_ratio", 0.5, "2025-07-01", None),  # not yet in force
        ]
    )
    live = terms_in_force(terms, AS_OF)
    assert list(live["customer_id"]) == ["A"] and live["threshold"].iloc[0] == 0.7
    features = _features([{"customer_id": c, "debt_ratio": 0.8} for c in "ABC"])
    checks = check_covenants(terms, features, AS_OF)
    assert list(checks.columns) == CHECK_COLUMNS
    assert checks["customer_id"].tolist() == ["A"] and checks["breached"].all()
    assert breach_text(checks.iloc[0]) == "debt_ratio 0.8 breaches max 0.7"
    assert check_covenants(terms.iloc[:0], features, AS_OF).empty


def test_given_a_tier_template_when_written_then_contract_rows_validate():
    config = CovenantConfig(
        templates={"high": CovenantTemplate(max_debt_ratio=0.8, reporting_months=6)}
    )
    terms = template_terms(["A", "B"], ["high", "low"], [date(2024, 1, 1)] * 2, config)
    # A tier without a template writes no covenant
    assert terms["customer_id"].tolist() == ["A", "A"]
    assert dict(zip(terms["covenant"], terms["threshold"], strict=True)) == {
        "max_debt_ratio": 0.8,
        "reporting_months": 6.0,
    }
    with pytest.raises(ValueError, match="max_debt_ratio"):
        CovenantTemplate(max_debt_ratio=-1.0)
