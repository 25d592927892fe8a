"""Customer status on the audit chain: proposed by people, early warnings or hard rules.

A person's change to a status without four eyes (``watch``, ``restricted``, back to
``normal`` from ``watch``...) takes effect when recorded (event ``status.changed``). A change
that needs four eyes (to ``suspended`` or ``exiting``, or a reinstatement out of them) and
every change proposed by the system (an early warning, a hard rule) is a ``status_change``
proposal (`management.proposals`): it takes effect when a person other than the proposer
confirms it. Only one status change per customer is pending at a time; a confirmation
checks the customer is still in the status the proposal started from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit import AuditDuplicateEventError, AuditStore, EventRecord, StoredEvent
from management.errors import ConflictError, InvalidInputError
from management.events import Actor, aware, iter_events, parse_time, utc_now
from management.proposals import (
    Proposal,
    ProposalState,
    ProposalStatus,
    decide,
    list_proposals,
    propose,
    states_from_events,
)
from rating.judgement import Role
from rating.lifecycle import (
    CustomerStatus,
    LifecycleConfig,
    LifecycleError,
    Measure,
    StricterPolicy,
    check_status_change,
    measure_stricter,
    measures_for,
    status_stricter,
)

KIND = "status_change"
"""Proposal kind of a status change that waits for confirmation."""
CHANGED = "status.changed"
"""Event kind of a status change that took effect when recorded."""

Source = Literal["person", "early_warning", "hard_rule"]

_CONFLICT_CODES = ("same_status", "transition_not_allowed")


class _Transition(BaseModel):
    """A status change's customer, from and to (``from`` is the JSON name)."""

    model_config = ConfigDict(populate_by_name=True)

    change_id: str
    customer_id: str
    from_: CustomerStatus = Field(alias="from")
    to: CustomerStatus


class StatusProposalView(_Transition):
    """A proposed status change: in effect at once, or pending a second person."""

    status: Literal["effective", "pending"]
    required_role: Role | None


class StatusChangeView(_Transition):
    """A status change in effect."""

    effective_at: str
    proposer: str
    confirmed_by: str | None
    reason: str
    exit_by: date | None
    source: Source


class CustomerStatusView(BaseModel):
    """A customer's status at a date, the change that set it and any pending change."""

    customer_id: str
    status: CustomerStatus
    since: str | None
    change: StatusChangeView | None
    pending: ProposalState | None


@dataclass(frozen=True)
class StatusChange:
    """One status change that took effect."""

    change_id: str
    customer_id: str
    status_from: CustomerStatus
    status_to: CustomerStatus
    effective_at: datetime
    proposer: str
    confirmed_by: str | None
    """The second person (None: took effect when its proposer recorded it)."""
    reason: str
    exit_by: date | None
    source: Source

    def view(self) -> StatusChangeView:
        """Its view."""
        return StatusChangeView(
            change_id=self.change_id,
            customer_id=self.customer_id,
            from_=self.status_from,
            to=self.status_to,
            effective_at=self.effective_at.isoformat(),
            proposer=self.proposer,
            confirmed_by=self.confirmed_by,
            reason=self.reason,
            exit_by=self.exit_by,
            source=self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return self.view().model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class CustomerStatusState:
    """A customer's status at a moment: what applies and what waits."""

    customer_id: str
    status: CustomerStatus
    since: datetime | None
    change: StatusChange | None
    """The change that set it (None: never changed, ``normal``)."""
    pending: ProposalState | None

    def stricter(self, config: LifecycleConfig) -> StricterPolicy | None:
        """The rating-chain input of this status (None when it changes nothing)."""
        ref = self.change.change_id if self.change else "status-normal"
        return status_stricter(self.status, ref, config)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return CustomerStatusView(
            customer_id=self.customer_id,
            status=self.status,
            since=self.since.isoformat() if self.since else None,
            change=self.change.view() if self.change else None,
            pending=self.pending,
        ).model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class StatusProposal:
    """What a proposal did: took effect at once, or waits for a second person."""

    change_id: str
    customer_id: str
    status_from: CustomerStatus
    status_to: CustomerStatus
    state: Literal["effective", "pending"]
    required_role: Role | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return StatusProposalView(
            change_id=self.change_id,
            customer_id=self.customer_id,
            from_=self.status_from,
            to=self.status_to,
            status=self.state,
            required_role=self.required_role,
        ).model_dump(mode="json", by_alias=True)


def propose_status_change(
    store: AuditStore,
    actor: Actor,
    customer_id: str,
    target: CustomerStatus,
    reason: str,
    config: LifecycleConfig,
    *,
    exit_by: date | None = None,
    source: Source = "person",
    evidence: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> StatusProposal:
    """Propose (or, without four eyes, record) a status change of one customer.

    Args:
        store: the audit store.
        actor: who proposes (a person, or the system for early warnings and hard rules).
        customer_id: the customer.
        target: the status proposed.
        reason: why, as written (warnings: their triggers).
        config: lifecycle rules.
        exit_by: for ``exiting``: the date exposure must end.
        source: a person, an early warning or a hard rule.
        evidence: what the system saw (warning triggers), kept in the record.
        at: when (default now).

    Raises:
        ConflictError: ``same_status``, ``transition_not_allowed`` or
            ``status_change_pending`` (one pending change per customer).
        InvalidInputError: ``reason_required``, ``exit_plan_required``, ``exit_by_not_after_start``.
        AuditUnavailableError: if the store cannot commit (nothing is recorded).
    """
    at = aware(at or utc_now())
    current = status_at(store, customer_id, at, config)
    if current.pending is not None:
        raise ConflictError(
            "status_change_pending",
            f"customer {customer_id} has status change {current.pending.proposal_id} pending "
            f"(to '{current.pending.payload.get('to')}'); approve or reject it first",
            "status",
        )
    try:
        transition = check_status_change(
            current.status, target, reason, config, exit_by=exit_by, effective_on=at.date()
        )
    except LifecycleError as error:
        kind = ConflictError if error.code in _CONFLICT_CODES else InvalidInputError
        raise kind(error.code, str(error), error.field) from None
    change_id = uuid.uuid4().hex
    data = {
        "from": current.status.value,
        "to": target.value,
        "exit_by": exit_by.isoformat() if exit_by else None,
        "source": source,
        "config_version": config.version,
        "evidence": evidence or {},
    }
    system = source != "person"
    if transition.four_eyes or system:
        role = transition.required_role
        propose(
            store,
            Proposal(
                kind=KIND,
                subject=customer_id,
                payload=data,
                required_role=role,
                comment=reason,
                expires_at=at + timedelta(days=config.pending_days),
            ),
            actor,
            at=at,
            proposal_id=change_id,
        )
        return StatusProposal(change_id, customer_id, current.status, target, "pending", role)
    event = EventRecord(
        event_id=f"status:{change_id}",
        kind=CHANGED,
        actor=actor.name,
        role=actor.role,
        subject=customer_id,
        reason=reason,
        occurred_at=at,
        payload={"change_id": change_id, **data},
    )
    try:
        store.append_event(event)
    except AuditDuplicateEventError as error:  # pragma: no cover - fresh uuid
        raise ConflictError("duplicate_change", f"status change {change_id} exists") from error
    return StatusProposal(change_id, customer_id, current.status, target, "effective", None)


def decide_status_change(
    store: AuditStore,
    change_id: str,
    decider: Actor,
    *,
    approve: bool,
    comment: str,
    config: LifecycleConfig,
    at: datetime | None = None,
) -> ProposalState:
    """Confirm (approve) or reject a pending status change; four eyes as its proposal says.

    Raises:
        NotFoundError: no such status change.
        ForbiddenError: the proposer, or a role below the one required.
        ConflictError: ``already_decided``, ``expired``, or ``status_changed_meanwhile``
            (approving a change whose starting status is no longer the customer's).
    """
    at = aware(at or utc_now())

    def still_current(state: ProposalState) -> None:
        if not approve:
            return
        now = status_at(store, state.subject, at, config, ignore_pending=True)
        if now.status.value != state.payload.get("from"):
            raise ConflictError(
                "status_changed_meanwhile",
                f"customer {state.subject} is now '{now.status}', not "
                f"'{state.payload.get('from')}' as when {change_id} was proposed",
            )

    return decide(
        store,
        change_id,
        decider,
        approve=approve,
        comment=comment,
        kind=KIND,
        at=at,
        check=still_current,
    )


def changes_from_events(events: list[StoredEvent], now: datetime) -> list[StatusChange]:
    """The status changes that took effect among ``events`` (one customer's), in order."""
    changes: list[StatusChange] = []
    for event in events:
        if event.kind == CHANGED:
            data = event.payload
            changes.append(
                _change(
                    data,
                    event.subject,
                    parse_time(event.occurred_at),
                    event.actor,
                    None,
                    event.reason,
                )
            )
    for state in states_from_events([e for e in events if str(e.payload.get("kind")) == KIND], now):
        if state.status is ProposalStatus.APPROVED and state.decided_at is not None:
            changes.append(
                _change(
                    {"change_id": state.proposal_id, **state.payload},
                    state.subject,
                    state.decided_at,
                    state.proposer,
                    state.decided_by,
                    state.comment,
                )
            )
    return sorted(changes, key=lambda c: c.effective_at)


def status_at(
    store: AuditStore,
    customer_id: str,
    moment: datetime | date,
    config: LifecycleConfig,
    *,
    ignore_pending: bool = False,
) -> CustomerStatusState:
    """The customer's status at ``moment`` (a date means its end: changes on that day count).

    Args:
        store: the audit store.
        customer_id: the customer.
        moment: when.
        config: lifecycle rules (the pending deadline).
        ignore_pending: skip looking up the pending proposal.
    """
    end = _end_of(moment)
    events = list(iter_events(store, subject=customer_id, end=end))
    changes = changes_from_events(events, end)
    last = changes[-1] if changes else None
    pending = None
    if not ignore_pending:
        waiting = [
            s
            for s in states_from_events([e for e in events if e.payload.get("kind") == KIND], end)
            if s.status is ProposalStatus.PENDING
        ]
        pending = waiting[-1] if waiting else None
    del config  # the pending deadline is in each proposal's expires_at
    return CustomerStatusState(
        customer_id=customer_id,
        status=last.status_to if last else CustomerStatus.NORMAL,
        since=last.effective_at if last else None,
        change=last,
        pending=pending,
    )


def statuses_at(store: AuditStore, moment: datetime | date) -> dict[str, StatusChange]:
    """The last status change of every customer that has one, at ``moment`` (batch, monitor)."""
    end = _end_of(moment)
    by_customer: dict[str, list[StoredEvent]] = {}
    for kind in (CHANGED, f"{KIND}.proposed", f"{KIND}.approved"):
        for event in iter_events(store, kind=kind, end=end):
            by_customer.setdefault(event.subject, []).append(event)
    last: dict[str, StatusChange] = {}
    for customer_id, events in by_customer.items():
        changes = changes_from_events(sorted(events, key=lambda e: e.id), end)
        if changes:
            last[customer_id] = changes[-1]
    return last


def pending_status_changes(
    store: AuditStore, *, now: datetime | None = None
) -> list[ProposalState]:
    """Every status change waiting for a person, oldest first (the approvers' queue)."""
    return list_proposals(store, KIND, status=ProposalStatus.PENDING, now=now)


def _end_of(moment: datetime | date) -> datetime:
    if isinstance(moment, datetime):
        return aware(moment) + timedelta(microseconds=1)
    return aware(datetime(moment.year, moment.month, moment.day)) + timedelta(days=1)


def _change(
    data: dict[str, Any],
    customer_id: str,
    at: datetime,
    proposer: str,
    confirmed_by: str | None,
    reason: str,
) -> StatusChange:
    exit_by = data.get("exit_by")
    return StatusChange(
        change_id=str(data["change_id"]),
        customer_id=customer_id,
        status_from=CustomerStatus(str(data["from"])),
        status_to=CustomerStatus(str(data["to"])),
        effective_at=at,
        proposer=proposer,
        confirmed_by=confirmed_by,
        reason=reason,
        exit_by=date.fromisoformat(exit_by) if exit_by else None,
        source=data.get("source", "person"),
    )


@dataclass(frozen=True)
class SystemProposal:
    """A status change the monitoring proposes for one customer (an early warning)."""

    customer_id: str
    target: CustomerStatus
    reason: str
    evidence: dict[str, Any]


def propose_from_warnings(
    store: AuditStore,
    proposals: list[SystemProposal],
    config: LifecycleConfig,
    *,
    actor: Actor,
    at: datetime | None = None,
) -> list[StatusProposal]:
    """Record the monitoring's status proposals that are news, for a person to confirm.

    A proposal is skipped when the customer already has that status or a stricter one, or a
    change pending, or the transition is not admissible (exited customers).

    Returns:
        The proposals recorded.
    """
    at = aware(at or utc_now())
    current = statuses_at(store, at)
    recorded = []
    for item in proposals:
        now = current.get(item.customer_id)
        status = now.status_to if now else CustomerStatus.NORMAL
        if status.rank >= item.target.rank or status is CustomerStatus.EXITED:
            continue
        try:
            recorded.append(
                propose_status_change(
                    store,
                    actor,
                    item.customer_id,
                    item.target,
                    item.reason,
                    config,
                    exit_by=at.date() + timedelta(days=config.default_exit_days)
                    if item.target is CustomerStatus.EXITING
                    else None,
                    source="early_warning",
                    evidence=item.evidence,
                    at=at,
                )
            )
        except (ConflictError, InvalidInputError):
            continue
    return recorded


def status_series(store: AuditStore, moment: datetime | date) -> dict[str, str]:
    """Customer id -> status at ``moment``, for customers whose status is not ``normal``."""
    return {
        cid: change.status_to.value
        for cid, change in statuses_at(store, moment).items()
        if change.status_to is not CustomerStatus.NORMAL
    }


def stricter_at(
    customer_id: str,
    events: Iterable[StoredEvent],
    day: date,
    config: LifecycleConfig,
    *,
    measures: Iterable[Measure] = (),
    segment: Mapping[str, str | None] | None = None,
) -> list[StricterPolicy]:
    """The rating-chain inputs of a customer's status and the measures covering it on ``day``.

    Args:
        customer_id: the customer.
        events: the customer's events (any kinds; status changes effective by ``day`` count).
        day: the rating date.
        config: lifecycle rules (each status's effect).
        measures: the emergency measures (those active on ``day`` whose scope covers the
            customer apply).
        segment: the customer's ``industry``, ``region`` and ``size_class``.
    """
    end = _end_of(day)
    known = [e for e in events if parse_time(e.occurred_at) < end]
    changes = changes_from_events(known, end)
    items: list[StricterPolicy] = []
    if changes:
        status = status_stricter(changes[-1].status_to, changes[-1].change_id, config)
        if status is not None:
            items.append(status)
    items.extend(
        measure_stricter(m) for m in measures_for(customer_id, segment or {}, measures, day)
    )
    return items
