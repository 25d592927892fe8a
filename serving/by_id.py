"""Scoring by customer id: ``{customer_id, as_of}`` becomes the body the routes already score.

With a raw store configured (``RISKGRADE_RAW_URL``: a PostgreSQL or DuckDB URL, or a folder),
``/score``, ``/explain`` and each item of ``/score_batch`` may carry only ``customer_id`` and
``as_of`` (and ``lang``, ``chart``). :func:`expand_by_id` reads that customer's records known at
``as_of`` from the store (indexed lookups, the as-of cut in the query; one statement for all
the requests of a call, and for all the calls waiting while a read runs) and writes them into the
request as ``riskgrade request-example`` would; the request is then validated and decided
exactly as a body that carried them. The audit log keeps the expanded body, so replay gives the
same answer however the store grows, plus what was read: the source, the query bounds, the
rows per table and the SHA-256 of the request built from them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from features.asof import read_bounds
from features.io import RawDataError, RawTables
from features.source import RawSource, open_raw_source
from serving.api.body import read_json_body, validate_body
from serving.api.errors import ApiError, invalid, validation_error
from serving.batch import BatchError, request_example
from serving.schemas import Day, FieldError, Id, Lang, field_errors

_Model = TypeVar("_Model", bound=BaseModel)
_RECORDS = ("customer", "feature_vector")
"""Fields of a request that carries its own data (then it is not by id)."""


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


_Result = list[tuple[dict[str, Any], dict[str, Any]] | BatchError]


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


def read_requests(
    store: RawSource, items: list[ByIdRequest]
) -> list[tuple[dict[str, Any], dict[str, Any]] | BatchError]:
    """The full request body of each by-id request and what was read for it.

    One read of the store for all of them (one statement on a database), whatever their dates.

    Returns:
        Per request, the body and the read, or the error naming a customer the store does not
        know at its ``as_of``.

    Raises:
        RawDataError: if the store cannot be read.
    """
    out: list[tuple[dict[str, Any], dict[str, Any]] | BatchError] = []
    wanted = {
        day: sorted({item.customer_id for item in items if item.as_of == day})
        for day in sorted({item.as_of for item in items})
    }
    per_day = store.read_customers_by_day(wanted)
    for item in items:
        tables = per_day[item.as_of]
        if len(wanted[item.as_of]) > 1:  # the day's read holds other customers too
            tables = {
                table: frame[frame["customer_id"] == item.customer_id].reset_index(drop=True)
                for table, frame in tables.items()
            }
        try:
            out.append(_request(store, item, tables))
        except BatchError as error:
            out.append(error)
    return out


def _request(
    store: RawSource, item: ByIdRequest, tables: dict[str, pd.DataFrame]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer's request body from its records, and what was read (as recorded).

    The read: the source, the query bounds of the as-of cut, rows per table, the body's SHA-256.
    """
    if tables["customers"].empty:  # the read left out a customer onboarded later
        raise BatchError(
            f"customer {item.customer_id!r} is not in the raw store at {item.as_of} "
            "(unknown, or onboarded later)"
        )
    body = request_example(
        RawTables.from_mapping(tables), item.customer_id, item.as_of, lang=item.lang
    )
    if item.chart is not None:
        body["chart"] = item.chart
    day = item.as_of.isoformat()
    read = {
        "source": store.label,
        "customer_id": item.customer_id,
        "as_of": day,
        "bounds": read_bounds(item.as_of),
        "rows": {table: len(frame) for table, frame in tables.items()},
        "sha256": hashlib.sha256(_compact(body)).hexdigest(),
    }
    return body, read


def expand_by_id(
    body: bytes, url: str | None, max_requests: int
) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """The body with every by-id request replaced by the records the store holds.

    A body without by-id requests comes back unchanged (the same bytes), as does a batch of
    more than ``max_requests`` (validation refuses it). Reads block: call it from a thread.

    Returns:
        The body to validate and record, and per JSON pointer of an expanded request
        (``""`` or ``/requests/<i>``) what was read.

    Raises:
        ApiError: 422 for a by-id request that is invalid or sent without a configured store;
            404 naming a customer the store does not know at ``as_of``; 503 when the store
            cannot be read.
    """
    if url is None and len(body) > 65_536:  # no store: only a small body can be by id
        return body, {}
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body, {}  # validation names the problem
    if isinstance(document, dict) and isinstance(document.get("requests"), list):
        if len(document["requests"]) > max_requests:
            return body, {}
        items = {f"/requests/{i}": r for i, r in enumerate(document["requests"]) if _is_by_id(r)}
    else:
        items = {"": document} if _is_by_id(document) else {}
    if not items:
        return body, {}
    if url is None:
        raise invalid(
            _loc(next(iter(items))) + "customer_id",
            "scoring by customer id needs a raw store (RISKGRADE_RAW_URL); "
            "send the customer's records instead",
        )
    requests: dict[str, ByIdRequest] = {}
    for pointer, item in items.items():
        try:
            requests[pointer] = ByIdRequest.model_validate_json(_compact(item), strict=True)
        except ValidationError as error:
            fields = [
                FieldError(loc=_loc(pointer) + f.loc, message=f.message)
                for f in field_errors(error)
            ]
            raise validation_error(fields) from error
    try:
        results = shared_reads(url).read(list(requests.values()))
    except RawDataError as error:
        raise ApiError(503, "not_ready", f"raw store unavailable: {error}") from error
    reads: dict[str, dict[str, Any]] = {}
    for pointer, result in zip(requests, results, strict=True):
        if isinstance(result, BatchError):
            field = FieldError(loc=_loc(pointer) + "customer_id", message=str(result))
            raise ApiError(404, "not_found", str(result), [field]) from result
        full, read = result
        if pointer:
            document["requests"][int(pointer.rsplit("/", 1)[1])] = full
        else:
            document = full
        reads[pointer] = read
    return _compact(document), reads


async def scoring_body(
    request: Request, config: Any, model: type[_Model]
) -> tuple[_Model, bytes, dict[str, dict[str, Any]]]:
    """Read a scoring route's body, expand its by-id requests, validate it as ``model``.

    ``config`` is the service's (``serving.service.ServiceConfig``): its ``limits`` and the
    raw store of scoring by id (``raw_url``).

    Returns:
        The validated body, its bytes as recorded (expanded), and what each by-id request read.

    Raises:
        ApiError: as :func:`serving.api.body.parse_body` and :func:`expand_by_id`.
    """
    limits = config.limits
    raw = await read_json_body(request, limits.max_body_bytes)
    raw, reads = await run_in_threadpool(expand_by_id, raw, config.raw_url, limits.max_batch)
    return validate_body(raw, limits, model), raw, reads
