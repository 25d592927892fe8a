"""One authentication dependency: the caller (token name and role) of a request.

Routes declare ``caller: Caller = Depends(require(Role.AUDITOR))`` (``require()``: any
role). The token store is the worker's (`serving.auth.TokenStore`, re-read when its file
changes); `get_state` finds it on the running BentoML service, and tests override it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import bentoml
from fastapi import Depends
from starlette.requests import Request

from audit import AuditStore
from serving.api.errors import ApiError
from serving.auth import (
    AuthenticationError,
    Caller,
    PermissionDeniedError,
    Role,
    TokenStore,
    TokenStoreUnavailableError,
)


def current_state() -> Any:
    """The running service's state (``serving.service.ServingState``).

    Raises:
        ApiError: 503 while the service is starting.
    """
    try:
        return bentoml.get_current_service().state
    except bentoml.exceptions.BentoMLException as error:
        raise ApiError(503, "not_ready", "service is starting") from error


async def get_state() -> Any:
    """Dependency: `current_state` (async: FastAPI runs sync dependencies in a thread)."""
    return current_state()


def audit_store(state: Any) -> AuditStore:
    """The worker's audit store.

    Raises:
        ApiError: 503 when it is unavailable.
    """
    audit: AuditStore | None = state.open_audit()
    if audit is None:
        raise ApiError(503, "not_ready", "audit store unavailable")
    return audit


def authenticate(
    tokens: TokenStore | None, authorization: str | None, role: Role | tuple[Role, ...] | None
) -> Caller:
    """The caller of an ``Authorization`` header, who must hold ``role`` (any role when None).

    A tuple admits any of its roles; the judgement roles admit those above them.

    Raises:
        ApiError: 401 (no valid token), 403 (other role), 503 (token store unavailable).
    """
    if tokens is None:
        raise ApiError(503, "not_ready", "token store unavailable")
    try:
        if role is None:
            return tokens.authenticate(authorization)
        return tokens.require(authorization, role)
    except TokenStoreUnavailableError as error:
        raise ApiError(503, "not_ready", str(error)) from error
    except AuthenticationError as error:
        raise ApiError(
            401, "unauthorized", str(error), headers={"WWW-Authenticate": "Bearer"}
        ) from error
    except PermissionDeniedError as error:
        raise ApiError(403, "forbidden", str(error)) from error


def require(role: Role | tuple[Role, ...] | None = None) -> Callable[..., Awaitable[Caller]]:
    """A dependency yielding the request's caller, who must hold ``role`` (any role when None)."""

    async def caller(request: Request, state: Any = Depends(get_state)) -> Caller:  # noqa: B008
        return authenticate(state.tokens, request.headers.get("authorization"), role)

    return caller
