"""Early warnings of a monitoring run, kept on the audit chain for the people who act on them.

A monitoring run that records its warnings appends one ``warning.raised`` event per warned
customer (event id ``warning:<run_id>:<customer_id>``, so recording a run twice adds
nothing) holding the severity, proposed action, triggers and their details (covenant,
threshold, observed value). The customer page and history read them back from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from audit import AuditDuplicateEventError, AuditStore, EventRecord, StoredEvent
from management.events import Actor, aware, iter_events, utc_now

WARNING = "warning.raised"


class WarningView(BaseModel):
    """An early warning of a monitoring run; the run's facts (grade, tier, PD...) follow."""

    model_config = ConfigDict(extra="allow")

    record_id: int
    recorded_at: str
    run_id: str
    as_of: date
    severity: str
    action: str
    triggers: list[str]
    details: list[str]
    proposed_status: str | None


@dataclass(frozen=True)
class WarningItem:
    """One customer's early warning of one monitoring run."""

    customer_id: str
    severity: str
    action: str
    triggers: tuple[str, ...]
    details: tuple[str, ...]
    proposed_status: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """Grade, tier, PD and the like at the run."""


def record_warnings(
    store: AuditStore,
    run_id: str,
    as_of: date,
    items: list[WarningItem],
    *,
    actor: Actor,
    at: datetime | None = None,
) -> int:
    """Append a run's warnings (those not recorded yet) in one transaction.

    Returns:
        The number of warnings appended.
    """
    at = aware(at or utc_now())
    events = [
        EventRecord(
            event_id=f"warning:{run_id}:{item.customer_id}",
            kind=WARNING,
            actor=actor.name,
            role=actor.role,
            subject=item.customer_id,
            reason="; ".join(item.details)[:4000],
            occurred_at=at,
            payload={
                "run_id": run_id,
                "as_of": as_of.isoformat(),
                "severity": item.severity,
                "action": item.action,
                "triggers": list(item.triggers),
                "details": list(item.details),
                "proposed_status": item.proposed_status,
                **item.facts,
            },
        )
        for item in items
    ]
    while events:
        try:
            store.append_events(events)
        except AuditDuplicateEventError as error:  # recorded before: keep only the new ones
            taken = set(error.event_ids)
            events = [e for e in events if e.event_id not in taken]
            continue
        break
    return len(events)


def warnings_of(store: AuditStore, customer_id: str) -> list[dict[str, Any]]:
    """One customer's recorded warnings, newest run first (`WarningView`, payload as stored)."""
    found: list[StoredEvent] = list(iter_events(store, kind=WARNING, subject=customer_id))
    return [
        {"record_id": e.id, "recorded_at": e.occurred_at, **e.payload}
        for e in sorted(found, key=lambda e: (e.payload.get("as_of", ""), e.id), reverse=True)
    ]
