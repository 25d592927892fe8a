"""ASGI middleware on the whole service (BentoML's own routes included): token gate, path guard."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import Headers

from serving.api.deps import authenticate, current_state
from serving.api.errors import ApiError, error_response
from serving.auth import answers_without_token

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharPathGuard:
    """ASGI middleware: paths with control characters get the error schema, not a text 404.

    Such a path (e.g. an encoded newline) matches no mounted route in BentoML's outer app,
    which would answer with its own plain-text 404.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Short-circuit such paths; pass everything else through."""
        if scope["type"] == "http" and _CONTROL_CHARS.search(scope.get("path", "")):
            error = ApiError(404, "not_found", "no route for a path with control characters")
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class TokenGate:
    """ASGI middleware: every path needs a valid token of any role, except the open ones.

    The open paths are `serving.auth.answers_without_token`'s; the routes then check roles.
    This covers BentoML's own routes (index, docs, schema, static files, metrics), which
    cannot check tokens themselves, and any route added later without a check of its own.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer 401 (or 503 while starting) for a closed path without a valid token."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path and not answers_without_token(path, metrics_public=False):
            try:
                state = current_state()
                if not answers_without_token(path, metrics_public=state.config.metrics_public):
                    headers = Headers(scope=scope)
                    authenticate(state.tokens, headers.get("authorization"), None)
            except ApiError as error:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
