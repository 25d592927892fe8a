"""The service's one FastAPI application: its routers, error handlers and OpenAPI document.

Mounted on the BentoML service with ``@bentoml.asgi_app`` (``serving.service``). The OpenAPI
document is FastAPI's, generated from the routes, completed with what FastAPI does not know:
request bodies are read raw and validated by the ``serving.schemas`` models (their schemas are
added as components), every operation but the probes needs a bearer token, and every error
answer uses the one error schema (``ErrorResponse``). Schema-valid bodies may still be refused
with 422: cross-field rules (dates after ``as_of``, exactly one of ``customer`` /
``feature_vector``, repeated ids, list bounds from configuration) are not expressible in JSON
schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.responses import JSONResponse

from serving.api import admin, audit_routes, lifecycle_routes, management_routes, scoring
from serving.api.body import SCHEMA_REF
from serving.api.deps import require
from serving.api.errors import install_error_handlers
from serving.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from serving.api.idempotency import KEY_SCHEMA as IDEMPOTENCY_KEY_SCHEMA
from serving.review import ReviewConfig, review_router
from serving.schemas import (
    ErrorResponse,
    ExplainRequest,
    ReloadRequest,
    ScoreBatchRequest,
    ScoreRequest,
)

TITLE = "riskgrade scoring API"
VERSION = "0.1.0"
_BODY_MODELS: list[type[BaseModel]] = [
    ScoreRequest,
    ExplainRequest,
    ScoreBatchRequest,
    ReloadRequest,
    ErrorResponse,
    *management_routes.BODY_MODELS,
    *lifecycle_routes.BODY_MODELS,
]
_ERRORS: dict[int, str] = {
    400: "invalid Idempotency-Key header",
    401: "missing, malformed or unknown bearer token",
    403: "valid token without the role this endpoint needs",
    404: "no such record or path",
    405: "method not allowed on this path",
    409: "conflict: bundle refused, record scored by another bundle, proposal already decided "
    "or expired, no model decision to override, or Idempotency-Key reused with another "
    "request or still in flight",
    413: "body larger than the configured limit",
    415: "body is not application/json",
    422: "body or parameter invalid; ``fields`` names each bad field",
    503: "not ready, overloaded (``Retry-After``) or audit store unavailable",
}
_PROBES = ("/livez", "/readyz")
"""BentoML's probes, described in the document (they need no token)."""


def build_app(review: ReviewConfig | None = None) -> FastAPI:
    """The FastAPI application of the service (every route, one error schema)."""
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        openapi_url=None,  # served below, behind a token
        docs_url=None,
        redoc_url=None,
    )
    meta = APIRouter(tags=["meta"])

    @meta.get("/openapi.json", dependencies=[Depends(require())], include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        """The OpenAPI 3.1 document (any valid token)."""
        return JSONResponse(app.openapi())

    routers = (
        scoring.router,
        audit_routes.router,
        admin.router,
        management_routes.router,
        lifecycle_routes.router,
        review_router(review),
        meta,
    )
    for router in routers:
        app.include_router(router)
    install_error_handlers(app, [route for router in routers for route in router.routes])
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        app.openapi_schema = complete_openapi(
            get_openapi(title=app.title, version=app.version, routes=app.routes)
        )
    return app.openapi_schema


def complete_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Add what FastAPI cannot see: body schemas, bearer security, the one error schema."""
    document = copy.deepcopy(document)
    document["info"]["description"] = (
        "Risk rating of restricted-class credit customers. Every non-2xx answer is "
        '`{"error": {"code", "message", "fields"}}`.'
    )
    _, defs = models_json_schema([(m, "validation") for m in _BODY_MODELS], ref_template=SCHEMA_REF)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for generated in ("HTTPValidationError", "ValidationError"):
        schemas.pop(generated, None)
    schemas.update(defs["$defs"])
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            codes = [401, 403, 404, 405, 422, 503]
            if "requestBody" in operation:
                codes += [409, 413, 415]
            for parameter in operation.get("parameters", []):
                if parameter["name"] == IDEMPOTENCY_HEADER:
                    parameter["schema"] = IDEMPOTENCY_KEY_SCHEMA
                    codes = sorted({*codes, 400, 409, 413})
            responses = operation["responses"]
            for code in sorted(codes):
                responses[str(code)] = _error_response(code)
    probe = {
        "security": [],
        "responses": {"200": {"description": "up / ready"}, "503": {"description": "not ready"}},
    }
    for path in _PROBES:
        document["paths"][path] = {"get": {**probe, "summary": "probe", "operationId": path[1:]}}
    return document


def _error_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[code],
        "content": {
            "application/json": {"schema": {"$ref": SCHEMA_REF.format(model="ErrorResponse")}}
        },
    }
    if code == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if code == 405:
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


def build_openapi() -> dict[str, Any]:
    """The service's OpenAPI 3.1 document (as ``GET /openapi.json`` serves it)."""
    return build_app().openapi()


def write_openapi(path: Path | str) -> Path:
    """Write `build_openapi` as JSON to ``path``; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(build_openapi(), indent=2, sort_keys=True) + "\n")
    return target
