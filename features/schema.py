"""Raw-data contract: one pandera schema per raw table.

Units and conventions (a bank extract is expected to follow them):

* Every amount is in one currency, CNY (yuan), as a float. Amounts are bounded by
  ``MAX_AMOUNT`` (10 trillion yuan): a larger figure is a unit error (cents, or a
  missing decimal point), not a customer.
* Dates are calendar dates (``datetime64``, no time zone); ``transactions.ts`` is a
  timestamp in the bank's local time.
* Flow items of a statement (revenue, operating_costs, net_income,
  operating_cash_flow, interest_expense) cover ``period_months`` months ending at
  ``period_end``; stock items (assets, liabilities, cash) are as at ``period_end``.

Columns beyond those named in DESIGN.md, each present in a real bank extract:
``customers.legal_form``; ``financial_statements.period_months`` and ``audited``;
``credit_facilities.facility_type``, ``maturity_date`` and ``currency``;
``repayments.instalment_no`` and ``customer_id``; ``defaults.default_type``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final

import pandera.pandas as pa
import pyarrow
from pydantic import Field

MAX_AMOUNT: Final[float] = 1e13
"""Upper bound for any amount in yuan; anything above is a unit error."""

MIN_DATE: Final[str] = "1900-01-01"
MAX_DATE: Final[str] = "2200-12-31"
BoundedDay = Annotated[
    date, Field(ge=date.fromisoformat(MIN_DATE), le=date.fromisoformat(MAX_DATE))
]
"""A date of an input model within the contract's bounds (what the raw tables accept)."""
"""Business bounds of every date: any window derived from a date in them (12-month look-backs,
horizons, the day after ``as_of``) stays a valid date (``9999-12-31 + 1 day`` would not)."""

INDUSTRIES: Final[tuple[str, ...]] = (
    "agriculture",
    "manufacturing",
    "construction",
    "real_estate",
    "wholesale_retail",
    "transport_logistics",
    "hospitality",
    "information_technology",
    "energy_utilities",
    "healthcare",
)
REGIONS: Final[tuple[str, ...]] = (
    "east",
    "north",
    "south",
    "central",
    "northeast",
    "west",
)
SIZE_CLASSES: Final[tuple[str, ...]] = ("micro", "small", "medium", "large")
LEGAL_FORMS: Final[tuple[str, ...]] = ("limited", "joint_stock", "partnership", "sole_proprietor")
FACILITY_TYPES: Final[tuple[str, ...]] = ("term_loan", "revolver", "trade_finance")
DIRECTIONS: Final[tuple[str, ...]] = ("in", "out")
CHANNELS: Final[tuple[str, ...]] = ("wire", "online", "card", "cash", "cheque")
DEFAULT_TYPES: Final[tuple[str, ...]] = ("dpd90", "write_off", "insolvency")
COMPLIANCE_FLAGS: Final[tuple[str, ...]] = ("sanctions_hit", "legal_enforcement", "fraud")

STATEMENT_AMOUNTS: Final[tuple[str, ...]] = (
    "total_assets",
    "total_liabilities",
    "current_assets",
    "current_liabilities",
    "cash",
    "revenue",
    "operating_costs",
    "net_income",
    "operating_cash_flow",
    "interest_expense",
)
"""The amount columns of a financial statement, in contract order."""

OVERRIDE_KINDS: Final[tuple[str, ...]] = ("override", "expert_rating")
OVERRIDE_STATUSES: Final[tuple[str, ...]] = ("proposed", "approved", "rejected", "expired")
REVIEW_OUTCOMES: Final[tuple[str, ...]] = ("satisfactory", "watch", "tighten", "exit")
"""Outcome of a credit review: relationship fine, keep watching, tighten terms, start exit."""
COVENANTS: Final[tuple[str, ...]] = (
    "max_debt_ratio",
    "min_interest_coverage",
    "min_current_ratio",
    "reporting_months",
)
"""Covenant codes of a contract (see `features.covenants`)."""

TABLES: Final[tuple[str, ...]] = (
    "customers",
    "financial_statements",
    "credit_facilities",
    "repayments",
    "transactions",
    "defaults",
)

_ID = pa.Check.str_length(min_value=1, max_value=64)
_DATE = "datetime64[ns]"


def _amount(*, nullable: bool = False, signed: bool = False, description: str = "") -> pa.Column:
    """An amount in yuan: finite, bounded by ``MAX_AMOUNT``, non-negative unless signed."""
    low = -MAX_AMOUNT if signed else 0.0
    return pa.Column(
        float,
        pa.Check.in_range(low, MAX_AMOUNT, error=f"amount within [{low:g}, {MAX_AMOUNT:g}] yuan"),
        nullable=nullable,
        description=description,
    )


def _date(*, nullable: bool = False, description: str = "") -> pa.Column:
    return pa.Column(
        _DATE,
        [
            pa.Check.ge(MIN_DATE, error=f"date on or after {MIN_DATE}"),
            pa.Check.le(f"{MAX_DATE} 23:59:59.999999", error=f"date on or before {MAX_DATE}"),
        ],
        nullable=nullable,
        description=description,
    )


CUSTOMERS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, _ID, unique=True, description="bank's customer key"),
        "industry": pa.Column(str, _ID, description="industry code (see INDUSTRIES)"),
        "region": pa.Column(str, _ID, description="region code (see REGIONS)"),
        "size_class": pa.Column(str, pa.Check.isin(SIZE_CLASSES), description="firm size"),
        "legal_form": pa.Column(str, pa.Check.isin(LEGAL_FORMS), description="legal form"),
        "founded_date": _date(description="date of incorporation"),
        "onboarding_date": _date(description="date the customer relationship began"),
        "sanctions_hit": pa.Column(bool, description="listed on a sanctions screening list"),
        "legal_enforcement": pa.Column(bool, description="subject to court enforcement"),
        "fraud": pa.Column(bool, description="confirmed fraud case on file"),
    },
    checks=[
        pa.Check(
            lambda df: df["onboarding_date"] >= df["founded_date"],
            name="onboarding_date >= founded_date",
            element_wise=False,
        )
    ],
    strict=True,
    coerce=True,
    name="customers",
)

FINANCIAL_STATEMENTS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, _ID),
        "period_end": _date(description="last day of the reporting period"),
        "published_date": _date(description="date the statement became available to the bank"),
        "period_months": pa.Column(
            int, pa.Check.isin([3, 6, 12]), description="months covered by the flow items"
        ),
        "audited": pa.Column(bool, description="audited by an external auditor"),
        "total_assets": _amount(),
        "total_liabilities": _amount(),
        "current_assets": _amount(),
        "current_liabilities": _amount(),
        "cash": _amount(),
        "revenue": _amount(),
        "operating_costs": _amount(),
        "net_income": _amount(signed=True),
        "operating_cash_flow": _amount(signed=True),
        "interest_expense": _amount(),
    },
    checks=[
        pa.Check(
            lambda df: df["published_date"] >= df["period_end"],
            name="published_date >= period_end",
        ),
        pa.Check(
            lambda df: df["current_assets"] <= df["total_assets"] * (1 + 1e-9),
            name="current_assets <= total_assets",
        ),
        pa.Check(
            lambda df: df["cash"] <= df["current_assets"] * (1 + 1e-9),
            name="cash <= current_assets",
        ),
    ],
    unique=["customer_id", "period_end"],
    strict=True,
    coerce=True,
    name="financial_statements",
)

CREDIT_FACILITIES = pa.DataFrameSchema(
    {
        "facility_id": pa.Column(str, _ID, unique=True),
        "customer_id": pa.Column(str, _ID),
        "facility_type": pa.Column(str, pa.Check.isin(FACILITY_TYPES)),
        "currency": pa.Column(str, pa.Check.eq("CNY"), description="all amounts in CNY"),
        "opened": _date(description="date the facility was opened"),
        "maturity_date": _date(description="contractual maturity"),
        "limit": pa.Column(
            float,
            pa.Check.in_range(0.0, MAX_AMOUNT, include_min=False),
            description="committed limit, yuan",
        ),
        "outstanding": _amount(description="drawn balance at extract date, yuan"),
    },
    checks=[
        pa.Check(lambda df: df["maturity_date"] > df["opened"], name="maturity_date > opened"),
    ],
    strict=True,
    coerce=True,
    name="credit_facilities",
)

REPAYMENTS = pa.DataFrameSchema(
    {
        "facility_id": pa.Column(str, _ID),
        "customer_id": pa.Column(str, _ID),
        "instalment_no": pa.Column(int, pa.Check.ge(1)),
        "due_date": _date(description="contractual due date (may lie after the extract date)"),
        "amount_due": pa.Column(
            float, pa.Check.in_range(0.0, MAX_AMOUNT, include_min=False), description="yuan"
        ),
        "paid_date": _date(nullable=True, description="date of (last) payment; null if unpaid"),
        "amount_paid": _amount(description="amount paid by paid_date, 0 if unpaid"),
    },
    checks=[
        pa.Check(
            lambda df: df["paid_date"].isna() | (df["amount_paid"] > 0),
            name="paid_date set implies amount_paid > 0",
        ),
        pa.Check(
            lambda df: df["paid_date"].notna() | (df["amount_paid"] == 0),
            name="amount_paid > 0 implies paid_date set",
        ),
    ],
    unique=["facility_id", "instalment_no"],
    strict=True,
    coerce=True,
    name="repayments",
)

TRANSACTIONS = pa.DataFrameSchema(
    {
        "txn_id": pa.Column(str, _ID, unique=True),
        "customer_id": pa.Column(str, _ID),
        "ts": _date(description="booking timestamp"),
        "amount": pa.Column(
            float, pa.Check.in_range(0.0, MAX_AMOUNT, include_min=False), description="yuan"
        ),
        "direction": pa.Column(str, pa.Check.isin(DIRECTIONS)),
        "counterparty_id": pa.Column(str, _ID),
        "channel": pa.Column(str, pa.Check.isin(CHANNELS)),
    },
    strict=True,
    coerce=True,
    name="transactions",
)

DEFAULTS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, _ID),
        "default_date": _date(),
        "default_type": pa.Column(str, pa.Check.isin(DEFAULT_TYPES)),
    },
    unique=["customer_id", "default_date"],
    strict=True,
    coerce=True,
    name="defaults",
)

ASSESSMENTS = pa.DataFrameSchema(
    {
        "assessment_id": pa.Column(str, _ID),
        "customer_id": pa.Column(str, _ID),
        "assessed_on": _date(description="day the assessment was made (known from then on)"),
        "valid_until": _date(description="first day it no longer applies (next review date)"),
        "analyst": pa.Column(str, _ID, description="who answered the questionnaire"),
        "questionnaire_version": pa.Column(str, _ID),
        "factor": pa.Column(str, _ID, description="factor code of the questionnaire version"),
        "answer": pa.Column(str, _ID, description="answer code of that factor"),
    },
    checks=[
        pa.Check(
            lambda df: df["valid_until"] > df["assessed_on"], name="valid_until > assessed_on"
        ),
        pa.Check(
            lambda df: (
                df.groupby("assessment_id")[
                    [
                        "customer_id",
                        "assessed_on",
                        "valid_until",
                        "analyst",
                        "questionnaire_version",
                    ]
                ]
                .transform("nunique")
                .eq(1)
                .all(axis=1)
            ),
            name="one customer, date, analyst and version per assessment_id",
        ),
    ],
    unique=["assessment_id", "factor"],
    strict=True,
    coerce=True,
    name="assessments",
)
"""Optional: qualitative assessments in long format, one row per (assessment, factor answered).

Long rather than one column per factor: a new questionnaire version adds or drops factors
without changing the contract; factor and answer codes are checked against the questionnaire
of ``questionnaire_version`` when an assessment is scored."""

OVERRIDES = pa.DataFrameSchema(
    {
        "override_id": pa.Column(str, _ID, unique=True),
        "customer_id": pa.Column(str, _ID),
        "kind": pa.Column(str, pa.Check.isin(OVERRIDE_KINDS)),
        "proposed_on": _date(description="day proposed (known from then on)"),
        "proposer": pa.Column(str, _ID),
        "model_grade": pa.Column(str, _ID, description="model grade when proposed"),
        "base_grade": pa.Column(str, _ID, description="model-plus-qualitative grade when proposed"),
        "proposed_grade": pa.Column(str, _ID),
        "reason_code": pa.Column(str, _ID),
        "status": pa.Column(
            str, pa.Check.isin(OVERRIDE_STATUSES), description="latest status in the extract"
        ),
        "approver": pa.Column(str, _ID, nullable=True, description="who approved or rejected"),
        "decided_on": _date(nullable=True),
        "valid_until": _date(nullable=True, description="approved: first day it no longer applies"),
    },
    checks=[
        pa.Check(
            lambda df: (
                ~df["status"].isin(["approved", "rejected"])
                | (df["approver"].notna() & df["decided_on"].notna())
            ),
            name="a decision has its approver and decided_on",
        ),
        pa.Check(
            lambda df: (df["status"] != "approved") | df["valid_until"].notna(),
            name="an approval has valid_until",
        ),
        pa.Check(
            lambda df: (
                df["approver"].isna()
                | (df["approver"].str.casefold() != df["proposer"].str.casefold())
            ),
            name="approver differs from proposer (four eyes)",
        ),
        pa.Check(
            lambda df: df["decided_on"].isna() | (df["decided_on"] >= df["proposed_on"]),
            name="decided_on >= proposed_on",
        ),
        pa.Check(
            lambda df: df["proposed_grade"] != df["base_grade"],
            name="proposed_grade differs from base_grade",
        ),
    ],
    strict=True,
    coerce=True,
    name="overrides",
)
"""Optional: override proposals (and expert ratings) with their latest decision."""

REVIEWS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, _ID),
        "review_date": _date(description="day the credit review was recorded"),
        "outcome": pa.Column(str, pa.Check.isin(REVIEW_OUTCOMES)),
        "next_review_date": _date(description="next review the reviewer scheduled"),
    },
    checks=[
        pa.Check(
            lambda df: df["next_review_date"] > df["review_date"],
            name="next_review_date > review_date",
        ),
    ],
    unique=["customer_id", "review_date"],
    strict=True,
    coerce=True,
    name="reviews",
)
"""Optional: recorded credit reviews (the review schedule counts from the last one)."""

CONTRACT_TERMS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, _ID),
        "covenant": pa.Column(str, pa.Check.isin(COVENANTS)),
        "threshold": pa.Column(
            float,
            pa.Check.in_range(0.0, 1e6, error="threshold within [0, 1e6]"),
            description="ratio limit, or months between financial reports",
        ),
        "effective_date": _date(description="day the term took effect (known from then on)"),
        "expiry_date": _date(nullable=True, description="first day it no longer applies"),
    },
    checks=[
        pa.Check(
            lambda df: df["expiry_date"].isna() | (df["expiry_date"] > df["effective_date"]),
            name="expiry_date > effective_date",
        ),
    ],
    unique=["customer_id", "covenant", "effective_date"],
    strict=True,
    coerce=True,
    name="contract_terms",
)
"""Optional: covenants written into customers' contracts, one row per (customer, covenant,
effective date)."""

OPTIONAL_TABLES: Final[tuple[str, ...]] = ("assessments", "overrides")
"""Tables a raw folder may hold; a folder without them is valid (no human judgement)."""

RECORD_TABLES: Final[tuple[str, ...]] = ("reviews", "contract_terms")
"""Optional relationship records (`features.records`); a folder without them is valid."""

SCHEMAS: Final[dict[str, pa.DataFrameSchema]] = {
    "customers": CUSTOMERS,
    "financial_statements": FINANCIAL_STATEMENTS,
    "credit_facilities": CREDIT_FACILITIES,
    "repayments": REPAYMENTS,
    "transactions": TRANSACTIONS,
    "defaults": DEFAULTS,
    "assessments": ASSESSMENTS,
    "overrides": OVERRIDES,
    "reviews": REVIEWS,
    "contract_terms": CONTRACT_TERMS,
}

AS_OF_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "customers": ("founded_date", "onboarding_date"),
    "financial_statements": ("period_end", "published_date"),
    "credit_facilities": ("opened",),
    "repayments": ("paid_date",),
    "transactions": ("ts",),
    "defaults": ("default_date",),
    "assessments": ("assessed_on",),
    "overrides": ("proposed_on", "decided_on"),
    "reviews": ("review_date",),
    "contract_terms": ("effective_date",),
}
"""Columns that record events and so may not lie after the extract's as-of date."""


_ARROW_TYPES: Final[dict[str, pyarrow.DataType]] = {
    "str": pyarrow.string(),
    "string[pyarrow]": pyarrow.string(),
    "bool": pyarrow.bool_(),
    "int64": pyarrow.int64(),
    "float64": pyarrow.float64(),
    "datetime64[ns]": pyarrow.timestamp("ns"),
}


def arrow_schema(table: str) -> pyarrow.Schema:
    """Arrow schema of one raw table, derived from its pandera schema (contract order).

    Every field is nullable in Arrow (as the generator has always written them); the
    contract's own ``nullable`` is checked by pandera on read.

    Raises:
        KeyError: for a table without a schema, or a column dtype with no Arrow mapping.
    """
    return pyarrow.schema(
        [(name, _ARROW_TYPES[str(column.dtype)]) for name, column in SCHEMAS[table].columns.items()]
    )
