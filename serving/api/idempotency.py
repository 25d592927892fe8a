"""Idempotency keys: a retried call gets the first answer, and nothing is written twice.

A router adopts them in one line, ``APIRouter(..., route_class=IdempotentRoute)``: every
non-GET route of it then accepts an ``Idempotency-Key`` header (1 to 128 printable ASCII
characters, no space first or last; else 400 ``invalid_idempotency_key``). Keys are per caller
(token name) and kept in the audit store (``audit.AuditStore.reserve``) with a digest of the
method, path and canonical JSON body. The first call with a key runs; a retry with the same
request gets the first answer byte for byte (status and body) and runs nothing; the same key
with another request is 409 ``idempotency_key_reused``. A retry arriving while the first call
runs waits for its answer up to `IN_FLIGHT_WAIT_S`, then gets 409 ``idempotency_key_in_flight``
(``Retry-After: 1``). A call answered 4xx/5xx releases its key, so a retry runs again.

A 2xx answer is stored after the route returns, unless the route stored it in the transaction
that commits its records (no window where the records exist but the answer does not): take the
`Idempotency` with ``key: Idempotency | None = IDEMPOTENCY`` and pass
``key.answer(body, status)`` as ``idempotent=`` to ``append_many``/``append_events``, then
answer ``JSONResponse(body, status)``. A route must write nothing when it answers an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Header
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from audit import AuditStore, AuditUnavailableError, IdempotentResponse, canonical_json
from serving.api.body import read_body
from serving.api.deps import audit_store, authenticate, get_state
from serving.api.errors import ApiError
from serving.schemas import FieldError

logger = logging.getLogger("riskgrade.serving")

HEADER = "Idempotency-Key"
IN_FLIGHT_WAIT_S = 2.0
"""How long a retry waits for the answer of the first call still in flight (then 409)."""
_PATTERN = r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?"  # HTTP strips spaces around values
_KEY = re.compile(_PATTERN)
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": f"^{_PATTERN}$"}
"""JSON schema of a valid key (for the OpenAPI document)."""
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Idempotency:
    """The reserved key of the running call (which must store its answer or release it)."""

    store: AuditStore
    caller: str
    key: str
    answered: bool = False

    def answer(self, content: Any, status: int = 200) -> IdempotentResponse:
        """The answer to commit with the call's records (the route answers ``content`` as JSON)."""
        self.answered = True
        body = bytes(JSONResponse(content, status).body).decode()
        return IdempotentResponse(self.caller, self.key, status, body)


class _ReplayError(Exception):
    """Not an error: the stored answer of a retried call, raised out of the dependency."""

    def __init__(self, response: Response) -> None:
        self.response = response


def request_digest(method: str, path: str, body: bytes) -> str:
    """sha256 of the method, path and body (canonical JSON when it parses as JSON)."""
    with contextlib.suppress(ValueError):  # not JSON: the bytes (the route refuses them)
        body = canonical_json(json.loads(body)).encode()
    return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()


def check_key(key: str) -> str:
    """The key, if 1 to 128 printable ASCII characters.

    Raises:
        ApiError: 400 ``invalid_idempotency_key`` naming the header.
    """
    if len(key) > 128 or not _KEY.fullmatch(key):
        message = "1 to 128 printable ASCII characters"
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"header {HEADER}: {message}",
            [FieldError(loc=HEADER, message=message)],
        )
    return key


async def reserve_waiting(
    store: AuditStore, caller: str, key: str, digest: str, lease_s: float
) -> Any:
    """``store.reserve``, polled while the first call is in flight, up to `IN_FLIGHT_WAIT_S`."""
    deadline, delay = time.monotonic() + IN_FLIGHT_WAIT_S, 0.005
    while True:
        reservation = await run_in_threadpool(
            store.reserve, caller, key, digest, lease_seconds=lease_s
        )
        if reservation.state != "in_progress" or time.monotonic() >= deadline:
            return reservation
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def idempotency(
    request: Request,
    state: Any = Depends(get_state),  # noqa: B008
    key: str | None = Header(None, alias=HEADER, description="retry-safe call key"),
) -> Idempotency | None:
    """Dependency: reserve the call's key (None without the header).

    Raises:
        ApiError: 400 invalid key, 409 reused or in flight, 503 store unavailable.
    """
    if key is None:
        return None
    check_key(key)
    caller = authenticate(state.tokens, request.headers.get("authorization"), None)
    store = audit_store(state)
    body = await read_body(request, state.config.limits.max_body_bytes)
    digest = request_digest(request.method, request.url.path, body)
    try:
        found = await reserve_waiting(store, caller.name, key, digest, state.config.timeout_s + 5)
    except AuditUnavailableError as error:
        raise ApiError(503, "audit_unavailable", "idempotency key store unavailable") from error
    if found.state == "replay":
        raise _ReplayError(
            Response(found.response, found.status_code, media_type="application/json")
        )
    if found.state == "conflict":
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"{HEADER} {key!r} was used with another request; send a new key",
        )
    if found.state == "in_progress":
        raise ApiError(
            409,
            "idempotency_key_in_flight",
            f"the call with {HEADER} {key!r} is still running; retry later",
            headers={"Retry-After": "1"},
        )
    handle = Idempotency(store, caller.name, key)
    request.state.idempotency = handle
    return handle


IDEMPOTENCY: Any = Depends(idempotency)
"""Parameter default giving a route its `Idempotency` (None without the header)."""


async def _finish(request: Request, response: Response | None) -> None:
    """Store a 2xx answer not stored yet; release the key of an error (or a stream)."""
    handle: Idempotency | None = getattr(request.state, "idempotency", None)
    if handle is None:
        return
    if response is None or response.status_code >= 400 or not hasattr(response, "body"):
        try:
            await run_in_threadpool(handle.store.release, handle.caller, handle.key)
        except Exception:  # the key stays reserved until its lease ends; the error stands
            logger.exception("idempotency key %r not released", handle.key)
    elif not handle.answered:
        answer = IdempotentResponse(
            handle.caller, handle.key, response.status_code, bytes(response.body).decode()
        )
        try:
            await run_in_threadpool(handle.store.complete, answer)
        except AuditUnavailableError:  # done, but a retry runs again after the lease
            logger.exception("answer of idempotency key %r not stored", handle.key)


class IdempotentRoute(APIRoute):
    """A route whose non-GET methods honour ``Idempotency-Key`` (``route_class=`` of a router)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Add the `idempotency` dependency after the route's own (role checks come first)."""
        dependencies = list(kwargs.get("dependencies") or ())
        if set(kwargs.get("methods") or ()) - _SAFE and IDEMPOTENCY not in dependencies:
            kwargs["dependencies"] = [*dependencies, IDEMPOTENCY]  # once (include_router copies)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, answering replays and storing or releasing the key."""
        handler = super().get_route_handler()

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except _ReplayError as replay:
                return replay.response
            except BaseException:
                await _finish(request, None)
                raise
            await _finish(request, response)
            return response

        return idempotent_handler
