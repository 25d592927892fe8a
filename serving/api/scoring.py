"""Scoring routes: ``/score``, ``/score_batch``, ``/explain`` (scorer) and ``/model`` (any role)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from serving.api.body import json_body
from serving.api.deps import get_state, require
from serving.auth import Caller, Role
from serving.by_id import scoring_body
from serving.engine import RequestSource, ScoringJob
from serving.schemas import ExplainRequest, ScoreBatchRequest, ScoreRequest

router = APIRouter(tags=["scoring"])
_SCORER = Depends(require(Role.SCORER))
_ANYONE = Depends(require())
_STATE = Depends(get_state)


def _raw(state: Any) -> str | None:
    """The raw store of scoring by customer id (``RISKGRADE_RAW_URL``), if any."""
    return state.config.raw_url


@router.post("/score", openapi_extra=json_body(ScoreRequest))
async def score(request: Request, caller: Caller = _SCORER, state: Any = _STATE) -> JSONResponse:
    """Score one customer (scorer)."""
    body, raw, read = await scoring_body(request, state.config.limits, ScoreRequest, _raw(state))
    job = ScoringJob([body], caller.name, "score", sources=[RequestSource(raw, read=read.get(""))])
    return JSONResponse((await state.decide(job))[0])


@router.post("/score_batch", openapi_extra=json_body(ScoreBatchRequest))
async def score_batch(
    request: Request, caller: Caller = _SCORER, state: Any = _STATE
) -> JSONResponse:
    """Score many customers, one audit record each (scorer)."""
    limits = state.config.limits
    body, raw, read = await scoring_body(request, limits, ScoreBatchRequest, _raw(state))
    pointers = [f"/requests/{i}" for i in range(len(body.requests))]
    sources = [RequestSource(raw, p, read=read.get(p)) for p in pointers]
    job = ScoringJob(body.requests, caller.name, "score", sources=sources)
    return JSONResponse({"results": await state.decide(job)})


@router.post("/explain", openapi_extra=json_body(ExplainRequest))
async def explain(request: Request, caller: Caller = _SCORER, state: Any = _STATE) -> JSONResponse:
    """The score plus the explanation on the tiers, with an optional chart (scorer)."""
    body, raw, read = await scoring_body(request, state.config.limits, ExplainRequest, _raw(state))
    source = RequestSource(raw, read=read.get(""))
    job = ScoringJob([body], caller.name, "explain", [body.chart], [source])
    return JSONResponse((await state.decide(job))[0])


@router.get("/model", dependencies=[_ANYONE])
async def model_info(state: Any = _STATE) -> JSONResponse:
    """The served bundle: model version, hash, scale, tiers (any valid token)."""
    engine, _ = state.ready_engine()
    return JSONResponse(engine.model_info())
