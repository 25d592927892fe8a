"""Per-customer digests of raw records: order- and dtype-blind, sensitive to any value."""

from __future__ import annotations

import pandas as pd

from features.digest import iter_record_digests, record_digests
from tests.serving.factory import make_portfolio


def test_given_the_same_records_in_another_order_and_dtype_when_digested_then_equal():
    # Given a portfolio, and the same tables shuffled with dates as Python objects
    raw = make_portfolio(6, seed=3)
    tables = dict(raw.items())
    shuffled = {name: frame.sample(frac=1.0, random_state=1) for name, frame in tables.items()}
    statements = shuffled["financial_statements"].copy()
    statements["published_date"] = pd.to_datetime(statements["published_date"]).dt.date
    shuffled["financial_statements"] = statements.astype({"published_date": "object"})
    ids = sorted(raw.customers["customer_id"])
    # When both are digested
    first, second = record_digests(tables, ids), record_digests(shuffled, ids)
    # Then every customer's digest and row counts are the same, and differ between customers
    assert first == second
    assert len({sha for sha, _ in first.values()}) == len(ids)
    assert first[ids[0]][1]["customers"] == 1
    # And digesting chunk by chunk gives the same as all at once
    chunks = list(iter_record_digests(tables, [ids[:2], ids[2:]]))
    assert {**chunks[0], **chunks[1]} == first


def test_given_one_value_changed_when_digested_then_only_that_customer_differs():
    raw = make_portfolio(6, seed=3)
    tables = dict(raw.items())
    ids = sorted(raw.customers["customer_id"])
    transactions = tables["transactions"].copy()
    row = transactions.index[transactions["customer_id"] == ids[1]][0]
    transactions.loc[row, "amount"] = transactions.loc[row, "amount"] + 0.01
    changed = {**tables, "transactions": transactions}
    before, after = record_digests(tables, ids), record_digests(changed, ids)
    assert [cid for cid in ids if before[cid] != after[cid]] == [ids[1]]
