"""The relationship record on the audit chain: reviews, contacts and contract terms.

Each is an event (``review.recorded``, ``contact.recorded``, ``terms.recorded``) by the person
who recorded it. Monitoring reads them back as the optional raw tables ``reviews`` and
``contract_terms`` (`reviews_frame`, `terms_frame`), so the review schedule and the covenant
checks run on the same frames whether the records come from files or from the store.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit import AuditDuplicateEventError, AuditQuery, AuditStore, EventRecord, StoredEvent
from features.covenants import Covenant, CovenantConfig, CovenantTemplate
from features.schema import REVIEW_OUTCOMES, SCHEMAS, BoundedDay
from management.errors import ConflictError, InvalidInputError, NotFoundError
from management.events import Actor, aware, iter_events, utc_now

REVIEW = "review.recorded"
CONTACT = "contact.recorded"
TERMS = "terms.recorded"

Channel = Literal["visit", "call", "email", "letter", "meeting"]
Outcome = Literal["satisfactory", "watch", "tighten", "exit"]
assert tuple(Outcome.__args__) == REVIEW_OUTCOMES  # type: ignore[attr-defined]  # one list


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class ReviewInput(_Input):
    """A credit review: its outcome and the next review the reviewer schedules."""

    review_date: BoundedDay
    outcome: Outcome
    notes: str = Field(default="", max_length=4000)
    next_review_date: BoundedDay

    @model_validator(mode="after")
    def _order(self) -> ReviewInput:
        if self.next_review_date <= self.review_date:
            raise ValueError(
                f"next_review_date {self.next_review_date} must be after review_date "
                f"{self.review_date}"
            )
        return self


class ContactInput(_Input):
    """A contact with the customer: a visit, call, email, letter or meeting."""

    date: BoundedDay
    channel: Channel
    summary: str = Field(min_length=1, max_length=4000)


class TermsInput(BaseModel):
    """Contract terms: explicit covenants, or the template of a tier (``template``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effective_date: BoundedDay
    expiry_date: BoundedDay | None = None
    template: str | None = Field(default=None, description="tier whose covenant template applies")
    covenants: dict[Covenant, float] = Field(default_factory=dict)
    comment: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _one_source(self) -> TermsInput:
        if (self.template is None) == (not self.covenants):
            raise ValueError("give either covenants or a template tier, not both or neither")
        if self.expiry_date is not None and self.expiry_date <= self.effective_date:
            raise ValueError(f"expiry_date {self.expiry_date} must be after effective_date")
        return self

    def resolve(self, config: CovenantConfig) -> dict[Covenant, float]:
        """The covenants these terms set (a template's, or the explicit ones, bounds-checked).

        Raises:
            InvalidInputError: unknown template tier, or a threshold out of its bounds.
        """
        if self.template is not None:
            if self.template not in config.templates:
                raise InvalidInputError(
                    "unknown_template",
                    f"no covenant template for tier '{self.template}'; templates: "
                    f"{sorted(config.templates)}",
                    "template",
                )
            return config.templates[self.template].terms()
        try:
            CovenantTemplate(**{c.value: v for c, v in self.covenants.items()})
        except ValidationError as error:
            first = error.errors()[0]
            raise InvalidInputError(
                "bad_threshold", f"covenants.{first['loc'][0]}: {first['msg']}", "covenants"
            ) from None
        return dict(self.covenants)


class RecordedView(BaseModel):
    """A review, contact or contract terms written to the chain."""

    record_id: str
    customer_id: str
    audit_record: int


class ReviewRow(BaseModel):
    """A recorded review (row of the ``reviews`` table)."""

    review_date: date
    outcome: str
    next_review_date: date


class TermsRow(BaseModel):
    """A covenant of recorded contract terms (row of the ``contract_terms`` table)."""

    covenant: str
    threshold: float
    effective_date: date
    expiry_date: date | None


class ContactView(BaseModel):
    """A recorded contact with the customer."""

    record_id: str
    date: date
    channel: str
    summary: str
    recorded_by: str
    recorded_at: str


class CustomerRecords(BaseModel):
    """The relationship record: reviews, contacts and contract terms, oldest first."""

    customer_id: str
    reviews: list[ReviewRow]
    contacts: list[ContactView]
    terms: list[TermsRow]


@dataclass(frozen=True)
class Recorded:
    """A record written to the chain."""

    record_id: str
    kind: str
    customer_id: str
    audit_record: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return RecordedView(
            record_id=self.record_id, customer_id=self.customer_id, audit_record=self.audit_record
        ).model_dump(mode="json")


def ensure_known_customer(store: AuditStore, customer_id: str) -> None:
    """A customer the service has rated (a decision in the audit log).

    Raises:
        NotFoundError: ``unknown_customer``.
    """
    if store.search(AuditQuery(customer_id=customer_id, limit=1)).total == 0:
        raise NotFoundError(
            "unknown_customer", f"customer {customer_id} has no decision in the audit log"
        )


def _not_future(day: date, field: str, today: date) -> None:
    if day > today:
        raise InvalidInputError("future_date", f"{field} {day} is after today ({today})", field)


def _review_event(review: ReviewInput, actor: Actor, at: datetime) -> EventRecord:
    return EventRecord(
        event_id=f"review:{review.customer_id}:{review.review_date.isoformat()}",
        kind=REVIEW,
        actor=actor.name,
        role=actor.role,
        subject=review.customer_id,
        reason=review.notes,
        occurred_at=at,
        payload={
            "review_date": review.review_date.isoformat(),
            "outcome": review.outcome,
            "next_review_date": review.next_review_date.isoformat(),
        },
    )


def _contact_event(contact: ContactInput, actor: Actor, at: datetime) -> EventRecord:
    return EventRecord(
        event_id=f"contact:{uuid.uuid4().hex}",
        kind=CONTACT,
        actor=actor.name,
        role=actor.role,
        subject=contact.customer_id,
        reason=contact.summary,
        occurred_at=at,
        payload={"date": contact.date.isoformat(), "channel": contact.channel},
    )


def _append(store: AuditStore, items: list[EventRecord], what: str) -> list[StoredEvent]:
    try:
        return store.append_events(items)
    except AuditDuplicateEventError as error:
        raise ConflictError(
            "already_recorded", f"{what} already recorded: {', '.join(error.event_ids)}"
        ) from None


def record_review(
    store: AuditStore, actor: Actor, review: ReviewInput, *, at: datetime | None = None
) -> Recorded:
    """Record a credit review by ``actor`` (one per customer and day).

    Raises:
        InvalidInputError: ``future_date``.
        ConflictError: ``already_recorded`` (a review of this customer on this day exists).
    """
    at = aware(at or utc_now())
    _not_future(review.review_date, "review_date", at.date())
    stored = _append(store, [_review_event(review, actor, at)], "review")[0]
    return Recorded(stored.event_id, REVIEW, review.customer_id, stored.id)


def record_contact(
    store: AuditStore, actor: Actor, contact: ContactInput, *, at: datetime | None = None
) -> Recorded:
    """Record a contact with the customer by ``actor``.

    Raises:
        InvalidInputError: ``future_date``.
    """
    at = aware(at or utc_now())
    _not_future(contact.date, "date", at.date())
    stored = _append(store, [_contact_event(contact, actor, at)], "contact")[0]
    return Recorded(stored.event_id, CONTACT, contact.customer_id, stored.id)


def record_terms(
    store: AuditStore,
    actor: Actor,
    customer_id: str,
    terms: TermsInput,
    config: CovenantConfig,
    *,
    at: datetime | None = None,
) -> Recorded:
    """Record a customer's contract terms (they replace earlier terms from their date).

    Raises:
        InvalidInputError: ``unknown_template``, ``bad_threshold``.
        ConflictError: ``already_recorded`` (terms of this customer from this day exist).
    """
    at = aware(at or utc_now())
    covenants = terms.resolve(config)
    event = EventRecord(
        event_id=f"terms:{customer_id}:{terms.effective_date.isoformat()}",
        kind=TERMS,
        actor=actor.name,
        role=actor.role,
        subject=customer_id,
        reason=terms.comment,
        occurred_at=at,
        payload={
            "effective_date": terms.effective_date.isoformat(),
            "expiry_date": terms.expiry_date.isoformat() if terms.expiry_date else None,
            "template": terms.template,
            "covenants": {c.value: v for c, v in sorted(covenants.items())},
        },
    )
    stored = _append(store, [event], "contract terms")[0]
    return Recorded(stored.event_id, TERMS, customer_id, stored.id)


# --- read back as the raw tables monitoring uses ------------------------------------------------


def _events(store: AuditStore, kind: str, customer_id: str | None) -> list[StoredEvent]:
    return list(iter_events(store, kind=kind, subject=customer_id))


def reviews_frame(store: AuditStore, customer_id: str | None = None) -> pd.DataFrame:
    """Recorded reviews as the ``reviews`` raw table (validated by its contract)."""
    rows = [
        (e.subject, e.payload["review_date"], e.payload["outcome"], e.payload["next_review_date"])
        for e in _events(store, REVIEW, customer_id)
    ]
    return _table("reviews", rows, date_columns=("review_date", "next_review_date"))


def terms_frame(store: AuditStore, customer_id: str | None = None) -> pd.DataFrame:
    """Recorded contract terms as the ``contract_terms`` raw table (one row per covenant).

    Terms recorded later for the same customer end the earlier ones from their date.
    """
    by_customer: dict[str, list[StoredEvent]] = {}
    for event in _events(store, TERMS, customer_id):
        by_customer.setdefault(event.subject, []).append(event)
    rows: list[tuple[Any, ...]] = []
    for customer, events in by_customer.items():
        events.sort(key=lambda e: (e.payload["effective_date"], e.id))
        starts = [e.payload["effective_date"] for e in events]
        for index, event in enumerate(events):
            replaced = starts[index + 1] if index + 1 < len(starts) else None
            expiry = event.payload.get("expiry_date")
            end = min(d for d in (expiry, replaced) if d) if (expiry or replaced) else None
            rows.extend(
                (customer, covenant, float(threshold), event.payload["effective_date"], end)
                for covenant, threshold in event.payload["covenants"].items()
            )
    return _table("contract_terms", rows, date_columns=("effective_date", "expiry_date"))


def _contacts(store: AuditStore, customer_id: str) -> list[ContactView]:
    return [
        ContactView(
            record_id=e.event_id,
            date=e.payload["date"],
            channel=e.payload["channel"],
            summary=e.reason,
            recorded_by=e.actor,
            recorded_at=e.occurred_at,
        )
        for e in _events(store, CONTACT, customer_id)
    ]


def contacts(store: AuditStore, customer_id: str) -> list[dict[str, Any]]:
    """One customer's recorded contacts, oldest first (JSON-ready)."""
    return [c.model_dump(mode="json") for c in _contacts(store, customer_id)]


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a raw-table frame, dates as days and missing values as None."""
    return [
        {
            key: None
            if value is None or value != value  # NaN / NaT
            else value.date()
            if hasattr(value, "date")
            else value
            for key, value in row.items()
        }
        for row in frame.to_dict("records")
    ]


def customer_records(store: AuditStore, customer_id: str) -> dict[str, Any]:
    """One customer's reviews, contacts and contract terms, oldest first (JSON-ready)."""
    return CustomerRecords(
        customer_id=customer_id,
        reviews=[ReviewRow.model_validate(r) for r in _rows(reviews_frame(store, customer_id))],
        contacts=_contacts(store, customer_id),
        terms=[TermsRow.model_validate(r) for r in _rows(terms_frame(store, customer_id))],
    ).model_dump(mode="json")


def _table(name: str, rows: list[tuple[Any, ...]], date_columns: Iterable[str]) -> pd.DataFrame:
    schema = SCHEMAS[name]
    frame = pd.DataFrame(rows, columns=list(schema.columns))
    for column in date_columns:
        frame[column] = pd.to_datetime(frame[column])
    return schema.validate(frame)


# --- bulk import from CSV -----------------------------------------------------------------------

ImportKind = Literal["reviews", "contacts"]
_MODELS: dict[str, type[ReviewInput] | type[ContactInput]] = {
    "reviews": ReviewInput,
    "contacts": ContactInput,
}


@dataclass(frozen=True)
class ImportProblem:
    """One problem of an import file: the line, the column and what is wrong."""

    line: int
    column: str
    message: str


class ImportRejectedError(InvalidInputError):
    """An import file with problems: every one is listed; nothing was written."""

    def __init__(self, path: Path, problems: list[ImportProblem]) -> None:
        super().__init__(
            "import_rejected", f"{path}: {len(problems)} problem(s); nothing was written"
        )
        self.path = path
        self.problems = problems


def import_csv(
    store: AuditStore,
    actor: Actor,
    path: Path,
    kind: ImportKind,
    *,
    known_customers: Collection[str] | None = None,
    at: datetime | None = None,
) -> list[Recorded]:
    """Import reviews or contacts from a CSV file: all of it, or nothing.

    Every row is checked as the API checks one record (types, outcome/channel lists, dates
    not after today, next review after the review), plus unknown customers when
    ``known_customers`` is given and duplicate reviews; one report lists every problem.

    Raises:
        ImportRejectedError: with every problem; nothing is written.
        InvalidInputError: ``unreadable_file`` for a missing or non-CSV file.
    """
    at = aware(at or utc_now())
    model = _MODELS[kind]
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InvalidInputError("unreadable_file", f"cannot read {path}: {error}") from None
    if not rows:
        raise ImportRejectedError(path, [ImportProblem(1, "", "no rows")])
    problems: list[ImportProblem] = []
    parsed: list[ReviewInput | ContactInput] = []
    seen: set[tuple[str, str]] = set()
    for line, row in enumerate(rows, start=2):
        cleaned = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            record = model.model_validate({k: v for k, v in cleaned.items() if v != ""})
        except ValidationError as error:
            problems.extend(
                ImportProblem(line, ".".join(map(str, e["loc"])) or "row", e["msg"])
                for e in error.errors()
            )
            continue
        day = record.review_date if isinstance(record, ReviewInput) else record.date
        field = "review_date" if isinstance(record, ReviewInput) else "date"
        if day > at.date():
            problems.append(ImportProblem(line, field, f"{day} is after today ({at.date()})"))
        if known_customers is not None and record.customer_id not in known_customers:
            problems.append(
                ImportProblem(line, "customer_id", f"unknown customer '{record.customer_id}'")
            )
        if isinstance(record, ReviewInput):
            key = (record.customer_id, record.review_date.isoformat())
            if key in seen:
                problems.append(ImportProblem(line, "review_date", "second review that day"))
            seen.add(key)
        parsed.append(record)
    if problems:
        raise ImportRejectedError(path, problems)
    events = [
        _review_event(r, actor, at) if isinstance(r, ReviewInput) else _contact_event(r, actor, at)
        for r in parsed
    ]
    if kind == "reviews":
        taken = {e.event_id for e in iter_events(store, kind=REVIEW)}
        clashes = [
            ImportProblem(line, "review_date", "a review of this customer that day is recorded")
            for line, e in enumerate(events, start=2)
            if e.event_id in taken
        ]
        if clashes:
            raise ImportRejectedError(path, clashes)
    stored = _append(store, events, kind)
    return [Recorded(s.event_id, s.kind, s.subject, s.id) for s in stored]
