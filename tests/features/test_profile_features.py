from __future__ import annotations

from datetime import date

import pytest

from features.catalog import compute_features
from tests.features.raw_builders import AS_OF, make_raw, one, ts


def test_profile_codes_ages_and_flags() -> None:
    # Given a customer founded 10 years and onboarded 30 months before as_of, with a fraud flag
    raw = make_raw(
        customers=[
            {
                "customer_id": "a",
                "industry": "real_estate",
                "region": "west",
                "size_class": "large",
                "founded_date": ts("2014-06-30"),
                "onboarding_date": ts("2021-12-31"),
                "fraud": True,
            }
        ]
    )
    # When
    frame = compute_features(raw, AS_OF)
    # Then codes are the index in the schema tuples, ages are exact, flags 0/1
    assert one(frame, "industry") == 3.0
    assert one(frame, "region") == 5.0
    assert one(frame, "size_class") == 3.0
    assert one(frame, "company_age_years") == pytest.approx(3653 / 365.25)
    assert one(frame, "months_as_customer") == 30.0
    assert one(frame, "flag_fraud") == 1.0
    assert one(frame, "flag_sanctions_hit") == 0.0


def test_unknown_category_is_nan_and_future_customer_absent() -> None:
    # Given one customer with an unknown industry and one onboarded after as_of
    raw = make_raw(
        customers=[
            {"customer_id": "a", "industry": "space_mining"},
            {"customer_id": "b", "onboarding_date": ts("2024-07-01")},
        ]
    )
    # When
    frame = compute_features(raw, AS_OF)
    # Then the unknown level is NaN and the future customer does not exist yet
    assert frame["customer_id"].tolist() == ["a"]
    assert frame["industry"].isna().all()
    # ... and exists from its onboarding day on
    assert compute_features(raw, date(2024, 7, 1))["customer_id"].tolist() == ["a", "b"]
