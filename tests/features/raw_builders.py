"""Small hand-made raw tables whose features can be computed by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import pandas as pd

from features.io import RawTables
from features.schema import SCHEMAS

_DEFAULTS: dict[str, dict[str, Any]] = {
    "customers": {
        "industry": "manufacturing",
        "region": "east",
        "size_class": "small",
        "legal_form": "limited",
        "founded_date": pd.Timestamp("2010-01-01"),
        "onboarding_date": pd.Timestamp("2015-01-01"),
        "sanctions_hit": False,
        "legal_enforcement": False,
        "fraud": False,
    },
    "financial_statements": {
        "period_months": 12,
        "audited": True,
        "total_assets": 1000.0,
        "total_liabilities": 500.0,
        "current_assets": 400.0,
        "current_liabilities": 200.0,
        "cash": 100.0,
        "revenue": 1000.0,
        "operating_costs": 800.0,
        "net_income": 100.0,
        "operating_cash_flow": 150.0,
        "interest_expense": 20.0,
    },
    "credit_facilities": {
        "facility_type": "term_loan",
        "currency": "CNY",
        "maturity_date": pd.Timestamp("2030-01-01"),
        "limit": 1000.0,
        "outstanding": 0.0,
    },
    "repayments": {"paid_date": pd.NaT, "amount_paid": 0.0},
    "transactions": {"direction": "in", "counterparty_id": "cp1", "channel": "wire"},
    "defaults": {"default_type": "dpd90"},
}


def _frame(table: str, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    columns = list(SCHEMAS[table].columns)
    records = [{**_DEFAULTS[table], **row} for row in rows]
    frame = pd.DataFrame(records, columns=columns)
    return SCHEMAS[table].validate(frame) if records else SCHEMAS[table].coerce_dtype(frame)


def make_raw(
    customers: Iterable[dict[str, Any]] = (),
    statements: Iterable[dict[str, Any]] = (),
    facilities: Iterable[dict[str, Any]] = (),
    repayments: Iterable[dict[str, Any]] = (),
    transactions: Iterable[dict[str, Any]] = (),
    defaults: Iterable[dict[str, Any]] = (),
) -> RawTables:
    """Raw tables from row dicts; unspecified columns take the defaults above."""
    return RawTables(
        customers=_frame("customers", customers),
        financial_statements=_frame("financial_statements", statements),
        credit_facilities=_frame("credit_facilities", facilities),
        repayments=_frame("repayments", repayments),
        transactions=_frame("transactions", transactions),
        defaults=_frame("defaults", defaults),
    )


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def instalments(
    facility_id: str,
    customer_id: str,
    dues: list[str],
    paid: list[str | None],
    amount: float = 100.0,
) -> list[dict[str, Any]]:
    """Instalments 1..n of one facility; paid entries None mean unpaid."""
    return [
        {
            "facility_id": facility_id,
            "customer_id": customer_id,
            "instalment_no": i + 1,
            "due_date": ts(due),
            "amount_due": amount,
            "paid_date": ts(p) if p else pd.NaT,
            "amount_paid": amount if p else 0.0,
        }
        for i, (due, p) in enumerate(zip(dues, paid, strict=True))
    ]


AS_OF = date(2024, 6, 30)


def one(frame, column: str, customer_id: str = "a") -> float:
    """The value of one feature for one customer."""
    return float(frame.loc[frame["customer_id"] == customer_id, column].iloc[0])


def cut_extract(raw: RawTables, as_of: date) -> RawTables:
    """The extract a bank would have handed over at the end of ``as_of`` (the tests' oracle).

    Customers onboarded by then, with their statements published, facilities opened (with
    every instalment of their schedule), transactions booked and defaults recorded by then;
    a payment made later is not made yet. Written independently of ``features.asof``.
    """
    day = pd.Timestamp(as_of)
    customers = raw.customers[raw.customers["onboarding_date"] <= day]
    known = set(customers["customer_id"])

    def of_known(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["customer_id"].isin(known)]

    statements = of_known(raw.financial_statements)
    facilities = of_known(raw.credit_facilities)
    facilities = facilities[facilities["opened"] <= day]
    repayments = raw.repayments[raw.repayments["facility_id"].isin(set(facilities["facility_id"]))]
    repayments = repayments.copy()
    later = repayments["paid_date"] > day
    repayments.loc[later, "paid_date"] = pd.NaT
    repayments.loc[later, "amount_paid"] = 0.0
    transactions = of_known(raw.transactions)
    defaults = of_known(raw.defaults)
    return RawTables(
        customers=customers,
        financial_statements=statements[statements["published_date"] <= day],
        credit_facilities=facilities,
        repayments=repayments,
        transactions=transactions[transactions["ts"] < day + pd.Timedelta(days=1)],
        defaults=defaults[defaults["default_date"] <= day],
    )
