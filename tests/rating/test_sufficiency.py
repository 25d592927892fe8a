"""The data-sufficiency rule, per customer and from raw tables at an as-of date."""

from __future__ import annotations

from datetime import date

import pandas as pd

from rating.judgement import DataSufficiencyConfig
from rating.sufficiency import data_sufficiency, sufficiency_from_row, sufficiency_of

AS_OF = date(2025, 6, 30)


def test_no_recent_statement_and_no_facility_is_insufficient() -> None:
    rule = DataSufficiencyConfig()
    empty = sufficiency_of(None, 0, 0, rule)
    assert not empty.sufficient
    assert [r.code for r in empty.reasons] == ["DS01", "DS02"]
    assert "18 months" in empty.reasons[0].text_en
    assert sufficiency_of(None, 1, 0, rule).sufficient
    assert sufficiency_of(17.9, 0, 0, rule).sufficient
    assert not sufficiency_of(18.1, 0, 0, rule).sufficient


def test_transaction_months_when_required() -> None:
    rule = DataSufficiencyConfig(min_transaction_months=6)
    thin = sufficiency_of(3.0, 2, 5, rule)
    assert [r.code for r in thin.reasons] == ["DS03"]


def test_from_raw_tables_only_records_known_at_as_of_count() -> None:
    # given C1 with an old statement and a facility opened after as_of, C2 with a recent
    # statement, C3 with a facility and transactions in three months
    statements = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C2"],
            "published_date": pd.to_datetime(["2023-01-15", "2025-03-01", "2025-07-05"]),
        }
    )
    facilities = pd.DataFrame(
        {"customer_id": ["C1", "C3"], "opened": pd.to_datetime(["2025-07-01", "2020-01-01"])}
    )
    transactions = pd.DataFrame(
        {
            "customer_id": ["C3"] * 4,
            "ts": pd.to_datetime(
                ["2025-01-03 09:00", "2025-01-20 10:00", "2025-02-02 11:00", "2025-06-30 18:00"]
            ),
        }
    )
    # when judged at as_of
    table = data_sufficiency(["C1", "C2", "C3"], statements, facilities, transactions, AS_OF)
    rows = table.set_index("customer_id")
    # then C1 is insufficient (the facility is later), C2 and C3 are sufficient
    assert rows["sufficient"].to_dict() == {"C1": False, "C2": True, "C3": True}
    assert rows.loc["C1", "reasons"] == "DS01;DS02"
    assert rows.loc["C1", "facilities"] == 0
    assert rows.loc["C2", "months_since_statement"] == 4.0
    assert rows.loc["C3", "transaction_months"] == 3
    assert pd.isna(rows.loc["C3", "months_since_statement"])
    assert not sufficiency_from_row(rows.reset_index().iloc[0], DataSufficiencyConfig()).sufficient
