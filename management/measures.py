"""Emergency measures on the audit chain: proposed by an admin, active once a senior approves.

A measure is a ``measure`` proposal (`management.proposals`) whose subject is its id; it
applies from the later of its approval and its start until its expiry, to every customer in
its scope (`rating.lifecycle.MeasureScope`), and ends by itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit import AuditStore
from features.schema import BoundedDay
from management.errors import InvalidInputError
from management.events import Actor, aware, utc_now
from management.proposals import (
    Proposal,
    ProposalState,
    ProposalStatus,
    decide,
    get_proposal,
    list_proposals,
    propose,
)
from rating.judgement import Role
from rating.lifecycle import Measure, MeasureEffect, MeasureScope, MeasureStatus

KIND = "measure"


class MeasureInput(BaseModel):
    """A proposed emergency measure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    scope: MeasureScope
    effect: MeasureEffect
    reason: str = Field(min_length=10, max_length=4000)
    starts_on: BoundedDay
    expires_on: BoundedDay

    @model_validator(mode="after")
    def _dates(self) -> MeasureInput:
        if self.expires_on <= self.starts_on:
            raise ValueError(f"expires_on {self.expires_on} must be after starts_on")
        return self


class MeasureView(BaseModel):
    """An emergency measure with its status now."""

    measure_id: str
    title: str
    status: MeasureStatus
    scope: MeasureScope
    effect: MeasureEffect
    reason: str
    starts_on: date
    expires_on: date
    proposer: str
    approver: str | None
    decided_at: str | None
    decision_comment: str | None


@dataclass(frozen=True)
class MeasureState:
    """A measure with its status at a moment and its proposal."""

    measure: Measure
    status: MeasureStatus
    proposal: ProposalState

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        m = self.measure
        decided_at = self.proposal.decided_at
        return MeasureView(
            measure_id=m.measure_id,
            title=m.title,
            status=self.status,
            scope=m.scope,
            effect=m.effect,
            reason=m.reason,
            starts_on=m.starts_on,
            expires_on=m.expires_on,
            proposer=m.proposer,
            approver=m.approver,
            decided_at=decided_at.isoformat() if decided_at else None,
            decision_comment=self.proposal.decision_comment,
        ).model_dump(mode="json")


def propose_measure(
    store: AuditStore,
    actor: Actor,
    measure: MeasureInput,
    *,
    pending_days: int,
    at: datetime | None = None,
) -> MeasureState:
    """Propose an emergency measure; it acts only once a senior approver approves it.

    Raises:
        InvalidInputError: ``already_expired`` for a measure that ends before today.
        AuditUnavailableError: if the store cannot commit (nothing is recorded).
    """
    at = aware(at or utc_now())
    if measure.expires_on <= at.date():
        raise InvalidInputError(
            "already_expired", f"expires_on {measure.expires_on} is not after today", "expires_on"
        )
    measure_id = f"M-{uuid.uuid4().hex[:12]}"
    state = propose(
        store,
        Proposal(
            kind=KIND,
            subject=measure_id,
            payload=measure.model_dump(mode="json", exclude={"reason"}),
            required_role=Role.SENIOR_APPROVER,
            comment=measure.reason,
            expires_at=at + timedelta(days=pending_days),
        ),
        actor,
        at=at,
        proposal_id=measure_id,
    )
    return _view(state, at)


def decide_measure(
    store: AuditStore,
    measure_id: str,
    decider: Actor,
    *,
    approve: bool,
    comment: str,
    at: datetime | None = None,
) -> MeasureState:
    """Approve (activate) or reject a proposed measure (a senior approver, not the proposer).

    Raises:
        NotFoundError, ForbiddenError, ConflictError: as `management.proposals.decide`.
    """
    at = aware(at or utc_now())
    state = decide(store, measure_id, decider, approve=approve, comment=comment, kind=KIND, at=at)
    return _view(state, at)


def get_measure(store: AuditStore, measure_id: str, *, now: datetime | None = None) -> MeasureState:
    """One measure and its status at ``now``.

    Raises:
        NotFoundError: no such measure.
    """
    now = aware(now or utc_now())
    return _view(get_proposal(store, measure_id, kind=KIND, now=now), now)


def list_measures(store: AuditStore, *, now: datetime | None = None) -> list[MeasureState]:
    """Every measure with its status at ``now``, oldest first."""
    now = aware(now or utc_now())
    return [_view(state, now) for state in list_proposals(store, KIND, now=now)]


def active_measures(store: AuditStore, day: date) -> list[Measure]:
    """The measures active on ``day`` (approved by then, started, not expired)."""
    end = aware(datetime(day.year, day.month, day.day)) + timedelta(days=1)
    return [v.measure for v in list_measures(store, now=end) if v.measure.active_at(day)]


def _view(state: ProposalState, now: datetime) -> MeasureState:
    data = state.payload
    approved = state.status is ProposalStatus.APPROVED
    rejected = state.status is ProposalStatus.REJECTED
    measure = Measure(
        measure_id=state.proposal_id,
        title=data["title"],
        scope=MeasureScope.model_validate(data["scope"]),
        effect=MeasureEffect.model_validate(data["effect"]),
        reason=state.comment,
        starts_on=date.fromisoformat(data["starts_on"]),
        expires_on=date.fromisoformat(data["expires_on"]),
        proposer=state.proposer,
        approver=state.decided_by if (approved or rejected) else None,
        decided_on=state.decided_at.date() if (approved or rejected) and state.decided_at else None,
        rejected=rejected,
    )
    if state.status is ProposalStatus.EXPIRED:
        status: MeasureStatus = "expired"
    elif state.status is ProposalStatus.PENDING:
        status = "expired" if now.date() >= measure.expires_on else "proposed"
    else:
        status = measure.status_at(now.date())
    return MeasureState(measure=measure, status=status, proposal=state)


def measures_by_customer(
    store: AuditStore, day: date, segments: list[tuple[str, dict[str, str | None]]]
) -> list[tuple[str, Measure]]:
    """(customer id, measure) for every active measure on ``day`` covering each customer.

    Args:
        store: the audit store.
        day: the rating date.
        segments: (customer id, its ``industry``, ``region``, ``size_class``).
    """
    active = active_measures(store, day)
    if not active:
        return []
    return [
        (customer_id, measure)
        for customer_id, segment in segments
        for measure in active
        if measure.scope.covers(customer_id, segment)
    ]
