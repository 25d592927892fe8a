from __future__ import annotations

import math

import pytest

from features.catalog import FeatureConfig, compute_features
from tests.features.raw_builders import AS_OF, make_raw, one, ts

CUSTOMER = [{"customer_id": "a"}, {"customer_id": "quiet"}]


def _txn(i: int, when: str, amount: float, direction: str = "in", cp: str = "cp1") -> dict:
    return {
        "txn_id": f"t{i}",
        "customer_id": "a",
        "ts": ts(when),
        "amount": amount,
        "direction": direction,
        "counterparty_id": cp,
    }


def _raw():
    return make_raw(
        customers=CUSTOMER,
        transactions=[
            _txn(1, "2024-06-30 23:59", 300.0),  # month 0, last minute of the as-of day
            _txn(2, "2024-07-01 00:00", 999.0),  # after as_of: invisible
            _txn(3, "2024-06-01", 100.0, "out"),  # month 0
            _txn(4, "2024-05-31", 100.0, cp="cp2"),  # month 1
            _txn(5, "2024-04-15", 200.0, cp="cp2"),  # month 2
            _txn(6, "2023-12-01", 400.0),  # month 6
            _txn(7, "2023-07-01", 3000.0, cp="cp3"),  # month 11
            _txn(8, "2023-06-30", 5000.0),  # month 12: outside every window
        ],
    )


def test_flows_by_window() -> None:
    frame = compute_features(_raw(), AS_OF)
    assert one(frame, "inflow_1m") == 300.0
    assert one(frame, "inflow_3m") == 600.0
    assert one(frame, "inflow_12m") == 4000.0
    assert one(frame, "outflow_1m") == 100.0
    assert one(frame, "netflow_12m") == 3900.0
    assert one(frame, "netflow_to_inflow_3m") == pytest.approx(500 / 600)


def test_stability_trend_activity_and_concentration() -> None:
    frame = compute_features(_raw(), AS_OF)
    monthly = [300, 100, 200, 0, 0, 0, 400, 0, 0, 0, 0, 3000]
    mean = sum(monthly) / 12
    std = math.sqrt(sum((m - mean) ** 2 for m in monthly) / 12)
    assert one(frame, "inflow_cv_12m") == pytest.approx(std / mean)
    assert one(frame, "inflow_trend") == pytest.approx((600 / 3) / (3400 / 9))
    assert one(frame, "active_months_12m") == 5.0
    assert one(frame, "dormant_months_12m") == 7.0
    shares = [700 / 4000, 300 / 4000, 3000 / 4000]  # cp1, cp2, cp3
    assert one(frame, "inflow_hhi_12m") == pytest.approx(sum(s * s for s in shares))
    assert one(frame, "top1_inflow_share_12m") == pytest.approx(0.75)
    # 6 window transactions, mean 4100 / 6 = 683.3: none is 5x the mean
    assert one(frame, "large_txn_share_12m") == 0.0


def test_large_transaction_threshold_comes_from_config() -> None:
    # Given a 4x multiple: 4 * 683.3 = 2733.3 < 3000
    frame = compute_features(_raw(), AS_OF, FeatureConfig(large_txn_multiple=4.0))
    # Then one of six transactions is large
    assert one(frame, "large_txn_share_12m") == pytest.approx(1 / 6)


def test_customer_without_transactions() -> None:
    frame = compute_features(_raw(), AS_OF)
    assert one(frame, "inflow_12m", "quiet") == 0.0
    assert one(frame, "dormant_months_12m", "quiet") == 12.0
    assert math.isnan(one(frame, "inflow_cv_12m", "quiet"))
    assert math.isnan(one(frame, "inflow_hhi_12m", "quiet"))
