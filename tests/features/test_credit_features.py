from __future__ import annotations

import math

import pytest

from features.catalog import compute_features
from tests.features.raw_builders import AS_OF, instalments, make_raw, one, ts

CUSTOMER = [{"customer_id": "a"}, {"customer_id": "clean"}]


def _raw():
    # Facility f1 (limit 1000): monthly instalments of 100 from 2023-09-30 to 2024-08-31.
    dues = [
        "2023-09-30", "2023-10-31", "2023-11-30", "2023-12-31", "2024-01-31", "2024-02-29",
        "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30", "2024-07-31", "2024-08-31",
    ]  # fmt: skip
    paid = [
        "2023-09-30", "2023-12-15", "2023-11-30", "2023-12-31", "2024-01-31", "2024-02-29",
        "2024-03-31", "2024-05-10", None, None, None, None,
    ]  # fmt: skip
    rows = instalments("f1", "a", dues, paid)
    # instalment 9 (due 2024-05-31) is paid on 2024-07-10: after as_of, so unpaid at as_of
    rows[8].update(paid_date=ts("2024-07-10"), amount_paid=100.0)
    return make_raw(
        customers=CUSTOMER,
        facilities=[
            {"facility_id": "f1", "customer_id": "a", "opened": ts("2023-09-01")},
            # f2: opened 2 months ago, no schedule yet, counts as active (not matured)
            {"facility_id": "f2", "customer_id": "a", "opened": ts("2024-05-01"), "limit": 500.0},
            # f3: matured and fully repaid: inactive
            {
                "facility_id": "f3",
                "customer_id": "a",
                "opened": ts("2020-01-01"),
                "maturity_date": ts("2021-01-01"),
            },
            # f4: opened after as_of: unknown
            {"facility_id": "f4", "customer_id": "a", "opened": ts("2024-07-01")},
        ],
        repayments=rows,
    )


def test_dpd_windows_counts_and_rates_by_hand() -> None:
    # Given the schedule above (45 days late on 2023-10-31, 10 on 2024-04-30, 2024-05-31 unpaid)
    frame = compute_features(_raw(), AS_OF)
    # Then, instalments due in the 12 months to 2024-06-30 are the 10 from 2023-09-30 on
    assert one(frame, "max_dpd_12m") == 45.0  # 2023-10-31 -> 2023-12-15
    assert one(frame, "max_dpd_3m") == 30.0  # 2024-05-31 unpaid at as_of
    assert one(frame, "overdue_rate_12m") == pytest.approx(3 / 10)  # due 06-30 unpaid: dpd 0
    assert one(frame, "dpd30_count_12m") == 2.0
    assert one(frame, "dpd60_count_12m") == 0.0
    assert one(frame, "dpd90_count_12m") == 0.0
    assert one(frame, "days_since_last_delinquency") == 0.0  # still past due


def test_exposure_is_rebuilt_point_in_time() -> None:
    # Given the same data
    frame = compute_features(_raw(), AS_OF)
    # Then active facilities are f1 and f2; exposure = 4 unpaid (05-31 .. 08-31) of 100
    assert one(frame, "active_facilities") == 2.0
    assert one(frame, "utilisation") == pytest.approx(400 / 1500)
    assert one(frame, "overdue_amount_to_limit") == pytest.approx(100 / 1500)  # only 05-31
    assert one(frame, "facilities_opened_6m") == 1.0


def test_days_since_last_delinquency_after_cure_and_never() -> None:
    # Given as_of 2024-05-20, before instalment 9 is due: last delinquency cured 2024-05-10
    frame = compute_features(_raw(), ts("2024-05-20").date())
    # Then it is 10 days ago; a customer without credit is "never" (sentinel) and has NaN ratios
    assert one(frame, "days_since_last_delinquency") == 10.0
    assert one(frame, "days_since_last_delinquency", "clean") == 3650.0
    assert one(frame, "active_facilities", "clean") == 0.0
    assert math.isnan(one(frame, "utilisation", "clean"))
    assert math.isnan(one(frame, "max_dpd_12m", "clean"))
