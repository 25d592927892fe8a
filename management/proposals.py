"""The generic four-eyes mechanism: a proposal, then one decision by somebody else.

Overrides and expert ratings use it today; status changes and emergency measures plug in the
same way (their own ``kind``, ``payload`` and ``required_role``, and a ``check`` run at
decision time). On the audit chain a proposal is two events at most:

* ``<kind>.proposed``, event id ``proposal:<proposal_id>``, by the proposer;
* its one decision, event id ``decision:<proposal_id>``, of kind ``<kind>.approved``,
  ``<kind>.rejected`` (by a decider who is not the proposer and holds ``required_role`` or
  more) or ``<kind>.expired`` (recorded by the system once it is past ``expires_at``).

The decision's id is deterministic and event ids are unique in the audit store, so of two
deciders at once (threads, processes, hosts; SQLite or PostgreSQL) exactly one commits and
the other gets `ConflictError` (``already_decided``) naming the winner.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from audit import (
    AuditDuplicateEventError,
    AuditRecordNotFoundError,
    AuditStore,
    EventRecord,
    StoredEvent,
)
from management.errors import ConflictError, ForbiddenError, NotFoundError
from management.events import Actor, IsoTime, aware, iter_events, parse_time, utc_now
from rating.judgement import Role

SYSTEM_ACTOR = Actor(name="riskgrade", role="system")
"""Who records an expiry (nobody decided: the deadline passed)."""
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,48}$"


class ProposalStatus(StrEnum):
    """Where a proposal stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


_DECIDED = (ProposalStatus.APPROVED, ProposalStatus.REJECTED, ProposalStatus.EXPIRED)


class Proposal(BaseModel):
    """What is proposed: a kind, its subject, its data and who must approve it.

    ``kind`` names the mechanism's user (``override``, ``expert_rating``, ``status_change``,
    ``measure``...) and prefixes its event kinds; ``payload`` is that user's to define.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    subject: str = Field(min_length=1, max_length=128)
    """What it is about: a customer id, a segment or measure id."""
    payload: dict[str, Any] = Field(default_factory=dict)
    required_role: Role = Role.APPROVER
    """Least role that may approve or reject it."""
    comment: str = Field(default="", max_length=4000)
    """The proposer's reason, as written."""
    expires_at: datetime | None = None
    """Undecided at this moment, it expires (None: never)."""


class ProposalState(BaseModel):
    """A proposal waiting (or that waited) for a second person, with its decision.

    Projected from the audit chain; who decided, when and why are null while it waits.
    """

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    proposal_id: str
    kind: str
    subject: str
    payload: dict[str, Any]
    required_role: Role
    proposer: str
    proposer_role: str
    proposed_at: IsoTime
    comment: str
    expires_at: IsoTime | None
    status: ProposalStatus
    decided_by: str | None = None
    decider_role: str | None = None
    decided_at: IsoTime | None = None
    decision_comment: str | None = None
    decision_payload: dict[str, Any] | None = None
    proposal_record: int
    """Record id of the proposal event in the audit chain."""
    decision_record: int | None = None
    """Record id of the decision event (None while pending)."""

    @property
    def decided(self) -> bool:
        """Approved, rejected or expired."""
        return self.status in _DECIDED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return self.model_dump(mode="json")


def proposal_event_id(proposal_id: str) -> str:
    """Event id of a proposal."""
    return f"proposal:{proposal_id}"


def decision_event_id(proposal_id: str) -> str:
    """Event id of a proposal's one decision (deterministic: the second one cannot commit)."""
    return f"decision:{proposal_id}"


def new_proposal_id() -> str:
    """A fresh proposal id (32 hex digits)."""
    return uuid.uuid4().hex


def propose(
    store: AuditStore,
    proposal: Proposal,
    proposer: Actor,
    *,
    at: datetime | None = None,
    proposal_id: str | None = None,
) -> ProposalState:
    """Record a proposal (event ``<kind>.proposed``); it takes effect only once approved.

    Args:
        store: the audit store.
        proposal: what is proposed.
        proposer: who proposes (any role may).
        at: when (default now).
        proposal_id: its id (default a fresh one).

    Raises:
        ConflictError: ``duplicate_proposal`` if ``proposal_id`` is taken.
        AuditUnavailableError: if the store cannot commit (nothing is recorded).
    """
    proposal_id = proposal_id or new_proposal_id()
    if not _valid_id(proposal_id):
        raise ValueError(f"proposal id {proposal_id!r} must be 1-48 letters, digits, '_', '-'")
    at = aware(at or utc_now())
    event = EventRecord(
        event_id=proposal_event_id(proposal_id),
        kind=f"{proposal.kind}.proposed",
        actor=proposer.name,
        role=proposer.role,
        subject=proposal.subject,
        reason=proposal.comment,
        occurred_at=at,
        payload={
            "proposal_id": proposal_id,
            "kind": proposal.kind,
            "required_role": proposal.required_role.value,
            "expires_at": aware(proposal.expires_at).isoformat() if proposal.expires_at else None,
            "data": proposal.payload,
        },
    )
    try:
        stored = store.append_event(event)
    except AuditDuplicateEventError as error:
        raise ConflictError(
            "duplicate_proposal", f"proposal {proposal_id} already exists"
        ) from error
    return _project(stored, None, at)


def get_proposal(
    store: AuditStore, proposal_id: str, *, kind: str | None = None, now: datetime | None = None
) -> ProposalState:
    """A proposal and its decision, with its status at ``now`` (default now).

    Raises:
        NotFoundError: no proposal with this id (of this ``kind`` when given).
    """
    what = f"{kind} {proposal_id}" if kind else f"proposal {proposal_id}"
    if not _valid_id(proposal_id):
        raise NotFoundError("not_found", f"no {what}")
    try:
        proposed = store.event(proposal_event_id(proposal_id))
    except AuditRecordNotFoundError:
        raise NotFoundError("not_found", f"no {what}") from None
    if kind is not None and proposed.payload.get("kind") != kind:
        raise NotFoundError("not_found", f"no {what}")
    try:
        decision: StoredEvent | None = store.event(decision_event_id(proposal_id))
    except AuditRecordNotFoundError:
        decision = None
    return _project(proposed, decision, aware(now or utc_now()))


Check = Callable[[ProposalState], None]
"""A veto run before a decision is recorded (raise a `ManagementError` to refuse)."""


def check_decider(state: ProposalState, decider: Actor) -> None:
    """Four eyes: may ``decider`` approve or reject ``state``?

    Raises:
        ForbiddenError: ``four_eyes`` (the proposer), ``not_an_approver`` (role below
            approver), ``needs_senior_approver`` (role below the proposal's required role).
    """
    if decider.name.strip().casefold() == state.proposer.strip().casefold():
        raise ForbiddenError(
            "four_eyes",
            f"'{decider.name}' proposed {state.kind} {state.proposal_id} and may not decide on "
            "it (four eyes)",
        )
    try:
        role = Role(decider.role)
    except ValueError:
        role = None
    # A proposal any analyst may confirm (a system proposal without four eyes) still needs
    # somebody other than its proposer; every other proposal needs an approver or above.
    floor = min(state.required_role.rank, Role.APPROVER.rank)
    if role is None or role.rank < floor:
        raise ForbiddenError(
            "not_an_approver",
            f"role '{decider.role}' may not decide; {state.required_role.value} or above needed",
        )
    if role.rank < state.required_role.rank:
        code = (
            "needs_senior_approver"
            if state.required_role is Role.SENIOR_APPROVER
            else "insufficient_role"
        )
        raise ForbiddenError(
            code,
            f"{state.kind} {state.proposal_id} needs a {state.required_role.value} to decide; "
            f"'{decider.name}' is {role.value}",
        )


def decide(
    store: AuditStore,
    proposal_id: str,
    decider: Actor,
    *,
    approve: bool,
    comment: str,
    kind: str | None = None,
    at: datetime | None = None,
    check: Check | None = None,
    decision_payload: dict[str, Any] | None = None,
) -> ProposalState:
    """Approve or reject a pending proposal (event ``<kind>.approved`` / ``<kind>.rejected``).

    Args:
        store: the audit store.
        proposal_id: the proposal.
        decider: who decides (not the proposer; at least the proposal's required role).
        approve: approve (True) or reject.
        comment: the decider's reason.
        kind: the proposal's kind, if the caller expects one (another kind is not found).
        at: when (default now).
        check: the proposal kind's own veto, run before anything is recorded.
        decision_payload: data recorded with the decision (e.g. the approval's validity).

    Raises:
        NotFoundError: no such proposal.
        ForbiddenError: see `check_decider`.
        ConflictError: ``already_decided`` (also for the loser of two concurrent deciders)
            or ``expired`` (its expiry is recorded then).
        AuditUnavailableError: if the store cannot commit (nothing is recorded).
    """
    at = aware(at or utc_now())
    state = get_proposal(store, proposal_id, kind=kind, now=at)
    if state.decided and state.decision_record is not None:
        raise _already_decided(state)
    if state.status is ProposalStatus.EXPIRED:
        expired = _record_expiry(store, state, at)
        if expired.decided_by != SYSTEM_ACTOR.name:
            raise _already_decided(expired)
        when = state.expires_at.isoformat() if state.expires_at else "?"
        raise ConflictError("expired", f"{state.kind} {proposal_id} expired undecided at {when}")
    check_decider(state, decider)
    if check is not None:
        check(state)
    status = ProposalStatus.APPROVED if approve else ProposalStatus.REJECTED
    event = _decision_event(state, decider, status, comment, at, decision_payload or {})
    try:
        stored = store.append_event(event)
    except AuditDuplicateEventError:
        raise _already_decided(get_proposal(store, proposal_id, now=at)) from None
    return _with_decision(state, stored)


def expire_due(store: AuditStore, kind: str, *, now: datetime | None = None) -> list[ProposalState]:
    """Record the expiry of every pending ``kind`` proposal past its ``expires_at``.

    Returns:
        The proposals this call expired (one a concurrent decider got first is skipped).
    """
    now = aware(now or utc_now())
    expired = []
    for state in list_proposals(store, kind, now=now):
        if state.status is ProposalStatus.EXPIRED and state.decision_record is None:
            result = _record_expiry(store, state, now)
            if result.decided_by == SYSTEM_ACTOR.name and result.decision_record is not None:
                expired.append(result)
    return expired


def list_proposals(
    store: AuditStore,
    kind: str,
    *,
    subject: str | None = None,
    status: ProposalStatus | None = None,
    now: datetime | None = None,
) -> list[ProposalState]:
    """Every ``kind`` proposal with its status at ``now``, oldest first.

    ``subject`` keeps one customer's (or measure's); ``status`` keeps those in that status.
    """
    now = aware(now or utc_now())
    decisions: dict[str, StoredEvent] = {}
    for outcome in _DECIDED:
        for event in iter_events(store, kind=f"{kind}.{outcome.value}", subject=subject):
            decisions[str(event.payload.get("proposal_id"))] = event
    found = [
        _project(event, decisions.get(str(event.payload.get("proposal_id"))), now)
        for event in iter_events(store, kind=f"{kind}.proposed", subject=subject)
    ]
    return [state for state in found if status is None or state.status is status]


def states_from_events(
    events: Iterable[StoredEvent], now: datetime | None = None
) -> list[ProposalState]:
    """The proposals among ``events`` (any kinds) with their decisions, oldest first.

    The projection of a stream already read (a customer's history).
    """
    now = aware(now or utc_now())
    proposed: list[StoredEvent] = []
    decisions: dict[str, StoredEvent] = {}
    for event in events:
        if event.event_id.startswith("proposal:"):
            proposed.append(event)
        elif event.event_id.startswith("decision:"):
            decisions[event.event_id.removeprefix("decision:")] = event
    return [
        _project(event, decisions.get(event.event_id.removeprefix("proposal:")), now)
        for event in sorted(proposed, key=lambda e: e.id)
    ]


# --- internals ------------------------------------------------------------------------------


def _valid_id(proposal_id: str) -> bool:
    return re.fullmatch(_ID_PATTERN, proposal_id) is not None


def _decision_event(
    state: ProposalState,
    actor: Actor,
    status: ProposalStatus,
    comment: str,
    at: datetime,
    data: dict[str, Any],
) -> EventRecord:
    return EventRecord(
        event_id=decision_event_id(state.proposal_id),
        kind=f"{state.kind}.{status.value}",
        actor=actor.name,
        role=actor.role,
        subject=state.subject,
        reason=comment,
        occurred_at=at,
        payload={
            "proposal_id": state.proposal_id,
            "kind": state.kind,
            "decision": status.value,
            "proposer": state.proposer,
            "data": data,
        },
    )


def _record_expiry(store: AuditStore, state: ProposalState, at: datetime) -> ProposalState:
    """Record an expiry; if somebody decided first, their decision."""
    reason = (
        f"undecided at its expiry {state.expires_at.isoformat()}" if state.expires_at else "expired"
    )
    event = _decision_event(state, SYSTEM_ACTOR, ProposalStatus.EXPIRED, reason, at, {})
    try:
        return _with_decision(state, store.append_event(event))
    except AuditDuplicateEventError:
        return get_proposal(store, state.proposal_id, now=at)


def _already_decided(state: ProposalState) -> ConflictError:
    when = state.decided_at.isoformat() if state.decided_at else "?"
    return ConflictError(
        "already_decided",
        f"{state.kind} {state.proposal_id} is already {state.status.value} "
        f"(by {state.decided_by} at {when})",
    )


def _project(proposed: StoredEvent, decision: StoredEvent | None, now: datetime) -> ProposalState:
    payload = proposed.payload
    expires = payload.get("expires_at")
    state = ProposalState(
        proposal_id=str(payload["proposal_id"]),
        kind=str(payload["kind"]),
        subject=proposed.subject,
        payload=dict(payload.get("data") or {}),
        required_role=Role(payload["required_role"]),
        proposer=proposed.actor,
        proposer_role=proposed.role,
        proposed_at=parse_time(proposed.occurred_at),
        comment=proposed.reason,
        expires_at=parse_time(expires) if expires else None,
        status=ProposalStatus.PENDING,
        proposal_record=proposed.id,
    )
    if decision is not None and parse_time(decision.occurred_at) <= now:
        return _with_decision(state, decision)
    if state.expires_at is not None and now >= state.expires_at:
        return state.model_copy(update={"status": ProposalStatus.EXPIRED})
    return state


def _with_decision(state: ProposalState, decision: StoredEvent) -> ProposalState:
    return state.model_copy(
        update={
            "status": ProposalStatus(decision.payload["decision"]),
            "decided_by": decision.actor,
            "decider_role": decision.role,
            "decided_at": parse_time(decision.occurred_at),
            "decision_comment": decision.reason,
            "decision_payload": dict(decision.payload.get("data") or {}),
            "decision_record": decision.id,
        }
    )
