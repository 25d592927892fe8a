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

The waterfall is the stored explanation when the decision was an ``/explain`` call, otherwise
it is recomputed from the stored feature row with the loaded model when the decision was made
by the same bundle (and the recomputed PD is compared with the recorded one); for a decision
of another bundle the page says it is not available here.

The validation report travels inside the bundle (``validation_report.html``, hashed in its
manifest), so it is found wherever the bundle was loaded from (a folder, the MLflow registry,
the archive under ``data/bundles``); it is checked against the manifest each time it is read.
A ``validation_report`` URL in the bundle metadata (``lineage``) is linked instead when present;
a bundle written before reports travelled has none, and the page says so.
"""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from audit import (
    AuditQuery,
    AuditRecordNotFoundError,
    AuditStore,
    StoredDecision,
)
from features.catalog import FEATURE_SPEC
from features.spec import FeatureSpec
from management.events import iter_events
from management.judgement import RatingRules, rate
from management.measures import active_measures
from rating.bundle import BundleIntegrityError
from rating.explain import PROTECTED_FACTOR, Explanation, render_waterfall
from rating.lifecycle import LifecycleConfig
from rating.policy import DefaultStatus
from rating.reasons import default_reason
from serving.api.deps import get_state, require
from serving.api.errors import ApiError, invalid
from serving.api.ids import parse_record_id
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
        return AuditQuery(
            customer_id=self.customer_id,
            start=start,
            end=end,
            rated_from=self.rated_from,
            rated_to=self.rated_to,
            tier=self.tier,
            model_version=self.model_version,
            limit=limit or self.limit,
            offset=self.offset,
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


def summary(record: StoredDecision) -> dict[str, Any]:
    """The row of a search result (no payload)."""
    response = record.payload.get("response", {})
    return {
        "id": record.id,
        "decision_id": record.decision_id,
        "created_at": record.created_at,
        "kind": record.kind,
        "caller": record.caller,
        "customer_id": record.customer_id,
        "as_of": response.get("as_of"),
        "pd": record.pd,
        "grade": record.grade,
        "tier": record.tier,
        "model_version": record.model_version,
        "bundle_hash": record.bundle_hash,
    }


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def recompute(engine: Any, record: StoredDecision) -> tuple[Explanation, np.ndarray, float]:
    """Re-derive the explanation of a stored decision from its stored feature row.

    Args:
        engine: a `serving.engine.Engine` whose bundle made the decision.
        record: the stored decision.

    Returns:
        The explanation, the contributions (spec order) and the recomputed PD.

    Raises:
        ValueError: if the stored features do not fit the model.
    """
    model = engine.model
    stored = record.payload.get("features", {})
    names = model.spec.names
    missing = [name for name in names if name not in stored]
    if missing:
        raise ValueError(f"stored features lack {missing[0]}")
    x = np.array(
        [[math.nan if stored[name] is None else float(stored[name]) for name in names]],
        dtype=np.float64,
    )
    flags = {
        name: np.array([float(value)], dtype=np.float64)
        for name, value in record.payload.get("flags", {}).items()
    }
    result = model.score(x, flags)
    return model.explain(result, 0), result.contributions[0], float(result.pd[0])


def _explanation(
    engine: Any, record: StoredDecision, steps: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """The explanation block of a decision and the per-feature contributions (if known)."""
    response = record.payload.get("response", {})
    same_bundle = engine is not None and engine.bundle_hash == record.bundle_hash
    contributions: dict[str, float] = {
        k: float(v) for k, v in (response.get("contributions") or {}).items()
    }
    block: dict[str, Any] = {"available": False, "source": None}
    explanation: Explanation | None = None
    if response.get("explanation") is not None:
        explanation = Explanation.model_validate(response["explanation"])
        block["source"] = "stored"
    if same_bundle:
        try:
            again, contribs, pd_again = recompute(engine, record)
        except ValueError as error:
            block["recompute_problem"] = str(error)
        else:
            block["recomputed_pd"] = pd_again
            block["matches_record"] = math.isclose(pd_again, record.pd, rel_tol=1e-9, abs_tol=1e-12)
            if explanation is None:
                explanation = again
                block["source"] = "recomputed"
            if not contributions:
                contributions = {
                    name: float(value)
                    for name, value in zip(engine.model.spec.names, contribs, strict=True)
                }
    if explanation is None:
        block["why"] = (
            f"decision made by bundle {record.bundle_hash[:12]}, this service runs "
            f"{engine.bundle_hash[:12] if engine is not None else 'no model'}; "
            "the stored record holds no explanation"
        )
        return block, contributions
    svg = render_waterfall(explanation, fmt="svg", max_steps=steps)
    block.update(
        {
            "available": True,
            "svg_base64": base64.b64encode(svg).decode("ascii"),
            **explanation.model_dump(mode="json"),
        }
    )
    return block, contributions


def _report_link(engine: Any, record: StoredDecision) -> dict[str, Any]:
    if engine is None or engine.bundle_hash != record.bundle_hash:
        return {
            "available": False,
            "why": "the model of this decision is not the one loaded by this service",
        }
    bundle = engine.model.bundle
    url = (bundle.metadata.lineage or {}).get("validation_report")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return {"available": True, "url": url, "external": True}
    if bundle.has_validation_report:
        return {"available": True, "url": f"api/report/{record.bundle_hash}", "external": False}
    return {"available": False, "why": "no validation report in this bundle"}


def _feature_rows(
    engine: Any, record: StoredDecision, contributions: dict[str, float]
) -> list[dict[str, Any]]:
    features = record.payload.get("features", {})
    spec = engine.model.spec if engine is not None else None
    known = set(spec.names) if spec is not None else set()
    rows = []
    for name, value in features.items():
        definition = spec.by_name(name) if spec is not None and name in known else None
        label = definition.category_label(value) if definition is not None else None
        rows.append(
            {
                "name": name,
                "group": definition.group.value if definition else None,
                "description": definition.description if definition else None,
                "description_zh": definition.description_zh if definition else None,
                "unit": definition.unit if definition else None,
                "value": _finite(value),
                "label": label,
                "contribution": contributions.get(name),
            }
        )
    rows.sort(key=lambda row: -abs(row["contribution"] or 0.0))
    return rows


def factor_texts(engine: Any, record: StoredDecision) -> dict[str, dict[str, str]]:
    """Per factor of a decision, its feature spec's English and Chinese description.

    From the spec of the bundle that made the decision when it is the one loaded, else from
    the feature catalog (for the features it defines); factors with no description are left out.
    """
    spec: FeatureSpec = FEATURE_SPEC
    if engine is not None and engine.bundle_hash == record.bundle_hash:
        spec = engine.model.spec
    known = set(spec.names)
    texts = {
        name: {"en": spec.by_name(name).description, "zh": spec.by_name(name).description_zh}
        for name in record.payload.get("features", {})
        if name in known
    }
    texts[PROTECTED_FACTOR] = {"en": "Protected attributes", "zh": "受保护属性"}
    return texts


def _reasons(engine: Any, record: StoredDecision) -> list[dict[str, Any]]:
    response = record.payload.get("response", {})
    dictionary: dict[str, Any] | None = None
    if engine is not None and engine.bundle_hash == record.bundle_hash:
        dictionary = {e.code: e for e in engine.model.reasons.entries}
        dictionary.update({r.code: r for r in engine.model.policy.hard_rules})
    if response.get("default") and dictionary is not None:
        status = default_reason(DefaultStatus.model_validate(response["default"]))
        dictionary[status.code] = status
    out = []
    for reason in response.get("reasons", []):
        entry = dictionary.get(reason.get("code")) if dictionary else None
        lang = response.get("lang", "en")
        out.append(
            {
                **reason,
                "text_en": entry.text_en if entry else (reason["text"] if lang == "en" else None),
                "text_zh": entry.text_zh if entry else (reason["text"] if lang == "zh" else None),
            }
        )
    return out


def decision_detail(
    record: StoredDecision, audit: AuditStore, engine: Any, config: ReviewConfig
) -> dict[str, Any]:
    """Everything the page shows about one decision.

    Args:
        record: the stored decision.
        audit: the audit store (for the record's own chain check).
        engine: the loaded `serving.engine.Engine`, or None.
        config: review limits.
    """
    explanation, contributions = _explanation(engine, record, config.waterfall_steps)
    check = audit.check_record(record.id)
    response = record.payload.get("response", {})
    loaded = engine is not None and engine.bundle_hash == record.bundle_hash
    model: dict[str, Any] = {
        "version": record.model_version,
        "bundle_hash": record.bundle_hash,
        "policy_version": record.policy_version,
        "loaded": loaded,
        "report": _report_link(engine, record),
    }
    if loaded:
        meta = engine.model.bundle.metadata
        model["trained_at"] = meta.trained_at.isoformat()
        model["metrics"] = {
            k: v
            for k, v in meta.metrics.items()
            if k.split(".")[-1] in {"auc", "gini", "ks", "brier", "ece", "psi"}
        }
    return {
        "record": {k: v for k, v in record.to_dict().items() if k not in ("payload", "request")},
        "decision": {
            key: response.get(key)
            for key in ("as_of", "score", "model_tier", "policy", "hard_rules", "groups", "lang")
        },
        "inputs": record.request,
        "flags": record.payload.get("flags", {}),
        "features": _feature_rows(engine, record, contributions),
        "factors": factor_texts(engine, record),
        "reasons": _reasons(engine, record),
        "explanation": explanation,
        "model": model,
        "record_check": {
            "ok": check.ok,
            "hash_ok": check.hash_ok,
            "link_ok": check.link_ok,
            "problem": check.problem,
        },
    }


def judgement_of(state: Any, audit: AuditStore, record: StoredDecision) -> dict[str, Any] | None:
    """The rating chain at the decision's ``as_of``, with every part of it.

    Model grade, the assessment (answers) and the approved override (proposer, approver,
    comments) valid then, the final grade. None when the decision is not a model rating, or
    no model or settings are loaded.
    """
    engine, settings = getattr(state, "engine", None), getattr(state, "judgement", None)
    response = record.payload.get("response")
    if engine is None or settings is None or not isinstance(response, dict):
        return None
    lifecycle = getattr(state, "lifecycle", None) or LifecycleConfig()
    rules = RatingRules(engine.model.scale, engine.model.policy, settings, lifecycle)
    day = date.fromisoformat(str(response["as_of"]))
    events = iter_events(audit, subject=record.customer_id)
    rated = rate(record, rules, day, events, active_measures(audit, day))
    return rated.to_dict()


# -- HTTP ---------------------------------------------------------------------------------


def _store(state: Any) -> AuditStore:
    if state.audit is None:
        raise ApiError(503, "not_ready", "audit store unavailable")
    return state.audit


def _show(audit: AuditStore, record_id: int | str) -> StoredDecision:
    try:
        return audit.show(record_id)
    except AuditRecordNotFoundError as error:
        raise ApiError(404, "not_found", str(error.args[0])) from error


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _json(content: Any) -> JSONResponse:
    return JSONResponse(content, headers=_no_store())


def _attachment(content: Any, filename: str) -> Response:
    body = json.dumps(content, ensure_ascii=False, indent=2, allow_nan=False).encode("utf-8")
    return Response(
        body,
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **_no_store()},
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
        return FileResponse(
            REVIEW_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers=_SECURITY_HEADERS,
        )

    @router.get("/customer", name="customer_page", include_in_schema=False)
    async def customer_page() -> Response:
        """The customer page (its data comes from the customer routes, per the token's role)."""
        return FileResponse(
            REVIEW_DIR / "customer.html",
            media_type="text/html; charset=utf-8",
            headers=_SECURITY_HEADERS,
        )

    @router.get("/index.html", include_in_schema=False)
    async def to_page(request: Request) -> Response:
        return RedirectResponse(url=str(request.url_for("review_page")), status_code=307)

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return FileResponse(
            REVIEW_DIR / name, media_type=STATIC_FILES[name], headers=_SECURITY_HEADERS
        )

    @router.get("/api/facets", response_model=Facets, **api)
    async def facets(state: Any = _STATE) -> Response:
        """Tiers and model versions present in the log (auditor)."""
        audit = _store(state)
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
        page_ = await run_in_threadpool(_store(state).search, params.query())
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
        audit = _store(state)
        record = await run_in_threadpool(_show, audit, parse_record_id(record_id))
        found = await run_in_threadpool(decision_detail, record, audit, state.engine, settings)
        found["judgement"] = await run_in_threadpool(judgement_of, state, audit, record)
        return _json(found)

    @router.get("/api/chain", response_model=ReviewChainCheck, **api)
    async def chain(state: Any = _STATE) -> Response:
        """Verification of the whole audit chain (auditor)."""
        result = await run_in_threadpool(_store(state).verify)
        return _json(
            {
                "ok": result.ok,
                "records": result.records,
                "checkpoints": result.checkpoints,
                "first_bad_id": result.first_bad_id,
                "problem": result.problem,
                "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    @router.get(
        "/api/export",
        response_model=StoredDecision | DecisionExport,
        openapi_extra=_query_parameters("id", ignored=("limit",)),  # export ignores it
        **api,
    )
    async def export(request: Request, state: Any = _STATE) -> Response:
        """One decision (``id``) or the decisions matching the filters, as a JSON file."""
        audit = _store(state)
        params = dict(request.query_params)
        raw_id = params.pop("id", None)
        if raw_id is not None:
            record = await run_in_threadpool(_show, audit, parse_record_id(raw_id.strip()))
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
        return Response(html, media_type="text/html; charset=utf-8", headers=_no_store())

    return router
