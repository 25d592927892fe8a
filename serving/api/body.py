"""Reading and validating JSON request bodies (size and media type checked as they stream in).

Bodies are read raw and validated with the request models' own (strict) validators rather than
by FastAPI's body parameters: the audit log keeps the bytes as received, and the models'
cross-field rules need the configured limits. The routes declare the body schema for the
OpenAPI document with `json_body`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from serving.api.errors import ApiError, validation_error
from serving.schemas import RequestLimits, field_errors

_Model = TypeVar("_Model", bound=BaseModel)
SCHEMA_REF = "#/components/schemas/{model}"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as a route's required JSON body."""
    ref = {"$ref": SCHEMA_REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


async def read_body(request: Request, limit: int) -> bytes:
    """The body's bytes (read once; later reads get the same bytes).

    Raises:
        ApiError: 413 beyond ``limit`` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # what Starlette's stream() and body() answer from now
    return request._body


async def read_json_body(request: Request, limit: int) -> bytes:
    """The body's bytes.

    Raises:
        ApiError: 415 unless ``application/json``; 413 beyond ``limit`` bytes.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    return await read_body(request, limit)


async def parse_body(
    request: Request, limits: RequestLimits, model: type[_Model]
) -> tuple[_Model, bytes]:
    """The validated body and its bytes as received (which the audit log keeps).

    Raises:
        ApiError: 413/415 (see `read_json_body`); 422 naming every invalid field.
    """
    body = await read_json_body(request, limits.max_body_bytes)
    return validate_body(body, limits, model), body


def validate_body(body: bytes, limits: RequestLimits, model: type[_Model]) -> _Model:
    """``body`` validated as ``model`` (strict JSON types, limits from configuration).

    Raises:
        ApiError: 422 naming every invalid field.
    """
    try:
        # Strict at the HTTP boundary: JSON types as documented (no "1.5" for a number,
        # no 0/1 for a boolean, no epoch seconds for a date); ISO date strings still parse.
        parsed = model.model_validate_json(body, strict=True, context={"limits": limits})
    except ValidationError as error:
        raise validation_error(field_errors(error), "invalid body") from error
    return parsed
