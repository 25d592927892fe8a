"""What the audit chain holds: records, their canonical form and the hash rule that links them.

Two kinds of record share one chain (one sequence of ids, each ``prev_hash`` the hash of the
record before, whichever kind it is):

- a *decision* of the model (row of ``decisions``): ``hash = sha256(prev_hash + canonical JSON
  of DECISION_COLUMNS)``, plus ``request_sha256``/``request_pointer`` when the request body is
  stored apart (every record but those of the first format, which keep their request inside the
  payload and are hashed without those two columns, exactly as they were written);
- an *event*, a person's action (row of ``events``): ``hash = sha256(prev_hash + canonical JSON
  of EVENT_COLUMNS)``.

The rule only ever hashes the fields a record has, so adding a table or a column never changes
the hash of a record already written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record of a chain."""
MAX_RECORD_ID = 2**63 - 1
"""Largest record id a store can hold (SQLite INTEGER, PostgreSQL BIGINT)."""
HMAC_KEY_ENV = "RISKGRADE_AUDIT_KEY"
DEV_KEY = "riskgrade-dev-audit-key-change-me"
"""Checkpoint key used when ``HMAC_KEY_ENV`` is unset (the service warns about it)."""

DECISION_COLUMNS: tuple[str, ...] = (
    "id",
    "decision_id",
    "created_at",
    "kind",
    "caller",
    "customer_id",
    "model_version",
    "bundle_hash",
    "policy_version",
    "pd",
    "grade",
    "tier",
    "payload",
    "prev_hash",
)
"""Columns covered by every decision's hash, in hashing order."""
REQUEST_COLUMNS: tuple[str, ...] = ("request_sha256", "request_pointer")
"""Also hashed when ``request_sha256`` is set (every decision but those of the first format)."""
DECISION_STORED: tuple[str, ...] = (*DECISION_COLUMNS, *REQUEST_COLUMNS, "hash")
"""Columns of ``decisions``."""
EVENT_COLUMNS: tuple[str, ...] = (
    "id",
    "event_id",
    "created_at",
    "kind",
    "actor",
    "role",
    "subject",
    "reason",
    "occurred_at",
    "payload",
    "prev_hash",
)
"""Columns covered by every event's hash, in hashing order."""
EVENT_STORED: tuple[str, ...] = (*EVENT_COLUMNS, "hash")
"""Columns of ``events``."""


class AuditError(RuntimeError):
    """The audit store cannot be opened or read."""


class AuditUnavailableError(AuditError):
    """A record could not be committed: the caller must not hand out the decision."""


class AuditDuplicateEventError(AuditUnavailableError):
    """An event id already in the log: the event was not written (nor any of its group).

    Event ids are unique, so a caller that needs "exactly one of these" (one decision per
    proposal) gives the competing events the same deterministic id: the first commit wins
    and every other gets this error, on SQLite and PostgreSQL, across threads and processes.
    Nothing was committed, as for any `AuditUnavailableError`, but callers can tell it apart.
    """

    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = tuple(event_ids)
        super().__init__(f"audit event id(s) already recorded: {', '.join(self.event_ids)}")


class AuditDuplicateDecisionError(AuditUnavailableError):
    """A decision id already in the log: none of the group was written.

    Callers that derive decision ids from what they decide (a batch run and a customer) use
    it to write each decision once: the first commit wins, a repeat gets this error naming
    the ids already recorded (`AuditStore.existing_decision_ids` asks beforehand).
    """

    def __init__(self, decision_ids: Sequence[str]) -> None:
        self.decision_ids = tuple(decision_ids)
        shown = ", ".join(self.decision_ids[:5]) + (" ..." if len(self.decision_ids) > 5 else "")
        super().__init__(
            f"audit decision_id(s) already recorded ({len(self.decision_ids)}): {shown}"
        )


class AuditRecordNotFoundError(AuditError, KeyError):
    """No record with the requested id."""


class AuditUrlError(AuditError, ValueError):
    """The audit URL is malformed or names a database this store does not support."""


class AuditConfig(BaseModel):
    """Where and how records are kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Path("data/audit.db")
    checkpoint_every: int = Field(default=100, ge=1, le=1_000_000)
    hmac_key_env: str = HMAC_KEY_ENV
    """Environment variable holding the checkpoint signing key (a dev key is used if unset)."""
    busy_timeout_ms: int = Field(default=5000, ge=0)
    url: str | None = None
    """SQLAlchemy URL of the audit database (``sqlite:///...`` or ``postgresql://...``);
    None: the SQLite file at ``path``."""


class DecisionRecord(BaseModel):
    """What the service writes for one decision (the store adds id, time and hashes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    caller: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=64)
    model_version: str
    bundle_hash: str
    policy_version: str
    pd: float
    grade: str
    tier: str
    payload: dict[str, Any]
    """Computed features, flags and the response (reasons, groups, hard rules)."""
    request_body: bytes
    """The HTTP body the request came in, byte for byte (stored once per distinct body)."""
    request_pointer: str = Field(default="", max_length=64, pattern=r"^(/[A-Za-z0-9_]+)*$")
    """JSON pointer of this decision's request inside ``request_body`` (``""``: the body)."""


class EventRecord(BaseModel):
    """A person's action, as its caller describes it (the store adds id, time and hashes).

    ``kind`` names the action (``assessment_recorded``, ``override_proposed``,
    ``override_approved``, ``status_changed``, ``review_recorded``, ``measure_approved``...);
    its meaning and payload belong to the package that writes it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")
    actor: str = Field(min_length=1, max_length=128)
    """Token name of the person who acted."""
    role: str = Field(min_length=1, max_length=32)
    """The role the actor acted in (analyst, approver, ...)."""
    subject: str = Field(min_length=1, max_length=128)
    """What the action is about: a customer id or a measure id."""
    reason: str = Field(default="", max_length=4000)
    """The actor's reason or comment, as written."""
    occurred_at: datetime
    """When the action happened (naive values are UTC)."""
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class StoredDecision:
    """One decision of the log, as stored."""

    id: int
    decision_id: str
    created_at: str
    kind: str
    caller: str
    customer_id: str
    model_version: str
    bundle_hash: str
    policy_version: str
    pd: float
    grade: str
    tier: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    request_sha256: str | None = None
    request_pointer: str | None = None
    request: dict[str, Any] | None = None
    """The scored request (read by ``show``; None in search results and listings)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the record."""
        return {name: getattr(self, name) for name in (*DECISION_STORED, "request")}


@dataclass(frozen=True)
class StoredEvent:
    """One event of the log, as stored."""

    id: int
    event_id: str
    created_at: str
    kind: str
    actor: str
    role: str
    subject: str
    reason: str
    occurred_at: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the event."""
        return {name: getattr(self, name) for name in EVENT_STORED}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain verification."""

    ok: bool
    records: int
    checkpoints: int
    first_bad_id: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class RecordCheck:
    """Local integrity of one record: its own hash and its link to the previous record."""

    id: int
    hash_ok: bool
    link_ok: bool
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Both checks passed."""
        return self.hash_ok and self.link_ok


class AuditQuery(BaseModel):
    """A search of the decisions: every given filter must match (exact, except the ranges)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: str | None = Field(default=None, min_length=1, max_length=64)
    start: datetime | None = None
    """Earliest ``created_at`` (inclusive; naive values are UTC)."""
    end: datetime | None = None
    """Latest ``created_at`` (exclusive; naive values are UTC)."""
    rated_from: date | None = None
    """Earliest rating date, the decision's ``as_of`` (inclusive)."""
    rated_to: date | None = None
    """Latest rating date (inclusive)."""
    tier: str | None = Field(default=None, min_length=1, max_length=32)
    model_version: str | None = Field(default=None, min_length=1, max_length=128)
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check_range(self) -> AuditQuery:
        if (
            self.start is not None
            and self.end is not None
            and utc_iso(self.start) > utc_iso(self.end)
        ):
            raise ValueError(f"start {self.start} is after end {self.end}")
        if (
            self.rated_from is not None
            and self.rated_to is not None
            and self.rated_from > self.rated_to
        ):
            raise ValueError(f"rated_from {self.rated_from} is after rated_to {self.rated_to}")
        return self


class EventQuery(BaseModel):
    """A search of the events: every given filter must match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str | None = Field(default=None, min_length=1, max_length=64)
    actor: str | None = Field(default=None, min_length=1, max_length=128)
    subject: str | None = Field(default=None, min_length=1, max_length=128)
    start: datetime | None = None
    """Earliest ``occurred_at`` (inclusive; naive values are UTC)."""
    end: datetime | None = None
    """Latest ``occurred_at`` (exclusive; naive values are UTC)."""
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class AuditPage:
    """One page of decisions, newest first, with the total number of matches."""

    records: tuple[StoredDecision, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first, with the total number of matches."""

    events: tuple[StoredEvent, ...]
    total: int
    limit: int
    offset: int


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, non-finite floats refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 (hex) over the previous hash and the canonical JSON of ``fields``."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def record_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """Hash of one decision row (``payload`` as the stored text, so any byte change shows).

    The request body is covered through its digest (``request_sha256``).
    """
    names = (
        DECISION_COLUMNS
        if row.get("request_sha256") is None
        else (*DECISION_COLUMNS, *REQUEST_COLUMNS)
    )
    return chain_hash(prev_hash, {name: row[name] for name in names})


def event_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """Hash of one event row (``payload`` as the stored text)."""
    return chain_hash(prev_hash, {name: row[name] for name in EVENT_COLUMNS})


def body_digest(body: bytes) -> str:
    """SHA-256 (hex) of a request body, its key in ``request_bodies``."""
    return hashlib.sha256(body).hexdigest()


def sign(key: bytes, count: int, head_hash: str) -> str:
    """HMAC-SHA256 of a checkpoint (record count and head hash)."""
    return hmac.new(key, f"{count}:{head_hash}".encode(), hashlib.sha256).hexdigest()


def now_iso() -> str:
    """The current UTC time as stored in ``created_at`` (microseconds, ``+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def utc_iso(moment: datetime) -> str:
    """``moment`` in UTC as stored (naive values are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by None so the payload is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def payload_json(payload: dict[str, Any]) -> str:
    """Canonical JSON of a payload (strict JSON fast path, non-finite floats made null)."""
    try:  # the engine's payloads are already strict JSON (str keys, finite floats)
        return canonical_json(payload)
    except (ValueError, TypeError):
        return canonical_json(_jsonable(payload))


def decision_row(
    record: DecisionRecord,
    payload: str,
    row_id: int,
    prev_hash: str,
    created_at: str,
    request_sha256: str | None = None,
) -> dict[str, Any]:
    """The stored row of ``record`` linked after ``prev_hash``, with its own hash.

    ``request_sha256``: the body's digest when the caller has it already.
    """
    row: dict[str, Any] = {
        "id": row_id,
        "decision_id": record.decision_id,
        "created_at": created_at,
        "kind": record.kind,
        "caller": record.caller,
        "customer_id": record.customer_id,
        "model_version": record.model_version,
        "bundle_hash": record.bundle_hash,
        "policy_version": record.policy_version,
        "pd": float(record.pd),
        "grade": record.grade,
        "tier": record.tier,
        "payload": payload,
        "prev_hash": prev_hash,
        "request_sha256": request_sha256 or body_digest(record.request_body),
        "request_pointer": record.request_pointer,
    }
    row["hash"] = record_hash(prev_hash, row)
    return row


def event_row(
    event: EventRecord, payload: str, row_id: int, prev_hash: str, created_at: str
) -> dict[str, Any]:
    """The stored row of ``event`` linked after ``prev_hash``, with its own hash."""
    row: dict[str, Any] = {
        "id": row_id,
        "event_id": event.event_id,
        "created_at": created_at,
        "kind": event.kind,
        "actor": event.actor,
        "role": event.role,
        "subject": event.subject,
        "reason": event.reason,
        "occurred_at": utc_iso(event.occurred_at),
        "payload": payload,
        "prev_hash": prev_hash,
    }
    row["hash"] = event_hash(prev_hash, row)
    return row


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901, the subset the store writes), or None."""
    value = document
    for token in pointer.split("/")[1:] if pointer else []:
        key = token.replace("~1", "/").replace("~0", "~")
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return value


def stored_request(record: StoredDecision, body: bytes | None) -> dict[str, Any] | None:
    """The request a decision scored: its pointer into ``body``, or (first format) the payload.

    None when it cannot be read (body missing or altered): ``check_record`` and ``verify``
    report why, and reading the record must not fail on it.
    """
    if record.request_sha256 is None:
        request = record.payload.get("request")
        return request if isinstance(request, dict) else None
    if body is None or body_digest(body) != record.request_sha256:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    request = resolve_pointer(document, record.request_pointer or "")
    return request if isinstance(request, dict) else None
