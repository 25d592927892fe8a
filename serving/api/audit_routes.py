"""Audit routes (auditor): one stored decision, its replay, the chain's verification."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from audit import AuditError, ReplayResult, StoredDecision, replay
from serving.api.deps import get_state, require
from serving.api.errors import ApiError
from serving.api.idempotency import IdempotentRoute
from serving.api.ids import stored_decision
from serving.api.responses import ChainCheck
from serving.auth import Role
from serving.batch_record import BatchReplayError, ReadingRescorer
from serving.engine import ScoringError

router = APIRouter(
    prefix="/audit",
    tags=["audit"],
    dependencies=[Depends(require(Role.AUDITOR))],
    route_class=IdempotentRoute,
)
_STATE = Depends(get_state)


@router.get("/verify", response_model=ChainCheck)
async def audit_verify(state: Any = _STATE) -> JSONResponse:
    """Verify the whole hash chain."""
    _, audit = state.ready_engine()
    result = await run_in_threadpool(audit.verify)
    return JSONResponse(dataclasses.asdict(result))


@router.get("/{record_id}", response_model=StoredDecision)
async def audit_record(record_id: str, state: Any = _STATE) -> JSONResponse:
    """One stored decision (row id or decision id)."""
    _, audit = state.ready_engine()
    return JSONResponse((await stored_decision(audit, record_id)).to_dict())


@router.post("/{record_id}/replay", response_model=ReplayResult)
async def audit_replay(record_id: str, state: Any = _STATE) -> JSONResponse:
    """Re-score the stored inputs with the recorded model (409 when another bundle made it)."""
    engine, audit = state.ready_engine()
    record = await stored_decision(audit, record_id)

    def loader(bundle_hash: str) -> ReadingRescorer:
        if bundle_hash == engine.bundle_hash:  # by id: the records read again from the store
            return ReadingRescorer(engine, store=state.config.raw_url)
        raise ApiError(
            409,
            "model_unavailable",
            f"record {record.id} was scored by bundle {bundle_hash[:12]}, this service runs "
            f"{engine.bundle_hash[:12]}; replay it offline with that bundle",
        )

    try:
        result = await run_in_threadpool(replay, audit, record.id, loader)
    except (AuditError, ScoringError, BatchReplayError) as error:
        # The record exists but cannot be re-scored (damaged body, request no longer valid,
        # its customer's records changed in the store or the store unreadable).
        raise ApiError(409, "replay_failed", str(error)) from error
    return JSONResponse(result.to_dict())
