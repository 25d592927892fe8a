"""`record_sufficiency` (one request's records) agrees with `data_sufficiency` (the tables)."""

from __future__ import annotations

from datetime import date

import pytest

from rating.judgement import DataSufficiencyConfig
from rating.sufficiency import data_sufficiency, record_sufficiency, sufficiency_from_row
from tests.serving.factory import make_portfolio


@pytest.mark.parametrize(
    "config",
    [
        DataSufficiencyConfig(),
        DataSufficiencyConfig(max_months_since_statement=6, min_transaction_months=9),
        DataSufficiencyConfig(any_of=("statement",), min_transaction_months=12),
    ],
)
def test_given_a_portfolio_when_judged_per_customer_then_same_as_the_table(config):
    # Given a sample portfolio, rated at dates before, inside and after its history
    raw = make_portfolio(30, seed=7)
    ids = list(raw.customers["customer_id"])
    for as_of in (date(2022, 1, 15), date(2023, 2, 28), date(2024, 6, 30)):
        table = data_sufficiency(
            ids, raw.financial_statements, raw.credit_facilities, raw.transactions, as_of, config
        )
        for i, cid in enumerate(ids):
            # When one customer's records are judged alone
            alone = record_sufficiency(
                raw.financial_statements.loc[
                    raw.financial_statements["customer_id"] == cid, "published_date"
                ],
                raw.credit_facilities.loc[raw.credit_facilities["customer_id"] == cid, "opened"],
                raw.transactions.loc[raw.transactions["customer_id"] == cid, "ts"],
                as_of,
                config,
            )
            # Then the answer is the table's, reasons included
            assert alone == sufficiency_from_row(table.iloc[i], config), (cid, as_of)


def test_given_no_records_when_judged_then_insufficient_with_both_reasons():
    found = record_sufficiency([], [], [], date(2024, 6, 30))
    assert not found.sufficient
    assert [r.code for r in found.reasons] == ["DS01", "DS02"]
