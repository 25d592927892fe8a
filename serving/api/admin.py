"""Admin routes: reload the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from serving.api.body import json_body, parse_body
from serving.api.deps import get_state, require
from serving.api.idempotency import IdempotentRoute
from serving.api.responses import ReloadResponse
from serving.auth import Role
from serving.schemas import ReloadRequest

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require(Role.ADMIN))],
    route_class=IdempotentRoute,
)


@router.post("/reload", response_model=ReloadResponse, openapi_extra=json_body(ReloadRequest))
async def admin_reload(request: Request, state: Any = Depends(get_state)) -> JSONResponse:  # noqa: B008
    """Reload the bundle; the old model stays on failure (409).

    Tokens need no reload: the token file is re-read whenever it changes.
    """
    body, _ = await parse_body(request, state.config.limits, ReloadRequest)
    bundle = Path(body.bundle) if body.bundle else state.config.bundle
    await run_in_threadpool(
        state.load_model, bundle, None if body.bundle else state.config.bundle_hash
    )
    engine, _ = state.ready_engine()
    return JSONResponse({"model_version": engine.model_version, "bundle_hash": engine.bundle_hash})
