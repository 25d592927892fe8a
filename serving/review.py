"""The auditor review page: a read-only web page and its JSON API, served with the service.

Mounted under ``/review`` by ``serving.service`` (``review_router()``, a FastAPI router):

- ``GET /review/``: the page (static HTML, no build step, no external network);
- ``GET /review/static/{name}``: its script and style sheet;
- ``GET /review/api/facets``: tiers and model versions present in the log;
- ``GET /review/api/decisions``: search by ``customer_id``, ``from``, ``to`` (when recorded),
  ``rated_from``, ``rated_to`` (the rating date, ``as_of``), ``tier``, ``model_version``
  (``limit``, ``offset``), newest first;
- ``GET /review/api/decisions/{id}``: one decision: inputs, features, reasons, waterfall,
  model version and report link, the record's chain check, ``factors``: the English and
  Chinese description of every factor named (the page shows them, internal names in small),
  and ``judgement``: the rating chain at its ``as_of`` (model grade, the qualitative answers,
  the approved override with proposer, approver and comments, the final grade);
- ``GET /review/api/chain``: verification of the whole audit chain;
- ``GET /review/api/export``: ``id=`` one decision, else the search filters, as JSON;
- ``GET /review/api/report/{bundle_hash}``: the validation report of the loaded model, read
  from inside its bundle.

The page itself holds no data and needs no token; every ``/review/api`` route needs an
auditor token (``Authorization: Bearer``): 401 without a valid token, 403 for another role.
Nothing here writes to the audit log or the model. The page also shows approvers the pending
overrides and expert ratings and lets them approve or reject there: it calls the service's own
``GET /overrides`` and ``POST /overrides/{id}/approve|reject`` with the signed-in token, which
enforce the roles and the four-eyes rule.

What the page shows of one decision is `management.audit_review.decision_detail`'s.

The validation report travels inside the bundle (``validation_report.html``, hashed in its
manifest), so it is found wherever the bundle was loaded from (a folder, the MLflow registry,
the archive under ``data/bundles``); it is checked against the manifest each time it is read.
A ``validation_report`` URL in the bundle metadata (``lineage``) is linked instead when present;
a bundle written before reports travelled has none, and the page says so.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from audit import AuditQuery, StoredDecision
from management.audit_review import decision_detail, summary
from rating.bundle import BundleIntegrityError
from serving.api.deps import audit_store, get_state, require
from serving.api.errors import ApiError, invalid
from serving.api.ids import stored_decision
from serving.api.responses import (
    DecisionDetail,
    DecisionExport,
    DecisionPage,
    Facets,
    ReviewChainCheck,
)
from serving.auth import Role
from serving.schemas import MAX_DAY, MIN_DAY

REVIEW_DIR = Path(__file__).with_name("review")
"""Folder of the static page (``index.html``, ``review.js``, ``review.css``)."""
STATIC_FILES: dict[str, str] = {
    "review.js": "text/javascript; charset=utf-8",
    "customer.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-src blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ReviewConfig(BaseModel):
    """Limits of the review API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_page: int = Field(default=200, ge=1, le=10_000)
    """Most records one search returns."""
    max_export: int = Field(default=5_000, ge=1, le=1_000_000)
    """Most records one range export returns; a larger range is refused (narrow it)."""
    waterfall_steps: int = Field(default=10, ge=1, le=100)


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class SearchParams(BaseModel):
    """Query parameters of a search or range export (``from``/``to`` are dates or times)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    customer_id: str | None = Field(default=None, min_length=1, max_length=64)
    start: date | datetime | None = Field(default=None, alias="from")
    """From this day (00:00 UTC) or moment on."""
    end: date | datetime | None = Field(default=None, alias="to")
    """Up to and including this day (UTC), or before this moment."""
    rated_from: date | None = None
    """Rated on this day (the decision's ``as_of``) or later."""
    rated_to: date | None = None
    """Rated on this day or earlier."""
    tier: str | None = Field(default=None, min_length=1, max_length=32)
    model_version: str | None = Field(default=None, min_length=1, max_length=128)
    limit: int = Field(default=50, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0, le=10_000_000)

    @field_validator("start", "end", "rated_from", "rated_to", mode="before")
    @classmethod
    def _iso(cls, value: object) -> object:
        # Lax pydantic would read "0.5" as epoch seconds: only ISO dates and times are meant.
        if isinstance(value, str) and not _ISO_DAY.match(value):
            raise ValueError("an ISO date (YYYY-MM-DD) or date and time")
        return value

    @field_validator("start", "end")
    @classmethod
    def _within_bounds(cls, value: date | datetime | None) -> date | datetime | None:
        day = value.date() if isinstance(value, datetime) else value
        if day is not None and not MIN_DAY <= day <= MAX_DAY:
            raise ValueError(f"must lie within {MIN_DAY.isoformat()}..{MAX_DAY.isoformat()}")
        return value

    def query(self, limit: int | None = None) -> AuditQuery:
        """The `AuditQuery` of these parameters (a date ``to`` includes its whole day)."""
        start = self.start
        if isinstance(start, date) and not isinstance(start, datetime):
            start = datetime.combine(start, time(), tzinfo=UTC)
        end = self.end
        if isinstance(end, date) and not isinstance(end, datetime):
            end = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
        same = {"customer_id", "rated_from", "rated_to", "tier", "model_version", "offset"}
        return AuditQuery(
            **self.model_dump(include=same), start=start, end=end, limit=limit or self.limit
        )


def parse_search(params: dict[str, str], max_page: int) -> SearchParams:
    """Validate search query parameters (empty values are ignored).

    Raises:
        ApiError: 422 naming the bad parameter.
    """
    cleaned = {k: v.strip() for k, v in params.items() if v.strip() != ""}
    try:
        search = SearchParams.model_validate(cleaned)
        if search.limit > max_page:
            raise invalid("limit", f"at most {max_page}")
    except ValidationError as error:
        first = error.errors()[0]
        loc = str(first["loc"][0]) if first["loc"] else "query"
        raise invalid(loc, first["msg"]) from error
    try:
        search.query()
    except ValidationError as error:  # an inverted range
        message = error.errors()[0]["msg"]
        raise invalid("rated_from" if "rated_from" in message else "from", message) from error
    return search


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _json(content: Any) -> JSONResponse:
    return JSONResponse(content, headers=_NO_STORE)


def _file(name: str, media_type: str = "text/html; charset=utf-8") -> Response:
    return FileResponse(REVIEW_DIR / name, media_type=media_type, headers=_SECURITY_HEADERS)


def _attachment(content: Any, filename: str) -> Response:
    body = json.dumps(content, ensure_ascii=False, indent=2, allow_nan=False).encode("utf-8")
    return Response(
        body,
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **_NO_STORE},
    )


def _query_parameters(*extra: str, ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI ``parameters`` of the search filters (validated by `parse_search`).

    A filter sent empty is ignored (the page sends its empty fields), which the schemas say.
    """
    empty = {"type": "string", "maxLength": 0}
    properties = {
        name: {"anyOf": [schema, empty]}
        for name, schema in SearchParams.model_json_schema(by_alias=True)["properties"].items()
    }
    names = [*extra, *(name for name in properties if name not in ignored)]
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": properties.get(name, {"type": "string", "maxLength": 64}),
            }
            for name in names
        ]
    }


_AUDITOR = Depends(require(Role.AUDITOR))
_STATE = Depends(get_state)


def review_router(config: ReviewConfig | None = None) -> APIRouter:
    """The ``/review`` routes: the page and its auditor-only JSON API.

    The API's state (``serving.service.ServingState``: ``tokens``, ``audit``, ``engine``) comes
    from `serving.api.deps.get_state` (override it to serve another state).

    Args:
        config: review limits (defaults when omitted).
    """
    settings = config or ReviewConfig()
    router = APIRouter(prefix="/review", tags=["review"])
    api: dict[str, Any] = {"dependencies": [_AUDITOR]}

    @router.get("/", name="review_page", include_in_schema=False)
    async def page() -> Response:
        return _file("index.html")

    @router.get("/customer", name="customer_page", include_in_schema=False)
    async def customer_page() -> Response:
        """The customer page (its data comes from the customer routes, per the token's role)."""
        return _file("customer.html")

    @router.get("/index.html", include_in_schema=False)
    async def to_page(request: Request) -> Response:
        return RedirectResponse(url=str(request.url_for("review_page")), status_code=307)

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return _file(name, STATIC_FILES[name])

    @router.get("/api/facets", response_model=Facets, **api)
    async def facets(state: Any = _STATE) -> Response:
        """Tiers and model versions present in the log (auditor)."""
        audit = audit_store(state)
        values = await run_in_threadpool(audit.facets)
        engine = state.engine
        return _json(
            {
                **values,
                "records": await run_in_threadpool(audit.count),
                "loaded_model": engine.model_version if engine is not None else None,
            }
        )

    @router.get(
        "/api/decisions", response_model=DecisionPage, openapi_extra=_query_parameters(), **api
    )
    async def search(request: Request, state: Any = _STATE) -> Response:
        """Search decisions, newest first (auditor)."""
        params = parse_search(dict(request.query_params), settings.max_page)
        page_ = await run_in_threadpool(audit_store(state).search, params.query())
        return _json(
            {
                "total": page_.total,
                "limit": page_.limit,
                "offset": page_.offset,
                "records": [summary(r) for r in page_.records],
            }
        )

    @router.get("/api/decisions/{record_id}", response_model=DecisionDetail, **api)
    async def detail(record_id: str, state: Any = _STATE) -> Response:
        """One decision with everything the page shows (auditor)."""
        audit = audit_store(state)
        record = await stored_decision(audit, record_id)
        engine, rules = state.engine, None
        if engine is not None and state.judgement is not None:
            rules, _ = state.rules()
        model = engine.model if engine is not None else None
        steps = settings.waterfall_steps
        return _json(await run_in_threadpool(decision_detail, record, audit, model, steps, rules))

    @router.get("/api/chain", response_model=ReviewChainCheck, **api)
    async def chain(state: Any = _STATE) -> Response:
        """Verification of the whole audit chain (auditor)."""
        result = await run_in_threadpool(audit_store(state).verify)
        verified_at = datetime.now(UTC).isoformat(timespec="seconds")
        return _json({**dataclasses.asdict(result), "verified_at": verified_at})

    @router.get(
        "/api/export",
        response_model=StoredDecision | DecisionExport,
        openapi_extra=_query_parameters("id", ignored=("limit",)),  # export ignores it
        **api,
    )
    async def export(request: Request, state: Any = _STATE) -> Response:
        """One decision (``id``) or the decisions matching the filters, as a JSON file."""
        audit = audit_store(state)
        params = dict(request.query_params)
        raw_id = params.pop("id", None)
        if raw_id is not None:
            record = await stored_decision(audit, raw_id.strip())
            return _attachment(record.to_dict(), f"decision-{record.id}.json")
        params.pop("limit", None)
        search_params = parse_search({**params, "limit": "1"}, settings.max_page)
        page_ = await run_in_threadpool(
            audit.search, search_params.query(limit=settings.max_export)
        )
        if page_.total > settings.max_export:
            raise invalid(
                "from",
                f"{page_.total} decisions match; export at most {settings.max_export} at once "
                "(narrow the date range)",
            )
        records = sorted(page_.records, key=lambda r: r.id)
        document = {
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "filters": search_params.model_dump(
                mode="json", by_alias=True, exclude={"limit", "offset"}
            ),
            "count": len(records),
            "records": [r.to_dict() for r in records],
        }
        return _attachment(document, "decisions.json")

    @router.get(
        "/api/report/{bundle_hash}",
        responses={200: {"content": {"text/html": {}}, "description": "the report"}},
        **api,
    )
    async def report(bundle_hash: str, state: Any = _STATE) -> Response:
        """The validation report of the loaded model, read from inside its bundle (auditor)."""
        engine = state.engine
        if engine is None or engine.bundle_hash != bundle_hash:
            raise ApiError(
                404, "not_found", f"bundle {bundle_hash[:12]} is not the one loaded here"
            )
        try:
            html = await run_in_threadpool(engine.model.bundle.read_validation_report)
        except BundleIntegrityError as error:
            raise ApiError(409, "integrity_error", str(error)) from error
        if html is None:
            raise ApiError(404, "not_found", "no validation report in this bundle")
        return Response(html, media_type="text/html; charset=utf-8", headers=_NO_STORE)

    return router
