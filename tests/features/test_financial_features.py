from __future__ import annotations

import math

import pytest

from features.catalog import compute_features
from tests.features.raw_builders import AS_OF, make_raw, one, ts

CUSTOMER = [{"customer_id": "a"}]


def _statement(period_end: str, published: str, **values: float) -> dict:
    return {
        "customer_id": "a",
        "period_end": ts(period_end),
        "published_date": ts(published),
        **values,
    }


def test_latest_statement_ratios_by_hand() -> None:
    # Given a half-year statement published before as_of and a later one published after it
    raw = make_raw(
        customers=CUSTOMER,
        statements=[
            _statement("2023-12-31", "2024-04-30", period_months=6, interest_expense=40.0),
            _statement("2024-03-31", "2024-07-15", total_liabilities=900.0),
        ],
    )
    # When
    frame = compute_features(raw, AS_OF)
    # Then ratios come from the 2023-12-31 statement only (defaults in raw_builders)
    assert one(frame, "debt_ratio") == pytest.approx(500 / 1000)
    assert one(frame, "current_ratio") == pytest.approx(400 / 200)
    assert one(frame, "cash_ratio") == pytest.approx(100 / 200)
    assert one(frame, "net_margin") == pytest.approx(100 / 1000)
    assert one(frame, "return_on_assets") == pytest.approx(100 * 2 / 1000)  # annualised 6 months
    assert one(frame, "ocf_to_liabilities") == pytest.approx(150 * 2 / 500)
    assert one(frame, "interest_coverage") == pytest.approx((1000 - 800) / 40)
    assert one(frame, "months_since_period_end") == 6.0
    assert one(frame, "no_statement") == 0.0
    # No statement a year earlier: growth and changes are undefined
    assert math.isnan(one(frame, "revenue_growth_yoy"))
    assert math.isnan(one(frame, "debt_ratio_change_1y"))


def test_change_against_statement_a_year_earlier() -> None:
    # Given statements at 2023-12-31, 2023-06-30 and 2022-12-31 (the year-earlier one)
    raw = make_raw(
        customers=CUSTOMER,
        statements=[
            _statement("2023-12-31", "2024-03-31", total_liabilities=600.0, revenue=1200.0),
            _statement("2023-06-30", "2023-08-31", period_months=6, total_liabilities=100.0),
            _statement("2022-12-31", "2023-03-31", total_liabilities=450.0, current_assets=300.0),
        ],
    )
    # When
    frame = compute_features(raw, AS_OF)
    # Then changes and growth compare with 2022-12-31 (annual revenue 1200 vs 1000)
    assert one(frame, "debt_ratio_change_1y") == pytest.approx(0.6 - 0.45)
    assert one(frame, "current_ratio_change_1y") == pytest.approx(2.0 - 1.5)
    assert one(frame, "net_margin_change_1y") == pytest.approx(100 / 1200 - 0.1)
    assert one(frame, "revenue_growth_yoy") == pytest.approx(0.2)


def test_undefined_and_extreme_ratios_are_nan_or_clipped() -> None:
    # Given zero current liabilities, zero revenue, no interest with a loss, tiny assets
    raw = make_raw(
        customers=CUSTOMER,
        statements=[
            _statement(
                "2023-12-31",
                "2024-03-31",
                current_liabilities=0.0,
                revenue=0.0,
                operating_costs=50.0,
                interest_expense=0.0,
                total_assets=1.0,
                current_assets=1.0,
                cash=1.0,
                total_liabilities=500.0,
            )
        ],
    )
    # When
    frame = compute_features(raw, AS_OF)
    # Then undefined ratios are NaN, extreme ones clipped
    assert math.isnan(one(frame, "current_ratio"))
    assert math.isnan(one(frame, "net_margin"))
    assert math.isnan(one(frame, "interest_coverage"))
    assert one(frame, "debt_ratio") == 10.0
    assert one(frame, "return_on_assets") == 10.0


def test_no_statement_flag() -> None:
    # Given a customer whose only statement is published after as_of
    raw = make_raw(customers=CUSTOMER, statements=[_statement("2024-03-31", "2024-07-01")])
    # When
    frame = compute_features(raw, AS_OF)
    # Then the statement is invisible
    assert one(frame, "no_statement") == 1.0
    assert math.isnan(one(frame, "debt_ratio"))
