"""Record digests are pinned: a faster `features.digest` must give every value it gave before.

The values below were computed by the digest code as first released (batch decisions and
by-id reads have recorded them); replay compares against them, so none may change.
"""

from __future__ import annotations

import pandas as pd

from features.digest import iter_record_digests, record_digests
from tests.serving.factory import make_portfolio

PINNED = {
    "C00000": "c49a52be7ed23fbe3b108a16d405e1f62ccb51809a4233ecf3f82f390659e9ee",
    "C00001": "a55ec7c9be94d95e0aff4e8ac4a5298ab2013d420a4f3298fa3e869f6302eb3e",
    "C00002": "7c9de05e482858ab9b99fae9942e47e2c6517a979e27478ff2dd074c895b0bfd",
    "C09999": "137a25f628ae136db3b386153d9fd5e1f0cf4ae83c55299dee80b85501f30982",
}
"""Three customers (one with a default, unpaid instalments with null dates) and one unknown."""


def _tables() -> dict[str, pd.DataFrame]:
    tables = dict(make_portfolio(3, seed=3).items())
    tables["defaults"] = pd.DataFrame(
        {
            "customer_id": ["C00001"],
            "default_date": [pd.Timestamp("2024-06-30")],
            "default_type": ["dpd90"],
        }
    )
    return tables


def test_given_pinned_records_when_digested_then_every_digest_is_the_released_one():
    # Given the pinned portfolio
    tables = _tables()
    # When digested all at once, per customer and chunk by chunk
    together = record_digests(tables, list(PINNED))
    alone = {cid: record_digests(tables, [cid])[cid] for cid in PINNED}
    chunks = list(iter_record_digests(tables, [["C00002"], ["C00000", "C00001"], ["C09999"]]))
    # Then every digest is the pinned value, and the row counts are the customer's rows
    assert {cid: sha for cid, (sha, _) in together.items()} == PINNED
    assert alone == together
    assert {k: v for chunk in chunks for k, v in chunk.items()} == together
    assert together["C00001"][1] == {
        "customers": 1,
        "financial_statements": 8,
        "credit_facilities": 2,
        "repayments": 24,
        "transactions": 120,
        "defaults": 1,
    }
    assert sum(together["C09999"][1].values()) == 0
