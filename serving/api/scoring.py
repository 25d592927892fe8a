"""Scoring routes: ``/score``, ``/score_batch``, ``/explain`` (scorer) and ``/model`` (any role).

The POST routes honour ``Idempotency-Key``: a call's answer is committed with its decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from audit import IdempotentResponse
from serving.api.body import json_body
from serving.api.deps import get_state, require
from serving.api.idempotency import IDEMPOTENCY, Idempotency, IdempotentRoute
from serving.api.responses import ExplainResponse, ModelInfo, ScoreBatchResponse, ScoreResponse
from serving.auth import Caller, Role
from serving.by_id import scoring_body
from serving.engine import ScoringJob
from serving.schemas import ExplainRequest, ScoreBatchRequest, ScoreRequest

router = APIRouter(tags=["scoring"], route_class=IdempotentRoute)
_SCORER = Depends(require(Role.SCORER))
_ANYONE = Depends(require())
_STATE = Depends(get_state)
_POST: dict[str, Any] = {"dependencies": [_SCORER]}  # the role before the idempotency key


def _answer(
    key: Idempotency | None, body: Callable[[list[dict[str, Any]]], Any]
) -> Callable[[list[dict[str, Any]]], IdempotentResponse] | None:
    """How a job stores its call's answer (``body`` of its responses) with its decisions."""
    if key is None:
        return None
    return lambda responses: key.answer(body(responses))


@dataclass(frozen=True)
class _Call:
    """Dependency: what a scoring route works with (its parameters, as FastAPI resolves them)."""

    request: Request
    caller: Caller = _SCORER
    state: Any = _STATE
    key: Idempotency | None = IDEMPOTENCY


_CALL = Depends(_Call)


async def _decide_one(call: _Call, model: type[ScoreRequest]) -> JSONResponse:
    """Decide a call of one request (``/score``, ``/explain``): its response."""
    parsed = await scoring_body(call.request, call.state.config, model)
    body = parsed.body
    charts = [body.chart] if isinstance(body, ExplainRequest) else None
    answer = _answer(call.key, lambda responses: responses[0])
    kind = "score" if charts is None else "explain"
    job = ScoringJob([body], call.caller.name, kind, charts, parsed.sources, answer)
    return JSONResponse((await call.state.decide(job))[0])


@router.post("/score", response_model=ScoreResponse, openapi_extra=json_body(ScoreRequest), **_POST)
async def score(call: _Call = _CALL) -> JSONResponse:
    """Score one customer (scorer)."""
    return await _decide_one(call, ScoreRequest)


@router.post(
    "/score_batch",
    response_model=ScoreBatchResponse,
    openapi_extra=json_body(ScoreBatchRequest),
    **_POST,
)
async def score_batch(call: _Call = _CALL) -> JSONResponse:
    """Score many customers, one audit record each (scorer)."""
    parsed = await scoring_body(call.request, call.state.config, ScoreBatchRequest)
    answer = _answer(call.key, lambda responses: {"results": responses})
    requests = parsed.body.requests
    job = ScoringJob(requests, call.caller.name, "score", sources=parsed.sources, answer=answer)
    return JSONResponse({"results": await call.state.decide(job)})


@router.post(
    "/explain", response_model=ExplainResponse, openapi_extra=json_body(ExplainRequest), **_POST
)
async def explain(call: _Call = _CALL) -> JSONResponse:
    """The score plus the explanation on the tiers, with an optional chart (scorer)."""
    return await _decide_one(call, ExplainRequest)


@router.get("/model", response_model=ModelInfo, dependencies=[_ANYONE])
async def model_info(state: Any = _STATE) -> JSONResponse:
    """The served bundle: model version, hash, scale, tiers (any valid token)."""
    engine, _ = state.ready_engine()
    return JSONResponse(engine.model_info())
