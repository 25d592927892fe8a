"""One error model and one set of exception handlers for ``{"error": {code, message, fields}}``.

Every non-2xx answer of the service goes through `error_response`: `ApiError` raised by a route
or a dependency, FastAPI's request validation errors (422), Starlette's HTTP errors (404, 405
with its ``Allow`` header, 413, 415) and any unexpected exception (500 ``internal_error``, logged
with its traceback; the caller gets no detail).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from serving.schemas import FieldError

logger = logging.getLogger("riskgrade.serving")

HTTP_CODES: dict[int, str] = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
"""Error code of a Starlette `HTTPException` by status (others: ``http_error``)."""


class ApiError(Exception):
    """An error answered with the service's error schema."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or []
        self.headers = headers


def validation_error(fields: list[FieldError], default: str = "invalid request") -> ApiError:
    """A 422 ``validation_error`` naming every bad field (its message: the first one)."""
    message = f"{fields[0].loc}: {fields[0].message}" if fields else default
    return ApiError(422, "validation_error", message, fields)


def invalid(field: str, message: str) -> ApiError:
    """A 422 ``validation_error`` naming one bad field."""
    return validation_error([FieldError(loc=field, message=message)])


def error_response(error: ApiError) -> JSONResponse:
    """Render an `ApiError` as ``{"error": {"code", "message", "fields"}}``."""
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "fields": [f.model_dump() for f in error.fields],
        }
    }
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for item in exc.errors():
        loc = [str(part) for part in item.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        fields.append(FieldError(loc=".".join(loc) or "body", message=str(item.get("msg", ""))))
    return error_response(validation_error(fields))


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method the routes whose path matches ``scope`` answer (a path may have several)."""
    found = {
        method
        for route in routes
        if route.matches(scope)[0] is not Match.NONE
        for method in getattr(route, "methods", None) or ()
    }
    return sorted(found)


def _http_error(routes: Sequence[BaseRoute]) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        allowed = allowed_methods(routes, request.scope) if exc.status_code == 405 else []
        if allowed:  # Starlette's own Allow names only the first route of the path
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        return error_response(ApiError(exc.status_code, code, str(exc.detail), headers=headers))

    return handler


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s", request.url.path)
    return error_response(ApiError(500, "internal_error", "unexpected server error"))


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute] = ()) -> None:
    """Answer every error of ``app`` in the error schema (a 405's ``Allow`` from ``routes``)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error(routes))
    app.add_exception_handler(Exception, _unexpected)
