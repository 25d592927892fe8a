"""Scoring by customer id: ``{customer_id, as_of}`` decided from the raw store's tables.

With a raw store configured (``RISKGRADE_RAW_URL``: a PostgreSQL or DuckDB URL, or a folder),
``/score``, ``/explain`` and each item of ``/score_batch`` may carry only ``customer_id`` and
``as_of`` (and ``lang``, ``chart``). :func:`parse_scoring_body` reads those customers' records
known at ``as_of`` from the store (indexed lookups, the as-of cut in the query; one statement
for all the requests of a call, and for all the calls waiting while a read runs), checks the
tables read against the raw-data contract (as batch scoring does), and hands the engine each
customer's frames (``serving.engine.StoredRecords``): from the frame stage on, a by-id request
goes through the code a body's records go through (features, one ``pred_contrib`` pass). No
JSON body is built.

The audit log keeps the request as received plus what was read (``read``): the source's
label (never credentials), the customer, ``as_of``, the query bounds
(``features.asof.read_bounds``), rows per table and the SHA-256 of the records read
(``records_sha256``, ``features.digest.record_digests``: the same canonical text as batch
decisions). Replay (``serving.batch_record.ReadingRescorer``) reads the store again within
those bounds, checks the digest and decides again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from features.asof import read_bounds
from features.digest import record_digests
from features.groups.common import FRAME_TABLES, FeatureFrames, to_frames
from features.io import RawDataError, RawTables
from features.source import RawSource, open_raw_source
from features.validate import ValidationReport, validate_tables
from rating.policy import default_status
from serving.api.body import read_json_body, validate_body
from serving.api.errors import ApiError, invalid, validation_error
from serving.batch import BatchError
from serving.engine import RequestSource, StoredRecords
from serving.schemas import (
    Day,
    FieldError,
    Id,
    Lang,
    RequestLimits,
    ScoreBatchRequest,
    ScoreRequest,
    field_errors,
)

_Model = TypeVar("_Model", bound=BaseModel)
_RECORDS = ("customer", "feature_vector")
"""Fields of a request that carries its own data (then it is not by id)."""
_PROFILE = (
    "customer_id", "industry", "region", "size_class", "legal_form", "founded_date",
    "onboarding_date", "sanctions_hit", "legal_enforcement", "fraud",
)  # fmt: skip
"""Fields of a request's ``customer``, from the ``customers`` row read."""


STORE_SETTING = "RISKGRADE_RAW_URL"
"""The setting naming the service's raw store (recorded as ``read.store_setting``: replay
needs the store named again, the recorded label carries no credentials)."""


class RecordsError(BatchError):
    """A customer's records in the raw store break the raw-data contract."""


@dataclass(frozen=True)
class CustomerRead:
    """What a by-id request read: the customer's profile and records, and the read recorded."""

    customer: dict[str, Any]
    """The ``customers`` row as a request's ``customer`` fields."""
    records: StoredRecords
    """The customer's frames and default status at ``as_of``."""
    read: dict[str, Any]
    """What the audit log keeps of the read: source, customer, as_of, bounds, rows, digest."""


class ByIdRequest(BaseModel):
    """A request by customer id: the store supplies the records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: Id
    as_of: Day
    lang: Lang = "en"
    chart: Literal["none", "png", "svg"] | None = None
    """``/explain`` only (``/score`` refuses it, as for a body with records)."""


@lru_cache(maxsize=4)
def raw_store(url: str) -> RawSource:
    """The service's raw store for ``url`` (one per worker; PostgreSQL connections pooled).

    Raises:
        RawDataError: for an unsupported URL.
    """
    from features.source import DatabaseSource, is_url

    return DatabaseSource(url, pooled=True) if is_url(url) else open_raw_source(url)


_Result = list[CustomerRead | BatchError]


@dataclass
class _Wanted:
    """One caller's requests waiting for a read, then its results or the read's error."""

    items: list[ByIdRequest]
    results: _Result | None = None
    error: Exception | None = None


class SharedReads:
    """Concurrent by-id reads of one store merged: one read (one statement) for all waiting.

    A caller whose requests arrive while a read is running waits for it to end; then one of
    the waiting callers reads for all of them at once. A lone caller reads at once.
    """

    def __init__(self, store: RawSource) -> None:
        """Merge the reads of ``store``."""
        self.store = store
        self.reads = 0
        """Reads made (statements, on a database)."""
        self._pending: list[_Wanted] = []
        self._reading = False
        self._turn = threading.Condition()

    @property
    def waiting(self) -> int:
        """Callers waiting for the next read."""
        with self._turn:
            return len(self._pending)

    def read(self, items: list[ByIdRequest]) -> _Result:
        """:func:`read_requests` of ``items``, read together with the callers waiting now.

        Raises:
            RawDataError: if the store cannot be read.
        """
        wanted = _Wanted(list(items))
        with self._turn:
            self._pending.append(wanted)
            while wanted.results is None and wanted.error is None:
                if self._reading:
                    self._turn.wait()
                    continue
                self._reading = True
                batch, self._pending = self._pending, []
                self._turn.release()
                try:
                    self._read(batch)
                finally:
                    self._turn.acquire()
                    self._reading = False
                    self._turn.notify_all()
        if wanted.error is not None:
            raise wanted.error
        return wanted.results  # type: ignore[return-value]

    def _read(self, batch: list[_Wanted]) -> None:
        self.reads += 1
        try:
            results = read_requests(self.store, [item for w in batch for item in w.items])
        except Exception as error:  # every waiting caller gets it (RawDataError: a 503)
            for w in batch:
                w.error = error
            return
        start = 0
        for w in batch:
            w.results = results[start : start + len(w.items)]
            start += len(w.items)


@lru_cache(maxsize=4)
def shared_reads(url: str) -> SharedReads:
    """The merged reads of the service's raw store for ``url`` (one per worker).

    Raises:
        RawDataError: for an unsupported URL.
    """
    return SharedReads(raw_store(url))


def _is_by_id(item: object) -> bool:
    return isinstance(item, dict) and "customer_id" in item and not any(k in item for k in _RECORDS)


def _loc(pointer: str) -> str:
    """Location prefix of the request at a JSON pointer: ``/requests/2`` -> ``requests.2.``."""
    return pointer[1:].replace("/", ".") + "." if pointer else ""


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def read_requests(store: RawSource, items: list[ByIdRequest]) -> _Result:
    """What each by-id request reads: its customer's records, checked, and the read as recorded.

    One read of the store for all of them (one statement on a database), whatever their dates;
    then per ``as_of`` one contract check and one digest pass over all its customers.

    Returns:
        Per request, its `CustomerRead`, or the error naming a customer the store does not
        know at its ``as_of`` or whose records break the raw-data contract.

    Raises:
        RawDataError: if the store cannot be read.
    """
    wanted = {
        day: sorted({item.customer_id for item in items if item.as_of == day})
        for day in sorted({item.as_of for item in items})
    }
    per_day = store.read_customers_by_day(wanted)
    found = {
        day: customer_reads(store.label, day, ids, per_day[day]) for day, ids in wanted.items()
    }
    return [found[item.as_of][item.customer_id] for item in items]


def _profile(row: dict[str, Any]) -> dict[str, Any]:
    """A ``customers`` row as the fields of a request's ``customer`` (its contract types)."""
    profile = {name: row[name] for name in _PROFILE}
    for name in ("founded_date", "onboarding_date"):
        profile[name] = pd.Timestamp(row[name]).date()
    for name in ("sanctions_hit", "legal_enforcement", "fraud"):
        profile[name] = bool(row[name])
    return {name: str(v) if isinstance(v, str) else v for name, v in profile.items()}


def _contract_error(customer_id: str, day: date, report: ValidationReport) -> BatchError:
    problems = report.summary().splitlines()
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return RecordsError(
        f"the raw store's records of customer {customer_id!r} at {day} break the raw-data "
        f"contract: {problems[0]}{more}"
    )


def _one(tables: Mapping[str, pd.DataFrame], customer_id: str) -> dict[str, pd.DataFrame]:
    return {t: f[f["customer_id"] == customer_id].reset_index(drop=True) for t, f in tables.items()}


def customer_reads(
    label: str, day: date, customer_ids: Sequence[str], tables: Mapping[str, pd.DataFrame]
) -> dict[str, CustomerRead | BatchError]:
    """The reads of customers at ``day`` from the tables read for them together.

    The tables (every contract table, cut at ``day`` as ``RawSource.read_customers_at``
    returns them) go through the raw-data contract (``features.validate.validate_tables``,
    the check batch scoring applies), the records digest (``features.digest``) and
    ``features.groups.common.to_frames`` once for all the customers; the frames are then
    split by customer. A customer whose records break the contract gets the error naming the
    first problem (the others are decided).

    Args:
        label: the store's label as recorded (never credentials).
        day: the ``as_of`` of the read.
        customer_ids: the customers read.
        tables: their records known at ``day``.

    Returns:
        customer id -> its read, or the error of a customer unknown at ``day`` or whose
        records break the contract.
    """
    out: dict[str, CustomerRead | BatchError] = {}
    profiles = {str(r["customer_id"]): r for r in tables["customers"].to_dict("records")}
    ids = []
    for cid in sorted(set(customer_ids)):
        if cid in profiles:
            ids.append(cid)
        else:  # the read left out a customer onboarded later
            out[cid] = BatchError(
                f"customer {cid!r} is not in the raw store at {day} (unknown, or onboarded later)"
            )
    if not ids:
        return out
    report = validate_tables(dict(tables), day)
    if not report.ok:
        for cid in ids:
            mine = report if len(ids) == 1 else validate_tables(_one(tables, cid), day)
            if not mine.ok:
                out[cid] = _contract_error(cid, day, mine)
        ids = [cid for cid in ids if cid not in out]
        tables = {
            t: f[f["customer_id"].isin(ids)].reset_index(drop=True) for t, f in tables.items()
        }
    digests = record_digests(tables, ids)
    frames = to_frames(RawTables.from_mapping(tables))
    parts = {
        table: getattr(frames, table).partition_by("customer_id", as_dict=True)
        for table in FRAME_TABLES
    }
    defaults: dict[str, list[tuple[date, str]]] = {}
    columns = ["customer_id", "default_date", "default_type"]
    for cid, when, kind in tables["defaults"][columns].itertuples(index=False):
        defaults.setdefault(str(cid), []).append((pd.Timestamp(when).date(), str(kind)))
    bounds = read_bounds(day)
    for cid in ids:
        digest, rows = digests[cid]
        feature_frames = FeatureFrames(
            **{
                table: part.get((cid,), getattr(frames, table).clear())
                for table, part in parts.items()
            }
        )
        out[cid] = CustomerRead(
            customer=_profile(profiles[cid]),
            records=StoredRecords(feature_frames, default_status(defaults.get(cid, ()), day)),
            read={
                "source": label,
                "customer_id": cid,
                "as_of": day.isoformat(),
                "bounds": bounds,
                "rows": rows,
                "records_sha256": digest,
                "store_setting": STORE_SETTING,
            },
        )
    return out


def decidable(
    item: ByIdRequest, found: CustomerRead, model: type[_Model], limits: RequestLimits | None
) -> _Model:
    """The request ``model`` (``ScoreRequest`` or ``ExplainRequest``) deciding ``item``.

    It carries the customer's profile (validated as a body's) and, in place of the record
    lists, the frames read (``serving.engine.StoredRecords``): the engine computes the
    features from them with the code a body's records go through from the frame stage on.

    Raises:
        pydantic.ValidationError: if ``item`` asks for what ``model`` refuses (a chart on
            ``/score``) or the profile read is invalid.
    """
    data: dict[str, Any] = {"as_of": item.as_of, "lang": item.lang, "customer": found.customer}
    if item.chart is not None:
        data["chart"] = item.chart
    context = {"limits": limits} if limits is not None else None
    request = model.model_validate(data, context=context)
    request._stored = found.records  # type: ignore[attr-defined]  # ScoreRequest's private
    return request


@dataclass(frozen=True)
class Parsed:
    """A scoring route's body: the validated request(s) and where each came from."""

    body: Any
    """The validated body (the route's model)."""
    sources: list[RequestSource]
    """Per request (one, or each of a batch), what the audit log keeps of it."""


def _by_id_items(document: Any, max_requests: int) -> dict[str, Any]:
    """The by-id requests of a parsed body, by JSON pointer (``""``: the body itself)."""
    if isinstance(document, dict) and isinstance(document.get("requests"), list):
        if len(document["requests"]) > max_requests:
            return {}  # validation refuses the batch
        return {f"/requests/{i}": r for i, r in enumerate(document["requests"]) if _is_by_id(r)}
    return {"": document} if _is_by_id(document) else {}


def _fields(error: ValidationError, prefix: str) -> list[FieldError]:
    return [FieldError(loc=prefix + f.loc, message=f.message) for f in field_errors(error)]


def parse_scoring_body(
    body: bytes, url: str | None, limits: RequestLimits, model: type[_Model]
) -> Parsed:
    """Validate a scoring route's body as ``model``, its by-id requests decided from the store.

    A body without by-id requests is validated as received (the audit log keeps its bytes).
    Each by-id request is read from the store (one read for all those of the call, merged
    with the calls waiting, see `SharedReads`) and becomes a request carrying its records
    (`decidable`); the audit log keeps it as received plus what was read (``read``). The other
    requests of a mixed batch are validated as bodies. Reads block: call it from a thread.

    Raises:
        ApiError: 422 naming every invalid field, or a by-id request sent without a
            configured store; 404 naming a customer the store does not know at ``as_of``;
            422 naming a customer whose stored records break the raw-data contract; 503
            when the store cannot be read.
    """
    items: dict[str, Any] = {}
    document: Any = None
    if url is not None or len(body) <= 65_536:  # no store: only a small body can be by id
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            document = None  # validation names the problem
        items = _by_id_items(document, limits.max_batch)
    batch = model is ScoreBatchRequest
    if "" in items and batch:  # a batch route's body is a batch: validation says so
        items = {}
    if not items:
        validated = validate_body(body, limits, model)
        if isinstance(validated, ScoreBatchRequest):
            pointers = [f"/requests/{i}" for i in range(len(validated.requests))]
            return Parsed(validated, [RequestSource(body, p) for p in pointers])
        return Parsed(validated, [RequestSource(body)])
    if url is None:
        raise invalid(
            _loc(next(iter(items))) + "customer_id",
            "scoring by customer id needs a raw store (RISKGRADE_RAW_URL); "
            "send the customer's records instead",
        )
    wanted: dict[str, ByIdRequest] = {}
    problems: list[FieldError] = []
    for pointer, item in items.items():
        try:
            wanted[pointer] = ByIdRequest.model_validate_json(_compact(item), strict=True)
        except ValidationError as error:
            problems += _fields(error, _loc(pointer))
    others: dict[str, ScoreRequest] = {}
    if batch:  # the body requests of a mixed batch, each validated as a body's
        for i, other in enumerate(document["requests"]):
            pointer = f"/requests/{i}"
            if pointer in items:
                continue
            try:
                others[pointer] = ScoreRequest.model_validate_json(
                    _compact(other), strict=True, context={"limits": limits}
                )
            except ValidationError as error:
                problems += _fields(error, _loc(pointer))
    if problems:
        raise validation_error(problems)
    try:
        results = shared_reads(url).read(list(wanted.values()))
    except RawDataError as error:
        raise ApiError(503, "not_ready", f"raw store unavailable: {error}") from error
    decided: dict[str, ScoreRequest] = {}
    sources: dict[str, RequestSource] = {}
    item_model: type[ScoreRequest] = ScoreRequest if batch else model  # type: ignore[assignment]
    for (pointer, item), result in zip(wanted.items(), results, strict=True):
        field = _loc(pointer) + "customer_id"
        if isinstance(result, RecordsError):
            raise invalid(field, str(result)) from result
        if isinstance(result, BatchError):
            raise ApiError(
                404, "not_found", str(result), [FieldError(loc=field, message=str(result))]
            )
        try:
            decided[pointer] = decidable(item, result, item_model, limits)
        except ValidationError as error:
            raise validation_error(_fields(error, _loc(pointer))) from error
        received = items[pointer]
        sources[pointer] = RequestSource(
            _compact({**received, "read": result.read}), read=result.read
        )
    if not batch:
        return Parsed(decided[""], [sources[""]])
    pointers = [f"/requests/{i}" for i in range(len(document["requests"]))]
    requests = [decided[p] if p in decided else others[p] for p in pointers]
    return Parsed(
        ScoreBatchRequest.model_construct(requests=requests),
        [sources[p] if p in sources else RequestSource(body, p) for p in pointers],
    )


async def scoring_body(request: Request, config: Any, model: type[_Model]) -> Parsed:
    """Read a scoring route's body and :func:`parse_scoring_body` it as ``model``.

    ``config`` is the service's (``serving.service.ServiceConfig``): its ``limits`` and the
    raw store of scoring by id (``raw_url``).

    Raises:
        ApiError: as :func:`serving.api.body.read_json_body` and :func:`parse_scoring_body`.
    """
    limits = config.limits
    raw = await read_json_body(request, limits.max_body_bytes)
    return await run_in_threadpool(parse_scoring_body, raw, config.raw_url, limits, model)
