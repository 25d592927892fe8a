"""How management state lives on the audit chain: actors, event ids and reading events back.

Management state is event-sourced: every person's action is an `audit.EventRecord` (kind
``<thing>.<action>``, subject the customer or measure it is about) appended to the audit
store, and every read is a projection over ``search_events``. Nothing is stored elsewhere, so
the audit chain is the one record of who did what, when and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from audit import AuditStore, EventQuery, StoredEvent

Store = AuditStore
"""Where people's decisions are kept: the audit store (callers outside management, such as
monitoring, name it through this package)."""

PAGE = 10_000
"""Events read per ``search_events`` call when reading them all."""


class Actor(BaseModel):
    """A person acting: the token name and the role the token holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    role: str = Field(min_length=1, max_length=32)


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC (naive values are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """A stored ``occurred_at`` / ``created_at`` back as an aware datetime."""
    return aware(datetime.fromisoformat(text))


IsoTime = Annotated[
    datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")
]
"""A moment kept as a datetime and written to JSON by ``isoformat`` (a string in the schema)."""


def iter_events(
    store: AuditStore,
    *,
    kind: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    end: datetime | None = None,
) -> Iterator[StoredEvent]:
    """Every event matching the filters, oldest first (reads page by page, newest first).

    Args:
        store: the audit store.
        kind: exact event kind.
        subject: exact subject (customer or measure id).
        actor: exact actor name.
        end: only events that occurred before this moment.
    """
    found: dict[int, StoredEvent] = {}
    offset = 0
    while True:
        query = EventQuery(
            kind=kind, subject=subject, actor=actor, end=end, limit=PAGE, offset=offset
        )
        page = store.search_events(query)
        found.update((event.id, event) for event in page.events)
        offset += len(page.events)
        if not page.events or offset >= page.total:
            break
    # Events appended while paging shift the pages: keyed by id, each is yielded once.
    for event_id in sorted(found):
        yield found[event_id]


def payload_of(event: StoredEvent) -> dict[str, Any]:
    """The event's payload (a dict, as stored)."""
    return dict(event.payload)
