"""Request models of the scoring API and the one error schema of every non-2xx answer.

A scoring request carries one customer's raw records in the raw-data contract's shape
(``features/schema.py``: amounts CNY yuan, calendar dates, timestamps in bank local time) or a
ready feature vector. Every model forbids unknown fields and non-finite numbers; impossible
values (negative assets, events dated after ``as_of``, a customer onboarded after ``as_of``)
are rejected with the field's location. List sizes are bounded by ``RequestLimits``, passed as
validation context (``{"limits": RequestLimits(...)}``) so they come from configuration.

Error schema (every 4xx/5xx of the service)::

    {"error": {"code": "validation_error", "message": "...",
               "fields": [{"loc": "statements.0.total_assets", "message": "..."}]}}
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NaiveDatetime,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from features.schema import (
    CHANNELS,
    DEFAULT_TYPES,
    DIRECTIONS,
    FACILITY_TYPES,
    LEGAL_FORMS,
    MAX_AMOUNT,
    MAX_DATE,
    MIN_DATE,
    SIZE_CLASSES,
)

Lang = Literal["en", "zh"]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Amount = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT)]
PositiveAmount = Annotated[float, Field(gt=0.0, le=MAX_AMOUNT)]
SignedAmount = Annotated[float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
MIN_DAY = date.fromisoformat(MIN_DATE)
MAX_DAY = date.fromisoformat(MAX_DATE)
"""Bounds of every date the API accepts (body fields and query parameters)."""
Day = Annotated[date, Field(ge=MIN_DAY, le=MAX_DAY)]
"""A calendar date within the business bounds (every window derived from it stays a date)."""
Moment = Annotated[
    NaiveDatetime,
    Field(ge=datetime.combine(MIN_DAY, time()), le=datetime.combine(MAX_DAY, time.max)),
]
"""A naive timestamp (bank local time) within the business bounds."""
_REL_TOL = 1e-9


class RequestLimits(BaseModel):
    """Size bounds of one request (anything larger is refused with the field named)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_statements: int = Field(default=80, ge=1)
    max_facilities: int = Field(default=100, ge=1)
    max_instalments: int = Field(default=600, ge=1)
    """Per facility."""
    max_transactions: int = Field(default=20_000, ge=1)
    max_defaults: int = Field(default=100, ge=1)
    max_batch: int = Field(default=100, ge=1)


DEFAULT_LIMITS = RequestLimits()


def _limits(info: ValidationInfo) -> RequestLimits:
    context = info.context or {}
    limits = context.get("limits", DEFAULT_LIMITS) if isinstance(context, dict) else DEFAULT_LIMITS
    return limits if isinstance(limits, RequestLimits) else DEFAULT_LIMITS


def _bounded(items: list[Any], bound: int, what: str) -> list[Any]:
    if len(items) > bound:
        raise ValueError(f"at most {bound} {what} per request, got {len(items)}")
    return items


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=False)


class CustomerProfile(_Strict):
    """One row of ``customers``."""

    customer_id: Id
    industry: Id
    region: Id
    size_class: Literal[SIZE_CLASSES]  # type: ignore[valid-type]  # values: the one tuple
    legal_form: Literal[LEGAL_FORMS]  # type: ignore[valid-type]  # values: the one tuple
    founded_date: Day
    onboarding_date: Day
    sanctions_hit: bool = False
    legal_enforcement: bool = False
    fraud: bool = False

    @model_validator(mode="after")
    def _dates(self) -> Self:
        if self.onboarding_date < self.founded_date:
            raise ValueError("onboarding_date is before founded_date")
        return self


class Statement(_Strict):
    """One row of ``financial_statements`` (without customer_id: the request's customer)."""

    period_end: Day
    published_date: Day
    period_months: Literal[3, 6, 12]
    audited: bool = False
    total_assets: Amount
    total_liabilities: Amount
    current_assets: Amount
    current_liabilities: Amount
    cash: Amount
    revenue: Amount
    operating_costs: Amount
    net_income: SignedAmount
    operating_cash_flow: SignedAmount
    interest_expense: Amount

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.published_date < self.period_end:
            raise ValueError("published_date is before period_end")
        if self.current_assets > self.total_assets * (1 + _REL_TOL):
            raise ValueError("current_assets exceed total_assets")
        if self.cash > self.current_assets * (1 + _REL_TOL):
            raise ValueError("cash exceeds current_assets")
        return self


class Instalment(_Strict):
    """One row of ``repayments`` (facility and customer come from the enclosing objects)."""

    instalment_no: int = Field(ge=1, le=100_000)
    due_date: Day
    amount_due: PositiveAmount
    paid_date: Day | None = None
    amount_paid: Amount = 0.0

    @model_validator(mode="after")
    def _paid(self) -> Self:
        if self.paid_date is None and self.amount_paid > 0:
            raise ValueError("amount_paid > 0 needs a paid_date")
        if self.paid_date is not None and self.amount_paid <= 0:
            raise ValueError("paid_date set but amount_paid is 0")
        return self


class Facility(_Strict):
    """One row of ``credit_facilities`` with its instalments."""

    facility_id: Id
    facility_type: Literal[FACILITY_TYPES]  # type: ignore[valid-type]  # values: the one tuple
    currency: Literal["CNY"] = "CNY"
    opened: Day
    maturity_date: Day
    limit: PositiveAmount
    outstanding: Amount = 0.0
    instalments: list[Instalment] = Field(default_factory=list)

    @field_validator("instalments")
    @classmethod
    def _bound(cls, value: list[Instalment], info: ValidationInfo) -> list[Instalment]:
        return _bounded(value, _limits(info).max_instalments, "instalments per facility")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.maturity_date <= self.opened:
            raise ValueError("maturity_date is not after opened")
        numbers = [i.instalment_no for i in self.instalments]
        if len(set(numbers)) != len(numbers):
            raise ValueError("instalment_no values repeat within the facility")
        return self


@with_config(ConfigDict(extra="forbid", allow_inf_nan=False))
class Transaction(TypedDict):
    """One row of ``transactions``.

    A typed dict, validated by pydantic-core alone (no model instance, no Python validator):
    a request carries thousands, and this is a third faster to validate than a model.
    """

    txn_id: Id
    ts: Moment
    """Bank local time, without a time zone offset."""
    amount: PositiveAmount
    direction: Literal[DIRECTIONS]  # type: ignore[valid-type]  # values: the one tuple
    counterparty_id: Id
    channel: Literal[CHANNELS]  # type: ignore[valid-type]  # values: the one tuple


class DefaultRecord(_Strict):
    """One row of ``defaults`` (without customer_id: the request's customer)."""

    default_date: Day
    default_type: Literal[DEFAULT_TYPES]  # type: ignore[valid-type]  # values: the one tuple


class FeatureVector(_Strict):
    """A ready feature vector: values by feature name, null for missing."""

    customer_id: Id
    values: dict[str, float | None] = Field(max_length=1000)
    flags: dict[str, bool] = Field(default_factory=dict, max_length=100)
    """Compliance flags by hard-rule flag name (e.g. ``flag_fraud``) when not in ``values``."""


def _after(field: str, value: date, as_of: date) -> str | None:
    return (
        f"{field} {value.isoformat()} is after as_of {as_of.isoformat()}" if value > as_of else None
    )


class ScoreRequest(_Strict):
    """Score one customer at ``as_of``: raw records (``customer`` + lists) or ``feature_vector``."""

    as_of: Day
    lang: Lang = "en"
    customer: CustomerProfile | None = None
    statements: list[Statement] = Field(default_factory=list)
    facilities: list[Facility] = Field(default_factory=list)
    transactions: list[Transaction] = Field(default_factory=list)
    defaults: list[DefaultRecord] = Field(default_factory=list)
    """The customer's defaults known at ``as_of``: one on or before it rates the customer
    in default (default grade, restricted tier), with raw records or a feature vector."""
    feature_vector: FeatureVector | None = None
    _stored: Any = PrivateAttr(default=None)
    """A request by customer id: the records read from the raw store for it
    (``serving.engine.StoredRecords``, set by ``serving.by_id``), in place of the lists."""

    @field_validator("statements", "facilities", "transactions", "defaults")
    @classmethod
    def _bound(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        # Each list's bound is the RequestLimits field named after it (max_statements, ...).
        assert info.field_name is not None
        return _bounded(value, getattr(_limits(info), f"max_{info.field_name}"), info.field_name)

    @model_validator(mode="after")
    def _shape_and_time(self) -> Self:
        if (self.customer is None) == (self.feature_vector is None):
            raise ValueError("give exactly one of 'customer' (raw records) or 'feature_vector'")
        if self.feature_vector is not None and (
            self.statements or self.facilities or self.transactions
        ):
            raise ValueError("a feature_vector request carries no raw records")
        problems = self.future_dates()
        if problems:
            raise ValueError("; ".join(problems[:5]))
        days = [d.default_date for d in self.defaults]
        if len(set(days)) != len(days):
            raise ValueError("default_date values repeat")
        if self.feature_vector is not None:
            return self
        for key, ids in (
            ("facility_id", [f.facility_id for f in self.facilities]),
            ("txn_id", [t["txn_id"] for t in self.transactions]),
            ("period_end", [s.period_end for s in self.statements]),
        ):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{key} values repeat")
        return self

    def future_dates(self) -> list[str]:
        """Events dated after ``as_of`` (the request would leak the future)."""
        as_of, problems = self.as_of, []
        for i, d in enumerate(self.defaults):
            problems.append(_after(f"defaults.{i}.default_date", d.default_date, as_of))
        if self.customer is not None:
            problems += [
                _after("customer.founded_date", self.customer.founded_date, as_of),
                _after("customer.onboarding_date", self.customer.onboarding_date, as_of),
            ]
        for i, s in enumerate(self.statements):
            problems.append(_after(f"statements.{i}.published_date", s.published_date, as_of))
        for i, f in enumerate(self.facilities):
            problems.append(_after(f"facilities.{i}.opened", f.opened, as_of))
            for k, inst in enumerate(f.instalments):
                if inst.paid_date is not None:
                    where = f"facilities.{i}.instalments.{k}.paid_date"
                    problems.append(_after(where, inst.paid_date, as_of))
        end = datetime.combine(as_of + timedelta(days=1), time())
        if self.transactions and max(t["ts"] for t in self.transactions) >= end:
            # Only a request that has one pays for naming each late transaction.
            for i, t in enumerate(self.transactions):
                problems.append(_after(f"transactions.{i}.ts", t["ts"].date(), as_of))
        return [p for p in problems if p is not None]

    @property
    def customer_id(self) -> str:
        """The scored customer's id."""
        if self.customer is not None:
            return self.customer.customer_id
        assert self.feature_vector is not None
        return self.feature_vector.customer_id


class ExplainRequest(ScoreRequest):
    """A score request plus the explanation chart wanted."""

    chart: Literal["none", "png", "svg"] = "none"


class ScoreBatchRequest(_Strict):
    """Many score requests in one call (bounded by ``RequestLimits.max_batch``)."""

    requests: list[ScoreRequest] = Field(min_length=1)

    @field_validator("requests")
    @classmethod
    def _bound(cls, value: list[ScoreRequest], info: ValidationInfo) -> list[ScoreRequest]:
        return _bounded(value, _limits(info).max_batch, "requests")


class ReloadRequest(_Strict):
    """Admin reload: optionally a new bundle folder (default: the configured one)."""

    bundle: str | None = Field(default=None, max_length=4096)


class FieldError(BaseModel):
    """One invalid field."""

    loc: str
    message: str


class ErrorBody(BaseModel):
    """The error object of every non-2xx response."""

    code: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """``{"error": {...}}``: the one error schema of the service."""

    error: ErrorBody


def field_errors(error: ValidationError) -> list[FieldError]:
    """Flatten a pydantic error into (dotted location, message) pairs; inputs never echoed."""
    out = []
    for item in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "body"
        out.append(FieldError(loc=loc, message=item["msg"]))
    return out
