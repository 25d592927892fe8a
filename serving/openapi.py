"""OpenAPI 3.1 description of the scoring API, built from the pydantic request models.

The service's routes are a Starlette app mounted with ``@bentoml.asgi_app``, which BentoML's
own ``/docs.json`` does not describe. ``build_openapi`` describes them: request bodies are the
JSON schemas of ``serving.schemas`` models (so the document cannot drift from validation),
every non-2xx answer uses the one error schema (``ErrorResponse``), and every operation but the
probes needs a bearer token. Schema-valid bodies may still be refused with 422: cross-field rules
(dates after ``as_of``, exactly one of ``customer`` / ``feature_vector``, repeated ids, list
bounds from configuration) are not expressible in JSON schema.

Use: ``riskgrade``'s reliability run writes it to a file for schemathesis; the service can serve
it at ``GET /openapi.json`` (any valid token).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.schemas import (
    ErrorResponse,
    ExplainRequest,
    ReloadRequest,
    ScoreBatchRequest,
    ScoreRequest,
)

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"
_JSON = "application/json"

_ERRORS: dict[int, str] = {
    401: "missing, malformed or unknown bearer token",
    403: "valid token without the role this endpoint needs",
    404: "no such record",
    405: "method not allowed on this path",
    409: "conflict: bundle refused, or record scored by another bundle",
    413: "body larger than the configured limit",
    415: "body is not application/json",
    422: "body or parameter invalid; ``fields`` names each bad field",
    503: "not ready, overloaded (``Retry-After``) or audit store unavailable",
}

_NUMBER_OR_NULL = {"type": ["number", "null"]}

_REASON = {
    "type": "object",
    "required": ["code", "text", "group", "feature", "contribution"],
    "properties": {
        "code": {"type": "string"},
        "text": {"type": "string"},
        "group": {"type": "string"},
        "feature": {"type": ["string", "null"]},
        "contribution": {"type": ["number", "null"]},
        "value": {},
        "label": {"type": ["string", "null"], "description": "level of a categorical value"},
    },
}

_DECISION = {
    "type": "object",
    "description": "One decision; recorded in the audit log before it was sent.",
    "required": [
        "decision_id",
        "customer_id",
        "as_of",
        "pd",
        "score",
        "grade",
        "tier",
        "model_tier",
        "policy",
        "reasons",
        "hard_rules",
        "groups",
        "model_version",
        "bundle_hash",
        "policy_version",
        "lang",
    ],
    "properties": {
        "decision_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "customer_id": {"type": "string"},
        "as_of": {"type": "string", "format": "date"},
        "pd": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "score": {"type": "integer"},
        "grade": {"type": "string"},
        "tier": {"type": "string"},
        "model_tier": {"type": "string"},
        "policy": {"type": "object"},
        "reasons": {"type": "array", "items": _REASON, "maxItems": 4},
        "hard_rules": {"type": "array", "items": {"type": "object"}},
        "default": {
            "type": ["object", "null"],
            "description": "first default on or before as_of (grade D, restricted), or null",
        },
        "groups": {"type": "object", "additionalProperties": {"type": "number"}},
        "model_version": {"type": "string"},
        "bundle_hash": {"type": "string"},
        "policy_version": {"type": "string"},
        "lang": {"enum": ["en", "zh"]},
        "explanation": {"type": "object"},
        "contributions": {"type": "object", "additionalProperties": {"type": "number"}},
        "base_log_odds": {"type": "number"},
        "log_odds": {"type": "number"},
        "chart": {
            "type": "object",
            "required": ["format", "base64"],
            "properties": {"format": {"enum": ["png", "svg"]}, "base64": {"type": "string"}},
        },
    },
}

_AUDIT_RECORD = {
    "type": "object",
    "required": ["id", "decision_id", "created_at", "pd", "grade", "tier", "payload", "hash"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "decision_id": {"type": "string"},
        "created_at": {"type": "string"},
        "kind": {"type": "string"},
        "caller": {"type": "string"},
        "customer_id": {"type": "string"},
        "model_version": {"type": "string"},
        "bundle_hash": {"type": "string"},
        "policy_version": {"type": "string"},
        "pd": {"type": "number"},
        "grade": {"type": "string"},
        "tier": {"type": "string"},
        "payload": {
            "type": "object",
            "description": "computed features, hard-rule flags and the response given",
        },
        "prev_hash": {"type": "string"},
        "hash": {"type": "string"},
        "request_sha256": {
            "type": ["string", "null"],
            "description": "SHA-256 of the HTTP body the request arrived in (kept byte for byte)",
        },
        "request_pointer": {
            "type": ["string", "null"],
            "description": "JSON pointer of the request inside that body ('' for /score)",
        },
        "request": {
            "type": ["object", "null"],
            "description": "the scored request, read from the stored body",
        },
    },
}

_REPLAY = {
    "type": "object",
    "required": ["id", "decision_id", "equal", "recorded_pd", "replayed_pd", "abs_diff"],
    "properties": {
        "id": {"type": "integer"},
        "decision_id": {"type": "string"},
        "bundle_hash": {"type": "string"},
        "equal": {"type": "boolean"},
        "recorded_pd": {"type": "number"},
        "replayed_pd": {"type": "number"},
        "abs_diff": {"type": "number", "minimum": 0},
        "grade_equal": {"type": "boolean"},
        "tier_equal": {"type": "boolean"},
        "features_equal": {"type": "boolean"},
        "differing_features": {"type": "array", "items": {"type": "string"}},
    },
}

_VERIFY = {
    "type": "object",
    "required": ["ok", "records", "checkpoints", "first_bad_id", "problem"],
    "properties": {
        "ok": {"type": "boolean"},
        "records": {"type": "integer", "minimum": 0},
        "checkpoints": {"type": "integer", "minimum": 0},
        "first_bad_id": {"type": ["integer", "null"]},
        "problem": {"type": ["string", "null"]},
    },
}

_MODEL_INFO = {
    "type": "object",
    "required": ["version", "bundle_hash", "policy_version", "feature_spec"],
    "properties": {
        "model_name": {"type": "string"},
        "version": {"type": "string"},
        "trained_at": {"type": "string"},
        "metrics": {"type": "object"},
        "bundle_hash": {"type": "string"},
        "policy_version": {"type": "string"},
        "feature_spec": {"type": "object"},
    },
}

_RECORD_ID = {
    "name": "record_id",
    "in": "path",
    "required": True,
    "description": "row id (digits) or decision id",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}


def _components() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ScoreRequest,
        ExplainRequest,
        ScoreBatchRequest,
        ReloadRequest,
        ErrorResponse,
    ]
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas = copy.deepcopy(defs["$defs"])
    schemas["Decision"] = _DECISION
    schemas["DecisionBatch"] = {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {"type": "array", "items": {"$ref": _REF.format(model="Decision")}}
        },
    }
    schemas["AuditRecord"] = _AUDIT_RECORD
    schemas["ReplayResult"] = _REPLAY
    schemas["VerifyResult"] = _VERIFY
    schemas["ModelInfo"] = _MODEL_INFO
    schemas["ReloadResult"] = {
        "type": "object",
        "required": ["model_version", "bundle_hash"],
        "properties": {"model_version": {"type": "string"}, "bundle_hash": {"type": "string"}},
    }
    return schemas


def _error_responses(codes: tuple[int, ...]) -> dict[str, Any]:
    ref = {"$ref": _REF.format(model="ErrorResponse")}
    out: dict[str, Any] = {}
    for code in codes:
        response: dict[str, Any] = {
            "description": _ERRORS[code],
            "content": {_JSON: {"schema": ref}},
        }
        if code == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if code == 405:
            response["headers"] = {"Allow": {"schema": {"type": "string"}}}
        out[str(code)] = response
    return out


def _operation(
    summary: str,
    ok_schema: str,
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": summary.split(":")[0].strip().lower().replace(" ", "_"),
        "security": [{"bearer": []}],
        "responses": {
            "200": {
                "description": "success",
                "content": {_JSON: {"schema": {"$ref": _REF.format(model=ok_schema)}}},
            },
            **_error_responses(errors),
        },
    }
    if role is not None:
        operation["description"] = f"Needs a token with role `{role}`."
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": {"$ref": _REF.format(model=body)}}},
        }
    if parameters:
        operation["parameters"] = parameters
    return operation


_BODY_ERRORS = (401, 403, 405, 413, 415, 422, 503)


def build_openapi(version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the scoring API.

    Args:
        version: API version shown in ``info.version``.

    Returns:
        The document as a JSON-ready dict (request schemas generated from ``serving.schemas``).
    """
    probe = {
        "summary": "probe",
        "security": [],
        "responses": {
            "200": {"description": "up / ready"},
            "503": {"description": "not ready"},
        },
    }
    paths: dict[str, Any] = {
        "/score": {
            "post": _operation(
                "score: one customer", "Decision", _BODY_ERRORS, body="ScoreRequest", role="scorer"
            )
        },
        "/score_batch": {
            "post": _operation(
                "score_batch: many customers, one audit record each",
                "DecisionBatch",
                _BODY_ERRORS,
                body="ScoreBatchRequest",
                role="scorer",
            )
        },
        "/explain": {
            "post": _operation(
                "explain: score plus explanation on the tiers",
                "Decision",
                _BODY_ERRORS,
                body="ExplainRequest",
                role="scorer",
            )
        },
        "/model": {
            "get": _operation("model info: the served bundle", "ModelInfo", (401, 405, 503))
        },
        "/audit/verify": {
            "get": _operation(
                "audit verify: check the hash chain",
                "VerifyResult",
                (401, 403, 405, 503),
                role="auditor",
            )
        },
        "/audit/{record_id}": {
            "get": _operation(
                "audit record: one stored decision",
                "AuditRecord",
                (401, 403, 404, 405, 422, 503),
                parameters=[_RECORD_ID],
                role="auditor",
            )
        },
        "/audit/{record_id}/replay": {
            "post": _operation(
                "audit replay: re-score with the recorded model",
                "ReplayResult",
                (401, 403, 404, 405, 409, 422, 503),
                parameters=[_RECORD_ID],
                role="auditor",
            )
        },
        "/admin/reload": {
            "post": _operation(
                "admin reload: reload the bundle (tokens are re-read when their file changes)",
                "ReloadResult",
                (*_BODY_ERRORS, 409),
                body="ReloadRequest",
                role="admin",
            )
        },
        "/livez": {"get": {**probe, "operationId": "livez"}},
        "/readyz": {"get": {**probe, "operationId": "readyz"}},
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "riskgrade scoring API",
            "version": version,
            "description": (
                "Risk rating of restricted-class credit customers. Every non-2xx answer is "
                '`{"error": {"code", "message", "fields"}}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def write_openapi(path: Path | str) -> Path:
    """Write ``build_openapi()`` as JSON to ``path``; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(build_openapi(), indent=2, sort_keys=True) + "\n")
    return target
