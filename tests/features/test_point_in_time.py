from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.asof import count_later, cut_tables
from features.catalog import compute_features
from features.io import RawTables
from tests.features.raw_builders import AS_OF, cut_extract, instalments, make_raw, one, ts


def _base() -> RawTables:
    return make_raw(
        customers=[{"customer_id": "a"}],
        statements=[
            {"customer_id": "a", "period_end": ts("2023-12-31"), "published_date": ts("2024-04-30")}
        ],
        facilities=[{"facility_id": "f1", "customer_id": "a", "opened": ts("2024-01-01")}],
        repayments=instalments(
            "f1", "a", ["2024-04-30", "2024-05-31", "2024-06-30"], ["2024-04-30", None, None]
        ),
        transactions=[
            {"txn_id": "t1", "customer_id": "a", "ts": ts("2024-06-10"), "amount": 100.0}
        ],
    )


def _append(raw: RawTables, table: str, rows: list[dict]) -> RawTables:
    extra = make_raw(**{table: rows})
    field = {"statements": "financial_statements", "facilities": "credit_facilities"}.get(
        table, table
    )
    tables = dict(raw.items())
    tables[field] = pd.concat([tables[field], getattr(extra, field)], ignore_index=True)
    return RawTables(**tables)


FUTURE = {
    "statement published later": (
        "statements",
        [{"customer_id": "a", "period_end": ts("2024-03-31"), "published_date": ts("2024-07-01"),
          "total_liabilities": 999.0}],
    ),
    "transaction the next morning": (
        "transactions",
        [{"txn_id": "t2", "customer_id": "a", "ts": ts("2024-07-01 00:00:01"), "amount": 5e6}],
    ),
    "facility opened later": (
        "facilities",
        [{"facility_id": "f2", "customer_id": "a", "opened": ts("2024-07-02"), "limit": 5e6}],
    ),
    "default after as_of": ("defaults", [{"customer_id": "a", "default_date": ts("2024-07-05")}]),
    "customer onboarded later": (
        "customers",
        [{"customer_id": "z", "onboarding_date": ts("2024-08-01")}],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", FUTURE, ids=list(FUTURE))
def test_records_dated_after_as_of_change_nothing(case: str) -> None:
    # Given the features at as_of
    before = compute_features(_base(), AS_OF)
    # When a record dated after as_of is appended
    table, rows = FUTURE[case]
    after = compute_features(_append(_base(), table, rows), AS_OF)
    # Then no feature changes
    pd.testing.assert_frame_equal(before, after)


def test_late_payment_after_as_of_changes_nothing() -> None:
    # Given the unpaid 2024-05-31 instalment, when it is paid on 2024-07-20 (after as_of)
    raw = _base()
    paid = raw.repayments.copy()
    paid.loc[1, ["paid_date", "amount_paid"]] = [ts("2024-07-20"), 100.0]
    later = RawTables(**{**dict(raw.items()), "repayments": paid})
    # Then at as_of it is still unpaid: same features, 30 days past due
    before, after = compute_features(raw, AS_OF), compute_features(later, AS_OF)
    pd.testing.assert_frame_equal(before, after)
    assert one(after, "max_dpd_3m") == 30.0


def test_statement_invisible_before_published_date() -> None:
    raw = _base()
    day_before = compute_features(raw, date(2024, 4, 29))
    on_the_day = compute_features(raw, date(2024, 4, 30))
    assert one(day_before, "no_statement") == 1.0
    assert one(on_the_day, "no_statement") == 0.0


@pytest.mark.parametrize("snapshot", [date(2022, 12, 31), date(2024, 3, 31)])
def test_label_window_never_leaks_into_features(generated_raw: RawTables, snapshot: date) -> None:
    # Given the full history and the same history cut at the snapshot
    full = compute_features(generated_raw, snapshot)
    cut = compute_features(cut_extract(generated_raw, snapshot), snapshot)
    # Then the features at the snapshot are identical
    pd.testing.assert_frame_equal(full, cut, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("snapshot", [date(2022, 12, 31), date(2024, 3, 31)])
def test_given_full_history_when_cut_then_the_extract_taken_at_as_of(
    generated_raw: RawTables, snapshot: date
) -> None:
    # When the generated history is cut at the snapshot
    cut, left_out = cut_tables(generated_raw.items(), snapshot)
    # Then every table is what an extract taken then would hold
    expected = cut_extract(generated_raw, snapshot)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(
            cut[name].reset_index(drop=True), frame.reset_index(drop=True), obj=name
        )
        assert left_out.dropped[name] == len(getattr(generated_raw, name)) - len(frame)
    # And counting without cutting finds the same
    assert count_later(generated_raw.items(), snapshot) == left_out
    assert left_out.unpaid > 0 and not left_out.empty


def test_given_an_unreadable_date_when_cut_then_the_record_is_kept_for_validation() -> None:
    customers = _base().customers.astype({"onboarding_date": object})
    customers.loc[0, "onboarding_date"] = "not a date"
    cut, left_out = cut_tables([("customers", customers)], AS_OF)
    assert len(cut["customers"]) == 1
    assert left_out.empty


def test_given_tables_out_of_contract_order_when_cut_then_refused() -> None:
    raw = _base()
    with pytest.raises(ValueError, match="contract order"):
        cut_tables([("repayments", raw.repayments), ("customers", raw.customers)], AS_OF)
