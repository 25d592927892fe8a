"""Customer-management routes: status lifecycle, reviews, contacts, contract terms, measures.

Roles: analysts (and up) propose status changes and record reviews, contacts and terms;
approvers (and up) confirm suspensions, exits and reinstatements proposed by someone else;
admins propose emergency measures and senior approvers activate them. Every action is an
event of the audit chain, recorded before the answer leaves (``management``).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from features.schema import BoundedDay
from management import ProposalStatus, list_proposals
from management.crm import (
    ContactInput,
    CustomerRecords,
    RecordedView,
    ReviewInput,
    TermsInput,
    ensure_known_customer,
    record_contact,
    record_review,
    record_terms,
)
from management.crm import customer_records as records_of
from management.lifecycle import KIND as STATUS_KIND
from management.lifecycle import (
    CustomerStatusView,
    StatusProposalView,
    decide_status_change,
    propose_status_change,
    status_at,
)
from management.measures import (
    MeasureInput,
    MeasureView,
    decide_measure,
    list_measures,
    propose_measure,
)
from management.proposals import ProposalState
from management.warnings import warnings_of
from rating.lifecycle import CustomerStatus
from serving.api.body import json_body, parse_body
from serving.api.deps import get_state, require
from serving.api.idempotency import IdempotentRoute
from serving.api.management_routes import (
    DecisionRequest,
    QueryDay,
    _actor,
    _call,
    _customer,
    _decision,
)
from serving.api.responses import (
    CustomerWarnings,
    Me,
    Measures,
    StatusChanges,
)
from serving.auth import Caller, Role

router = APIRouter(tags=["customer management"], route_class=IdempotentRoute)
_STATE = Depends(get_state)
_ANALYST = Depends(require(Role.ANALYST))
_SENIOR = Depends(require(Role.SENIOR_APPROVER))
_ADMIN = Depends(require(Role.ADMIN))
_READERS = Depends(require((Role.SCORER, Role.ANALYST, Role.AUDITOR)))
_MEASURE_READERS = Depends(require((Role.SCORER, Role.ANALYST, Role.AUDITOR, Role.ADMIN)))


class StatusRequest(BaseModel):
    """A proposed status change: the target status, why, and for ``exiting`` the exit date."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: CustomerStatus
    reason: str = Field(min_length=1, max_length=4000)
    exit_by: BoundedDay | None = None
    """For ``exiting``: the date the exposure must end."""


BODY_MODELS: list[type[BaseModel]] = [
    StatusRequest,
    ReviewInput,
    ContactInput,
    TermsInput,
    MeasureInput,
]
"""Request models whose schemas the OpenAPI document declares."""


def _recorded(body: type[BaseModel]) -> dict[str, Any]:
    """Route options of a route recording ``body`` (201 `RecordedView`)."""
    return {"status_code": 201, "response_model": RecordedView, "openapi_extra": json_body(body)}


@router.get("/me", response_model=Me)
async def me(caller: Caller = Depends(require())) -> Me:  # noqa: B008
    """The caller's name and role (any valid token): what pages show and offer."""
    return Me(name=caller.name, role=caller.role.value)


def _today() -> date:
    return date.today()


@router.post(
    "/customers/{customer_id}/status",
    status_code=201,
    response_model=StatusProposalView,
    openapi_extra=json_body(StatusRequest),
)
async def propose_status(
    customer_id: str, request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Propose a status change (analyst and up).

    ``watch`` and ``restricted`` take effect at once; ``suspended``, ``exiting`` and
    reinstatements out of them wait (``status: pending``) for an approver other than the
    proposer. 409 ``status_change_pending``, ``same_status``, ``transition_not_allowed``.
    """
    body, _ = await parse_body(request, state.config.limits, StatusRequest)
    _, audit = state.rules()
    customer = _customer(customer_id)
    await _call(ensure_known_customer, audit, customer)
    proposed = await _call(
        propose_status_change,
        audit,
        _actor(caller),
        customer,
        body.status,
        body.reason,
        state.lifecycle,
        exit_by=body.exit_by,
    )
    return JSONResponse(proposed.to_dict(), status_code=201)


@router.get(
    "/customers/{customer_id}/status", response_model=CustomerStatusView, dependencies=[_READERS]
)
async def customer_status(
    customer_id: str, state: Any = _STATE, as_of: QueryDay | None = None
) -> JSONResponse:
    """The customer's status at the end of ``as_of`` (default today) and any pending change."""
    _, audit = state.rules()
    found = await _call(
        status_at, audit, _customer(customer_id), as_of or _today(), state.lifecycle
    )
    return JSONResponse(found.to_dict())


@router.get(
    "/status-changes",
    response_model=StatusChanges,
    dependencies=[Depends(require((Role.ANALYST, Role.AUDITOR)))],
)
async def status_changes(
    state: Any = _STATE,
    status: Literal["pending", "approved", "rejected", "expired"] | None = None,
) -> JSONResponse:
    """Status changes that wait or waited for a second person, oldest first."""
    _, audit = state.rules()
    wanted = ProposalStatus(status) if status else None
    found = await _call(list_proposals, audit, STATUS_KIND, status=wanted)
    return JSONResponse({"status_changes": [s.to_dict() for s in found]})


async def _decide_status(
    change_id: str, request: Request, caller: Caller, state: Any, approve: bool
) -> JSONResponse:
    body, _ = await parse_body(request, state.config.limits, DecisionRequest)
    _, audit = state.rules()
    decided = await _call(
        decide_status_change,
        audit,
        change_id,
        _actor(caller),
        approve=approve,
        comment=body.comment,
        config=state.lifecycle,
    )
    return JSONResponse(decided.to_dict())


@router.post("/status-changes/{change_id}/approve", **_decision(ProposalState))
async def approve_status_change(
    change_id: str, request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Confirm a pending status change (not its proposer; an approver for four-eyes changes).

    403 ``four_eyes``, ``not_an_approver``; 409 ``already_decided``, ``expired``,
    ``status_changed_meanwhile``.
    """
    return await _decide_status(change_id, request, caller, state, approve=True)


@router.post("/status-changes/{change_id}/reject", **_decision(ProposalState))
async def reject_status_change(
    change_id: str, request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Reject a pending status change (same rules as confirming)."""
    return await _decide_status(change_id, request, caller, state, approve=False)


@router.post("/reviews", **_recorded(ReviewInput))
async def post_review(
    request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Record a credit review (analyst and up; the reviewer is the token's name).

    The review schedule counts from the last recorded review. 409 ``already_recorded``.
    """
    body, _ = await parse_body(request, state.config.limits, ReviewInput)
    _, audit = state.rules()
    await _call(ensure_known_customer, audit, body.customer_id)
    recorded = await _call(record_review, audit, _actor(caller), body)
    return JSONResponse(recorded.to_dict(), status_code=201)


@router.post("/contacts", **_recorded(ContactInput))
async def post_contact(
    request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Record a contact with the customer: visit, call, email, letter or meeting."""
    body, _ = await parse_body(request, state.config.limits, ContactInput)
    _, audit = state.rules()
    await _call(ensure_known_customer, audit, body.customer_id)
    recorded = await _call(record_contact, audit, _actor(caller), body)
    return JSONResponse(recorded.to_dict(), status_code=201)


@router.post("/customers/{customer_id}/terms", **_recorded(TermsInput))
async def post_terms(
    customer_id: str, request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Record contract terms: a tier's covenant template or explicit covenants.

    Monitoring checks each covenant against the point-in-time features at every run.
    """
    body, _ = await parse_body(request, state.config.limits, TermsInput)
    _, audit = state.rules()
    customer = _customer(customer_id)
    await _call(ensure_known_customer, audit, customer)
    recorded = await _call(record_terms, audit, _actor(caller), customer, body, state.covenants)
    return JSONResponse(recorded.to_dict(), status_code=201)


@router.get(
    "/customers/{customer_id}/records", response_model=CustomerRecords, dependencies=[_READERS]
)
async def customer_records(customer_id: str, state: Any = _STATE) -> JSONResponse:
    """The relationship record: reviews, contacts and contract terms, oldest first."""
    _, audit = state.rules()
    return JSONResponse(await _call(records_of, audit, _customer(customer_id)))


@router.get(
    "/customers/{customer_id}/warnings", response_model=CustomerWarnings, dependencies=[_READERS]
)
async def customer_warnings(customer_id: str, state: Any = _STATE) -> JSONResponse:
    """The customer's early warnings recorded by monitoring runs, newest run first."""
    _, audit = state.rules()
    customer = _customer(customer_id)
    return JSONResponse(
        {"customer_id": customer, "warnings": await _call(warnings_of, audit, customer)}
    )


@router.post(
    "/measures",
    status_code=201,
    response_model=MeasureView,
    openapi_extra=json_body(MeasureInput),
)
async def post_measure(
    request: Request, caller: Caller = _ADMIN, state: Any = _STATE
) -> JSONResponse:
    """Propose an emergency measure (admin); it acts once a senior approver approves it."""
    body, _ = await parse_body(request, state.config.limits, MeasureInput)
    _, audit = state.rules()
    view = await _call(
        propose_measure,
        audit,
        _actor(caller),
        body,
        pending_days=state.lifecycle.pending_days,
    )
    return JSONResponse(view.to_dict(), status_code=201)


@router.get("/measures", response_model=Measures, dependencies=[_MEASURE_READERS])
async def get_measures(
    state: Any = _STATE,
    status: Literal["proposed", "active", "scheduled", "rejected", "expired"] | None = Query(
        default=None
    ),
) -> JSONResponse:
    """Emergency measures with their status now, oldest first."""
    _, audit = state.rules()
    views = await _call(list_measures, audit)
    return JSONResponse(
        {"measures": [v.to_dict() for v in views if status is None or v.status == status]}
    )


async def _decide_measure(
    measure_id: str, request: Request, caller: Caller, state: Any, approve: bool
) -> JSONResponse:
    body, _ = await parse_body(request, state.config.limits, DecisionRequest)
    _, audit = state.rules()
    view = await _call(
        decide_measure, audit, measure_id, _actor(caller), approve=approve, comment=body.comment
    )
    return JSONResponse(view.to_dict())


@router.post("/measures/{measure_id}/approve", **_decision(MeasureView))
async def approve_measure(
    measure_id: str, request: Request, caller: Caller = _SENIOR, state: Any = _STATE
) -> JSONResponse:
    """Activate a proposed measure (senior approver, not its proposer)."""
    return await _decide_measure(measure_id, request, caller, state, approve=True)


@router.post("/measures/{measure_id}/reject", **_decision(MeasureView))
async def reject_measure(
    measure_id: str, request: Request, caller: Caller = _SENIOR, state: Any = _STATE
) -> JSONResponse:
    """Reject a proposed measure (senior approver, not its proposer)."""
    return await _decide_measure(measure_id, request, caller, state, approve=False)
