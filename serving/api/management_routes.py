"""Human-judgement routes: assessments, overrides (four eyes), ratings, history, the queue.

Roles: analysts record assessments and propose overrides and expert ratings; approvers (and
senior approvers) decide on others' proposals; ratings and history are read by scorers,
analysts and up, and auditors. Every action is an event of the audit chain, recorded before
the answer leaves (``management``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from audit import AuditError, AuditUnavailableError
from features.schema import BoundedDay
from management import Actor, ManagementError, ProposalStatus
from management.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from management.judgement import (
    AssessmentInput,
    AssessmentResponse,
    CustomerRatingView,
    OverrideInput,
    OverrideView,
    Queue,
    decide_override,
    get_override,
    history,
    override_view,
    overrides,
    propose_override,
    queue_view,
    rating_at,
    record_assessment,
)
from rating.judgement import JudgementError, OverrideKind
from serving.api.body import json_body, parse_body
from serving.api.deps import get_state, require
from serving.api.errors import ApiError
from serving.api.idempotency import IdempotentRoute
from serving.api.responses import (
    CustomerHistory,
    Overrides,
)
from serving.auth import Caller, Role
from serving.schemas import FieldError

router = APIRouter(tags=["judgement"], route_class=IdempotentRoute)
_STATE = Depends(get_state)
_ANALYST = Depends(require(Role.ANALYST))
_APPROVER = Depends(require(Role.APPROVER))
_READERS = Depends(require((Role.SCORER, Role.ANALYST, Role.AUDITOR)))
_REVIEWERS = Depends(require((Role.ANALYST, Role.AUDITOR)))
_CUSTOMER_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_T = TypeVar("_T")


def _iso_day(value: object) -> object:
    # Lax pydantic reads query text such as "0" as epoch seconds: only ISO days are meant.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be an ISO date (YYYY-MM-DD)")
    return value


QueryDay = Annotated[BoundedDay, BeforeValidator(_iso_day)]
"""A date query parameter: an ISO day within the contract's bounds."""


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AssessmentRequest(_Body):
    """A qualitative assessment: one answer per factor of the questionnaire."""

    customer_id: str = Field(pattern=_CUSTOMER_ID)
    as_of: BoundedDay
    """The rating date it assesses (not in the future)."""
    answers: dict[str, str] = Field(min_length=1, max_length=64)
    """Factor code -> answer code (``rating.qualitative`` in params.yaml)."""
    comment: str = Field(default="", max_length=4000)


class OverrideRequest(_Body):
    """An override (or, with ``kind`` expert_rating and reason OR07, an expert rating)."""

    customer_id: str = Field(pattern=_CUSTOMER_ID)
    as_of: BoundedDay
    proposed_grade: str = Field(min_length=1, max_length=8)
    reason_code: str = Field(min_length=1, max_length=8)
    comment: str = Field(min_length=1, max_length=4000)
    kind: Literal["override", "expert_rating"] = "override"


class DecisionRequest(_Body):
    """An approver's decision on a proposal: the reason is required."""

    comment: str = Field(min_length=1, max_length=4000)

    @field_validator("comment")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("comment must not be blank")
        return value


BODY_MODELS: list[type[BaseModel]] = [AssessmentRequest, OverrideRequest, DecisionRequest]
"""Request models whose schemas the OpenAPI document declares."""


def _decision(model: type[BaseModel]) -> dict[str, Any]:
    """Route options of an approve / reject route answering ``model``."""
    return {"response_model": model, "openapi_extra": json_body(DecisionRequest)}


def _actor(caller: Caller) -> Actor:
    return Actor(name=caller.name, role=caller.role.value)


def _http(error: Exception) -> ApiError:
    """The API error of a management, judgement or audit error."""
    if isinstance(error, JudgementError | InvalidInputError):
        field = error.field or "body"
        message = str(error)
        return ApiError(422, error.code, message, [FieldError(loc=field, message=message)])
    if isinstance(error, NotFoundError):
        return ApiError(404, error.code, error.message)
    if isinstance(error, ForbiddenError):
        return ApiError(403, error.code, error.message)
    if isinstance(error, ConflictError):
        fields = [FieldError(loc=error.field, message=error.message)] if error.field else None
        return ApiError(409, error.code, error.message, fields)
    if isinstance(error, AuditUnavailableError):
        return ApiError(503, "audit_unavailable", "the action could not be recorded; retry")
    if isinstance(error, AuditError):
        return ApiError(503, "audit_unavailable", "the audit store cannot be read; retry")
    if isinstance(error, ManagementError):
        return ApiError(409, error.code, error.message)
    raise error


async def _call(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a store call in a worker thread, its errors as API errors."""
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except (ManagementError, JudgementError, AuditError) as error:
        raise _http(error) from error


@router.post(
    "/assessments",
    status_code=201,
    response_model=AssessmentResponse,
    openapi_extra=json_body(AssessmentRequest),
)
async def post_assessment(
    request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Record a qualitative assessment (analyst): its score moves the model grade by notches."""
    body, _ = await parse_body(request, state.config.limits, AssessmentRequest)
    rules, audit = state.rules()
    item = AssessmentInput(body.customer_id, body.as_of, body.answers, body.comment)
    recorded = await _call(record_assessment, audit, rules, _actor(caller), item)
    return JSONResponse(recorded.receipt(), status_code=201)


@router.post(
    "/overrides",
    status_code=201,
    response_model=OverrideView,
    openapi_extra=json_body(OverrideRequest),
)
async def post_override(
    request: Request, caller: Caller = _ANALYST, state: Any = _STATE
) -> JSONResponse:
    """Propose an override or expert rating (analyst); it applies once another person approves.

    409 ``no_model_decision`` when the customer has no model decision at or before ``as_of``.
    """
    body, _ = await parse_body(request, state.config.limits, OverrideRequest)
    rules, audit = state.rules()
    item = OverrideInput(
        body.customer_id,
        body.as_of,
        body.proposed_grade,
        body.reason_code,
        body.comment,
        OverrideKind(body.kind),
    )
    proposed = await _call(propose_override, audit, rules, _actor(caller), item)
    return JSONResponse(override_view(proposed), status_code=201)


@router.get("/overrides", response_model=Overrides, dependencies=[_REVIEWERS])
async def list_overrides(
    state: Any = _STATE,
    status: Literal["pending", "approved", "rejected", "expired"] | None = None,
    customer_id: str | None = Query(default=None, pattern=_CUSTOMER_ID),
) -> JSONResponse:
    """Overrides and expert ratings, oldest first (analyst and up, auditor)."""
    _, audit = state.rules()
    wanted = ProposalStatus(status) if status else None
    found = await _call(overrides, audit, customer_id=customer_id, status=wanted)
    return JSONResponse({"overrides": [override_view(s) for s in found]})


@router.get("/overrides/{override_id}", response_model=OverrideView, dependencies=[_REVIEWERS])
async def one_override(override_id: str, state: Any = _STATE) -> JSONResponse:
    """One override or expert rating with its decision (analyst and up, auditor)."""
    _, audit = state.rules()
    return JSONResponse(override_view(await _call(get_override, audit, override_id)))


async def _decide(
    request: Request, override_id: str, caller: Caller, state: Any, approve: bool
) -> JSONResponse:
    body, _ = await parse_body(request, state.config.limits, DecisionRequest)
    _, audit = state.rules()
    decided = await _call(
        decide_override, audit, override_id, _actor(caller), approve=approve, comment=body.comment
    )
    return JSONResponse(override_view(decided))


@router.post("/overrides/{override_id}/approve", **_decision(OverrideView))
async def approve_override(
    override_id: str, request: Request, caller: Caller = _APPROVER, state: Any = _STATE
) -> JSONResponse:
    """Approve another person's proposal (approver; senior approver beyond the notch limit).

    403 ``four_eyes`` for the proposer, ``needs_senior_approver``; 409 when already decided.
    """
    return await _decide(request, override_id, caller, state, approve=True)


@router.post("/overrides/{override_id}/reject", **_decision(OverrideView))
async def reject_override(
    override_id: str, request: Request, caller: Caller = _APPROVER, state: Any = _STATE
) -> JSONResponse:
    """Reject another person's proposal (same rules as approving)."""
    return await _decide(request, override_id, caller, state, approve=False)


def _customer(customer_id: str) -> str:
    if not re.fullmatch(_CUSTOMER_ID, customer_id):
        message = "customer id must be 1-64 letters, digits, '_', '.', ':', '-'"
        raise ApiError(
            422, "validation_error", message, [FieldError(loc="customer_id", message=message)]
        )
    return customer_id


@router.get(
    "/customers/{customer_id}/rating", response_model=CustomerRatingView, dependencies=[_READERS]
)
async def customer_rating(
    customer_id: str, state: Any = _STATE, as_of: QueryDay | None = None
) -> JSONResponse:
    """The customer's rating at ``as_of`` (default today), with its parts.

    Its latest model decision at or before ``as_of``, with the assessment and approved
    override valid then (scorer, analyst and up, auditor).
    """
    rules, audit = state.rules()
    day = as_of or date.today()
    found = await _call(rating_at, audit, rules, _customer(customer_id), day)
    if found is None:
        raise ApiError(
            404,
            "no_model_decision",
            f"customer {customer_id} has no model decision at or before {day.isoformat()}",
        )
    return JSONResponse(found.to_dict())


@router.get(
    "/customers/{customer_id}/history", response_model=CustomerHistory, dependencies=[_READERS]
)
async def customer_history(customer_id: str, state: Any = _STATE) -> JSONResponse:
    """Every rating, assessment and override event of the customer, in time order."""
    _, audit = state.rules()
    entries = await _call(history, audit, _customer(customer_id))
    return JSONResponse({"customer_id": customer_id, "history": entries})


@router.get("/queue", response_model=Queue, dependencies=[_ANALYST])
async def analysts_queue(state: Any = _STATE, as_of: QueryDay | None = None) -> JSONResponse:
    """Customers needing an expert rating at ``as_of`` (default today) (analyst and up).

    Insufficient data and no approved expert rating; pending expert ratings are shown.
    """
    rules, audit = state.rules()
    return JSONResponse(await _call(queue_view, audit, rules, as_of or date.today()))
