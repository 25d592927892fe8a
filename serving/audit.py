"""Tamper-evident, append-only audit log of scoring decisions (SQLite by default).

Every decision is one row of ``decisions``; its ``hash`` is
``sha256(prev_hash + canonical JSON of every other column)``, chaining it to the row before.
The request body is kept exactly as it was received, once, in ``request_bodies`` (keyed by its
SHA-256); a decision names it by ``request_sha256`` plus ``request_pointer``, the JSON pointer
of its request inside that body (``""`` for ``/score``, ``"/requests/3"`` for the fourth
request of a ``/score_batch`` call). The digest is part of the row hash and verification
re-hashes every body, so a changed byte of a body is detected like a changed column. Storing
the bytes received also means nothing is re-serialised on the scoring path. Records written
before bodies were stored separately (no ``request_sha256``) keep their request in the payload
and are hashed as they were written. Triggers reject UPDATE and DELETE on every table.

Every ``checkpoint_every`` records a row of ``checkpoints`` stores (record count, head hash,
HMAC-SHA256 of both under a secret key), so a log whose tail was cut off (rows and triggers
removed by someone with file access) no longer matches its last checkpoint. A tail shorter than
``checkpoint_every`` records, cut together with no checkpoint, is only detectable against an
external copy of the checkpoints: ship them
elsewhere (``export_checkpoints``) when that matters.

Scaling out: ``AuditConfig.url`` takes a SQLAlchemy URL. A PostgreSQL URL makes
``open_audit_store`` return ``serving.audit_sql.SqlAuditStore``: the same interface, records
and chain, with a table lock serialising writers across processes and hosts; a
``sqlite:///PATH`` URL is this store on that file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from serving.audit_sql import SqlAuditStore

GENESIS_HASH = "0" * 64
MAX_RECORD_ID = 2**63 - 1
"""Largest row id a store can hold (SQLite INTEGER, PostgreSQL BIGINT)."""
HMAC_KEY_ENV = "RISKGRADE_AUDIT_KEY"
_DEV_KEY = "riskgrade-dev-audit-key-change-me"

_COLUMNS: tuple[str, ...] = (
    "id",
    "decision_id",
    "created_at",
    "kind",
    "caller",
    "customer_id",
    "model_version",
    "bundle_hash",
    "policy_version",
    "pd",
    "grade",
    "tier",
    "payload",
    "prev_hash",
)
"""Columns covered by every record's hash, in hashing order."""
_REQUEST_COLUMNS: tuple[str, ...] = ("request_sha256", "request_pointer")
"""Also hashed when ``request_sha256`` is set (every record but those of the first format)."""
_STORED: tuple[str, ...] = (*_COLUMNS, *_REQUEST_COLUMNS, "hash")
"""Columns read back from ``decisions``."""

RATED_ON_SQLITE = "CASE WHEN json_valid(payload) THEN json_extract(payload, '$.response.as_of') END"
"""SQLite expression of a record's rating date (the decision's ``as_of``, ``YYYY-MM-DD``),
read from the hashed payload (no extra column, so the chain of existing logs is unchanged);
indexed as ``decisions_rated_on``, NULL for a payload without one."""


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    caller TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    bundle_hash TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    pd REAL NOT NULL,
    grade TEXT NOT NULL,
    tier TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    request_sha256 TEXT,
    request_pointer TEXT
);
CREATE TABLE IF NOT EXISTS request_bodies (
    sha256 TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_created_at ON decisions (created_at);
CREATE INDEX IF NOT EXISTS decisions_customer_id ON decisions (customer_id);
CREATE INDEX IF NOT EXISTS decisions_tier ON decisions (tier);
CREATE INDEX IF NOT EXISTS decisions_model_version ON decisions (model_version);
CREATE INDEX IF NOT EXISTS decisions_rated_on ON decisions ({RATED_ON_SQLITE});
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE rejected'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE rejected'); END;
CREATE TRIGGER IF NOT EXISTS request_bodies_no_update BEFORE UPDATE ON request_bodies
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE rejected'); END;
CREATE TRIGGER IF NOT EXISTS request_bodies_no_delete BEFORE DELETE ON request_bodies
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE rejected'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE rejected'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE rejected'); END;
"""


class AuditError(RuntimeError):
    """The audit store cannot be opened or read."""


class AuditUnavailableError(AuditError):
    """A decision could not be committed: the caller must not hand out the decision."""


class AuditRecordNotFoundError(AuditError, KeyError):
    """No decision with the requested id."""


class AuditConfig(BaseModel):
    """Where and how decisions are recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Path("data/audit.db")
    checkpoint_every: int = Field(default=100, ge=1, le=1_000_000)
    hmac_key_env: str = HMAC_KEY_ENV
    """Environment variable holding the checkpoint signing key (a dev key is used if unset)."""
    busy_timeout_ms: int = Field(default=5000, ge=0)
    url: str | None = None
    """SQLAlchemy URL of the audit database (``sqlite:///...`` or ``postgresql://...``);
    None: the SQLite file at ``path``."""


class DecisionRecord(BaseModel):
    """What the service writes for one decision (the store adds id, time and hashes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    caller: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=64)
    model_version: str
    bundle_hash: str
    policy_version: str
    pd: float
    grade: str
    tier: str
    payload: dict[str, Any]
    """Computed features, flags and the response (reasons, groups, hard rules)."""
    request_body: bytes
    """The HTTP body the request came in, byte for byte (stored once per distinct body)."""
    request_pointer: str = Field(default="", max_length=64, pattern=r"^(/[A-Za-z0-9_]+)*$")
    """JSON pointer of this decision's request inside ``request_body`` (``""``: the body)."""


@dataclass(frozen=True)
class StoredDecision:
    """One row of the log, as stored."""

    id: int
    decision_id: str
    created_at: str
    kind: str
    caller: str
    customer_id: str
    model_version: str
    bundle_hash: str
    policy_version: str
    pd: float
    grade: str
    tier: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    request_sha256: str | None = None
    request_pointer: str | None = None
    request: dict[str, Any] | None = None
    """The scored request (read by ``show``; None in search results and listings)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the record."""
        return {name: getattr(self, name) for name in (*_STORED, "request")}


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain verification."""

    ok: bool
    records: int
    checkpoints: int
    first_bad_id: int | None = None
    problem: str | None = None


class AuditQuery(BaseModel):
    """A search of the audit log: every given filter must match (exact, except the time range)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: str | None = Field(default=None, min_length=1, max_length=64)
    start: datetime | None = None
    """Earliest ``created_at`` (inclusive; naive values are UTC)."""
    end: datetime | None = None
    """Latest ``created_at`` (exclusive; naive values are UTC)."""
    rated_from: date | None = None
    """Earliest rating date, the decision's ``as_of`` (inclusive)."""
    rated_to: date | None = None
    """Latest rating date (inclusive)."""
    tier: str | None = Field(default=None, min_length=1, max_length=32)
    model_version: str | None = Field(default=None, min_length=1, max_length=128)
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check_range(self) -> AuditQuery:
        if (
            self.start is not None
            and self.end is not None
            and _utc_iso(self.start) > _utc_iso(self.end)
        ):
            raise ValueError(f"start {self.start} is after end {self.end}")
        if (
            self.rated_from is not None
            and self.rated_to is not None
            and self.rated_from > self.rated_to
        ):
            raise ValueError(f"rated_from {self.rated_from} is after rated_to {self.rated_to}")
        return self


@dataclass(frozen=True)
class AuditPage:
    """One page of search results, newest first, with the total number of matches."""

    records: tuple[StoredDecision, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class RecordCheck:
    """Local integrity of one record: its own hash and its link to the previous record."""

    id: int
    hash_ok: bool
    link_ok: bool
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Both checks passed."""
        return self.hash_ok and self.link_ok


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, non-finite floats refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def record_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """Hash of one row: sha256 over the previous hash and the canonical JSON of its columns.

    ``row['payload']`` is hashed as the stored text, so any byte change is detected; the
    request body is covered through its digest (``request_sha256``).
    """
    names = _COLUMNS if row.get("request_sha256") is None else (*_COLUMNS, *_REQUEST_COLUMNS)
    body = canonical_json({name: row[name] for name in names})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def body_digest(body: bytes) -> str:
    """SHA-256 (hex) of a request body, its key in ``request_bodies``."""
    return hashlib.sha256(body).hexdigest()


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901, the subset the store writes), or None."""
    value = document
    for token in pointer.split("/")[1:] if pointer else []:
        key = token.replace("~1", "/").replace("~0", "~")
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return value


def stored_request(record: StoredDecision, body: bytes | None) -> dict[str, Any] | None:
    """The request a record scored: its pointer into ``body``, or (first format) the payload.

    None when it cannot be read (body missing or altered): ``check_record`` and ``verify``
    report why, and reading the record must not fail on it.
    """
    if record.request_sha256 is None:
        request = record.payload.get("request")
        return request if isinstance(request, dict) else None
    if body is None or body_digest(body) != record.request_sha256:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    request = resolve_pointer(document, record.request_pointer or "")
    return request if isinstance(request, dict) else None


def _sign(key: bytes, count: int, head_hash: str) -> str:
    return hmac.new(key, f"{count}:{head_hash}".encode(), hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by None so the payload is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def payload_json(record: DecisionRecord) -> str:
    """Canonical JSON of a record's payload (strict JSON fast path, converted otherwise)."""
    try:  # the engine's payloads are already strict JSON (str keys, finite floats)
        return canonical_json(record.payload)
    except (ValueError, TypeError):
        return canonical_json(_jsonable(record.payload))


def chained_row(
    record: DecisionRecord, payload: str, row_id: int, prev_hash: str, request_sha256: str
) -> dict[str, Any]:
    """The stored row of ``record`` linked after ``prev_hash``, with its own hash.

    Every backend stores exactly these values, so a log verifies the same way anywhere.
    """
    row: dict[str, Any] = {
        "id": row_id,
        "decision_id": record.decision_id,
        "created_at": _now(),
        "kind": record.kind,
        "caller": record.caller,
        "customer_id": record.customer_id,
        "model_version": record.model_version,
        "bundle_hash": record.bundle_hash,
        "policy_version": record.policy_version,
        "pd": float(record.pd),
        "grade": record.grade,
        "tier": record.tier,
        "payload": payload,
        "prev_hash": prev_hash,
        "request_sha256": request_sha256,
        "request_pointer": record.request_pointer,
    }
    row["hash"] = record_hash(prev_hash, row)
    return row


class AuditStore:
    """The SQLite audit store: append, read, export, verify.

    One connection, serialised by a lock (SQLite has one writer anyway); safe to share between
    the service's worker threads. Several processes may share one file: every append takes the
    write lock (``BEGIN IMMEDIATE``) before it reads the chain head.
    """

    def __init__(self, config: AuditConfig | None = None, *, key: bytes | None = None) -> None:
        """Open (creating if needed) the store; WAL journal, ``synchronous=FULL``.

        Raises:
            AuditError: if the database cannot be opened or initialised.
        """
        self.config = config or AuditConfig()
        self.path = self.config.path
        env_key = os.environ.get(self.config.hmac_key_env)
        self._key = key if key is not None else (env_key or _DEV_KEY).encode()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path,
                timeout=self.config.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute(f"PRAGMA busy_timeout={self.config.busy_timeout_ms}")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise AuditError(f"{self.path}: cannot switch the audit log to WAL (got {mode})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            _add_request_columns(self._conn)
        except (OSError, sqlite3.Error) as error:
            raise AuditError(f"cannot open audit store {self.path}: {error}") from error

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def uses_dev_key(self) -> bool:
        """True when checkpoints are signed with the built-in development key."""
        return self._key == _DEV_KEY.encode()

    def is_writable(self) -> bool:
        """Whether a write transaction can be taken right now (readiness probe)."""
        if not os.access(self.path, os.W_OK):
            return False
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    def append(self, record: DecisionRecord) -> StoredDecision:
        """Commit one decision (and a checkpoint when due) durably, before returning.

        Raises:
            AuditUnavailableError: if anything prevents the commit; nothing is written then.
        """
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[DecisionRecord]) -> list[StoredDecision]:
        """Commit decisions in one transaction (one fsync), chained in the given order.

        All or nothing: if anything prevents the commit, no record of the group is written.

        Raises:
            AuditUnavailableError: if the group cannot be committed.
        """
        prepared = [
            (record, payload_json(record), body_digest(record.request_body)) for record in records
        ]
        rows: list[dict[str, Any]] = []
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    head = self._conn.execute(
                        "SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1"
                    ).fetchone()
                    prev_id, prev_hash = head if head else (0, GENESIS_HASH)
                    for record, payload, digest in prepared:
                        self._conn.execute(
                            "INSERT OR IGNORE INTO request_bodies (sha256, body) VALUES (?, ?)",
                            (digest, record.request_body),
                        )
                        row = chained_row(record, payload, prev_id + 1, prev_hash, digest)
                        self._conn.execute(_INSERT_DECISION, [row[name] for name in _STORED])
                        if row["id"] % self.config.checkpoint_every == 0:
                            self._conn.execute(
                                "INSERT INTO checkpoints (record_count, head_hash, created_at, "
                                "signature) VALUES (?, ?, ?, ?)",
                                (
                                    row["id"],
                                    row["hash"],
                                    row["created_at"],
                                    _sign(self._key, row["id"], row["hash"]),
                                ),
                            )
                        rows.append(row)
                        prev_id, prev_hash = row["id"], row["hash"]
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, ValueError) as error:
                raise AuditUnavailableError(f"audit store {self.path}: {error}") from error
        return [_to_stored(row) for row in rows]

    def show(self, record_id: int | str) -> StoredDecision:
        """One record by row id (int) or decision id (str), with the request it scored.

        Raises:
            AuditRecordNotFoundError: if there is no such record.
        """
        return self._read(record_id)[0]

    def _read(self, record_id: int | str) -> tuple[StoredDecision, bytes | None]:
        """A record (with its request) and its stored body, read once."""
        column = "id" if isinstance(record_id, int) else "decision_id"
        if isinstance(record_id, int) and not 0 < record_id <= MAX_RECORD_ID:
            raise AuditRecordNotFoundError(f"no audit record with {column} {record_id!r}")
        rows = self._select(f"WHERE {column} = ?", (record_id,))
        if not rows:
            raise AuditRecordNotFoundError(f"no audit record with {column} {record_id!r}")
        body = self._body(rows[0].request_sha256)
        return replace(rows[0], request=stored_request(rows[0], body)), body

    def _body(self, digest: str | None) -> bytes | None:
        if digest is None:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM request_bodies WHERE sha256 = ?", (digest,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def export(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        customer_id: str | None = None,
        rated_from: date | None = None,
        rated_to: date | None = None,
    ) -> list[StoredDecision]:
        """Records matching every given filter (open when None), oldest first.

        Args:
            start: earliest ``created_at``, the time the record was written (inclusive, UTC).
            end: latest ``created_at`` (exclusive, UTC).
            customer_id: one customer's decisions.
            rated_from: earliest rating date, the decision's ``as_of`` (inclusive).
            rated_to: latest rating date (inclusive).

        Raises:
            ValueError: if a range is inverted.
        """
        query = export_query(start, end, customer_id, rated_from, rated_to)
        clauses, params = _query_clauses(query)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(where, params)

    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoint rows (count, head hash, time, signature), oldest first."""
        keys = ("id", "record_count", "head_hash", "created_at", "signature")
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(keys)} FROM checkpoints ORDER BY id"
            ).fetchall()
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def count(self) -> int:
        """Number of records."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])

    def verify(self) -> VerifyResult:
        """Check the whole chain, the request bodies and the checkpoints; see ``verify``."""
        with self._lock:
            return _verify_sqlite(self._conn, self._key, self.config.checkpoint_every)

    def _select(self, where: str, params: tuple[Any, ...]) -> list[StoredDecision]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_STORED)} FROM decisions {where} ORDER BY id", params
            ).fetchall()
        return [_to_stored(dict(zip(_STORED, row, strict=True))) for row in rows]

    def iter_all(self) -> Iterator[StoredDecision]:
        """Every record, oldest first."""
        yield from self._select("", ())

    def search(self, query: AuditQuery | None = None) -> AuditPage:
        """Records matching ``query`` (all filters combined), newest first, one page of them.

        Args:
            query: customer, ``start <= created_at < end`` (UTC), tier, model version, and the
                page (``limit``, ``offset``); None lists the latest records.

        Returns:
            The page of records and the total number of matches.
        """
        query = query or AuditQuery()
        clauses, params = _query_clauses(query)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            total = int(
                self._conn.execute(f"SELECT COUNT(*) FROM decisions {where}", params).fetchone()[0]
            )
            rows = self._conn.execute(
                f"SELECT {', '.join(_STORED)} FROM decisions {where} ORDER BY id DESC "
                "LIMIT ? OFFSET ?",
                (*params, query.limit, query.offset),
            ).fetchall()
        records = tuple(_to_stored(dict(zip(_STORED, row, strict=True))) for row in rows)
        return AuditPage(records=records, total=total, limit=query.limit, offset=query.offset)

    def facets(self) -> dict[str, list[str]]:
        """Distinct tiers and model versions in the log (for search forms), sorted."""
        with self._lock:
            tiers = self._conn.execute("SELECT DISTINCT tier FROM decisions").fetchall()
            versions = self._conn.execute("SELECT DISTINCT model_version FROM decisions").fetchall()
        return {
            "tiers": sorted(str(row[0]) for row in tiers),
            "model_versions": sorted(str(row[0]) for row in versions),
        }

    def check_record(self, record_id: int | str) -> RecordCheck:
        """Check one record locally: its hash, its request body and its link to the record before.

        Cheap (two rows and a body); the whole chain and the checkpoints are checked by `verify`.

        Raises:
            AuditRecordNotFoundError: if there is no such record.
        """
        record, body = self._read(record_id)
        with self._lock:
            stored_payload = self._conn.execute(
                "SELECT payload FROM decisions WHERE id = ?", (record.id,)
            ).fetchone()[0]
            previous = self._conn.execute(
                "SELECT hash FROM decisions WHERE id = ?", (record.id - 1,)
            ).fetchone()
        return check_row(record, stored_payload, previous[0] if previous else None, body)


_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(_STORED)}) VALUES ({', '.join('?' for _ in _STORED)})"
)


def _add_request_columns(conn: sqlite3.Connection) -> None:
    """Bring a log of the first format (request inside the payload) to the current columns.

    ALTER TABLE ADD COLUMN changes no stored row (the append-only triggers stay intact); old
    rows keep NULL request columns and are hashed as they were written.
    """
    present = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    for column in _REQUEST_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE decisions ADD COLUMN {column} TEXT")


def check_row(
    record: StoredDecision, stored_payload: str, previous_hash: str | None, body: bytes | None
) -> RecordCheck:
    """Local integrity of one stored row (shared by every backend)."""
    row = record.to_dict()
    row["payload"] = stored_payload
    hash_ok = record_hash(record.prev_hash, row) == record.hash
    body_ok = record.request_sha256 is None or (
        body is not None and body_digest(body) == record.request_sha256
    )
    expected_prev = GENESIS_HASH if record.id == 1 else previous_hash
    link_ok = expected_prev is not None and expected_prev == record.prev_hash
    problem = None
    if not hash_ok:
        problem = f"record {record.id}: content does not match its hash"
    elif not body_ok:
        problem = f"record {record.id}: request body missing or altered"
    elif expected_prev is None:
        problem = f"record {record.id - 1} (before record {record.id}) is missing"
    elif not link_ok:
        problem = f"record {record.id}: prev_hash does not link to record {record.id - 1}"
    return RecordCheck(id=record.id, hash_ok=hash_ok and body_ok, link_ok=link_ok, problem=problem)


def open_audit_store(
    config: AuditConfig | None = None, *, key: bytes | None = None
) -> AuditStore | SqlAuditStore:
    """The audit store ``config`` names: its SQLAlchemy ``url`` when set, else the SQLite file.

    A ``sqlite:///PATH`` URL opens the SQLite store on that file (the same store as
    ``path``); ``postgresql://`` (psycopg 3) opens ``SqlAuditStore``. Other dialects are
    refused by name: the append-only triggers exist for these two.

    Raises:
        AuditError: if the store cannot be opened (``AuditUrlError`` for a bad URL).
    """
    config = config or AuditConfig()
    if config.url is None:
        return AuditStore(config, key=key)
    from serving.audit_sql import SqlAuditStore, parse_audit_url

    url = parse_audit_url(config.url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None  # parse_audit_url refuses in-memory databases
        return AuditStore(
            config.model_copy(update={"url": None, "path": Path(url.database)}), key=key
        )
    return SqlAuditStore(config, key=key)


def export_query(
    start: datetime | None = None,
    end: datetime | None = None,
    customer_id: str | None = None,
    rated_from: date | None = None,
    rated_to: date | None = None,
) -> AuditQuery:
    """The filters of an export as an `AuditQuery` (its page fields are not used).

    Raises:
        ValueError: if a range is inverted or the customer id is empty or too long.
    """
    return AuditQuery(
        start=start, end=end, customer_id=customer_id, rated_from=rated_from, rated_to=rated_to
    )


def _query_clauses(
    query: AuditQuery, rated_on: str = RATED_ON_SQLITE
) -> tuple[list[str], tuple[Any, ...]]:
    """SQL conditions (``?`` placeholders) of a query; ``rated_on``: the rating-date SQL."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("customer_id", "tier", "model_version"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.start is not None:
        clauses.append("created_at >= ?")
        params.append(_utc_iso(query.start))
    if query.end is not None:
        clauses.append("created_at < ?")
        params.append(_utc_iso(query.end))
    if query.rated_from is not None:
        clauses.append(f"{rated_on} >= ?")
        params.append(query.rated_from.isoformat())
    if query.rated_to is not None:
        clauses.append(f"{rated_on} <= ?")
        params.append(query.rated_to.isoformat())
    return clauses, tuple(params)


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _to_stored(row: Mapping[str, Any]) -> StoredDecision:
    values = dict(row)
    values["payload"] = json.loads(values["payload"])
    return StoredDecision(**values)


def _verify_rows(
    rows: Iterable[Sequence[Any]],
    n_rows: int,
    checkpoints: list[tuple[Any, ...]],
    key: bytes,
    checkpoint_every: int,
    good_bodies: set[str],
) -> VerifyResult:
    """Check rows (``_STORED`` order, by id), their request bodies and the checkpoints.

    Args:
        rows: Every decision row, oldest first (streamed: a log need not fit in memory).
        n_rows: How many rows there are.
        checkpoints: ``(id, record_count, head_hash, signature)`` rows, oldest first.
        key: Checkpoint HMAC key.
        checkpoint_every: Checkpoint interval the log was written with.
        good_bodies: Digests of the stored bodies whose content still hashes to their key.
    """
    n_checks = len(checkpoints)

    def bad(record_id: int, problem: str) -> VerifyResult:
        return VerifyResult(False, n_rows, n_checks, record_id, problem)

    due = {count for _, count, _, _ in checkpoints}
    heads: dict[int, str] = {}
    prev_hash = GENESIS_HASH
    position = 0
    for position, values in enumerate(rows, start=1):
        row = dict(zip(_STORED, values, strict=True))
        if row["id"] != position:
            return bad(position, f"record {position} is missing (next stored id is {row['id']})")
        if row["prev_hash"] != prev_hash:
            return bad(
                position, f"record {position}: prev_hash does not link to record {position - 1}"
            )
        if record_hash(prev_hash, row) != row["hash"]:
            return bad(position, f"record {position}: content does not match its hash")
        digest = row["request_sha256"]
        if digest is not None and digest not in good_bodies:
            return bad(position, f"record {position}: request body missing or altered")
        prev_hash = row["hash"]
        if position in due:
            heads[position] = prev_hash
    if position != n_rows:  # pragma: no cover - rows appended between count and read
        n_rows = position

    for number, (check_id, count, head_hash, signature) in enumerate(checkpoints, start=1):
        if check_id != number or count != number * checkpoint_every:
            return bad(
                min(count, n_rows + 1),
                f"checkpoint {number} is missing or out of sequence (count {count})",
            )
        if not hmac.compare_digest(_sign(key, count, head_hash), signature):
            return bad(min(count, n_rows + 1), f"checkpoint {number}: bad signature")
        if count > n_rows:
            return bad(
                n_rows + 1,
                f"tail cut off: checkpoint {number} covers {count} records, the log holds {n_rows}",
            )
        if heads.get(count) != head_hash:
            return bad(count, f"checkpoint {number}: head hash differs from record {count}")
    expected = n_rows // checkpoint_every
    if n_checks < expected:
        return bad(
            (n_checks + 1) * checkpoint_every,
            f"checkpoint {n_checks + 1} (due at record {(n_checks + 1) * checkpoint_every}) "
            "is missing",
        )
    return VerifyResult(True, n_rows, n_checks)


def good_body_digests(bodies: Iterable[Sequence[Any]]) -> set[str]:
    """Keys of the ``(sha256, body)`` rows whose body still hashes to its key."""
    return {str(digest) for digest, body in bodies if body_digest(bytes(body)) == digest}


def verify(
    db: Path | str | AuditStore | SqlAuditStore,
    *,
    key: bytes | None = None,
    checkpoint_every: int | None = None,
) -> VerifyResult:
    """Verify an audit database: chain links, record hashes, bodies, ids and checkpoints.

    Detects an edited byte (of a column or of a request body), a deleted or reordered record,
    a forged checkpoint and a tail cut below the last checkpoint; ``first_bad_id`` is the
    first record that fails.

    Args:
        db: The SQLite database path, or an open store (SQLite or PostgreSQL).
        key: Checkpoint HMAC key (default: from the environment, as the store does).
        checkpoint_every: Checkpoint interval the log was written with (default: config default).
    """
    if not isinstance(db, Path | str):
        return db.verify()
    path = Path(db)
    if not path.is_file():
        raise AuditError(f"audit database {path} does not exist")
    config = AuditConfig()
    if key is None:
        key = (os.environ.get(config.hmac_key_env) or _DEV_KEY).encode()
    every = checkpoint_every or config.checkpoint_every
    # Read-only: verification must not recreate triggers or tables someone removed.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _verify_sqlite(conn, key, every)
    except sqlite3.Error as error:
        raise AuditError(f"cannot read audit database {path}: {error}") from error
    finally:
        conn.close()


def _verify_sqlite(conn: sqlite3.Connection, key: bytes, checkpoint_every: int) -> VerifyResult:
    """Verify a SQLite log on one read transaction (a consistent snapshot)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    columns = ", ".join(name if name in present else f"NULL AS {name}" for name in _STORED)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    in_transaction = conn.in_transaction
    if not in_transaction:
        conn.execute("BEGIN")
    try:
        bodies = (
            good_body_digests(conn.execute("SELECT sha256, body FROM request_bodies"))
            if "request_bodies" in tables
            else set()
        )
        n_rows = int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
        checkpoints = conn.execute(
            "SELECT id, record_count, head_hash, signature FROM checkpoints ORDER BY id"
        ).fetchall()
        rows = conn.execute(f"SELECT {columns} FROM decisions ORDER BY id")
        return _verify_rows(rows, n_rows, checkpoints, key, checkpoint_every, bodies)
    finally:
        if not in_transaction:
            conn.execute("COMMIT")


def export_checkpoints(store: AuditStore, path: Path) -> None:
    """Write the checkpoints as JSON lines, to keep outside the database (tail-cut anchor)."""
    lines = [canonical_json(row) for row in store.checkpoints()]
    path.write_text("".join(line + "\n" for line in lines))


class Rescorer(Protocol):
    """What replay needs of a model: re-score a stored request."""

    def rescore(self, request: dict[str, Any]) -> dict[str, Any]:
        """Return ``features`` (name -> value or None), ``pd``, ``grade`` and ``tier``."""
        ...


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of re-scoring one stored decision with its recorded model."""

    id: int
    decision_id: str
    bundle_hash: str
    equal: bool
    recorded_pd: float
    replayed_pd: float
    abs_diff: float
    grade_equal: bool
    tier_equal: bool
    features_equal: bool
    differing_features: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        out = dict(self.__dict__)
        out["differing_features"] = list(self.differing_features)
        return out


def _same(a: float | None, b: float | None, tolerance: float) -> bool:
    """Equal, both missing, or within ``tolerance`` (relative).

    The feature engine may accumulate float sums in a different order from run to run.
    """
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def replay(
    store: AuditStore | SqlAuditStore,
    record_id: int | str,
    bundle_loader: Callable[[str], Rescorer],
    tolerance: float = 1e-12,
) -> ReplayResult:
    """Re-score a stored decision's request with the model of its recorded bundle hash.

    Features are recomputed from the stored request (not read back), so replay checks the
    feature code as well as the model.

    Args:
        store: the audit store.
        record_id: row id or decision id.
        bundle_loader: bundle hash -> a model able to ``rescore`` (e.g. ``serving.engine.Engine``).
        tolerance: largest accepted absolute PD difference (and relative feature difference).
    """
    record = store.show(record_id)
    if record.request is None:
        raise AuditError(
            f"record {record.id}: its stored request body is missing or altered "
            "(riskgrade audit verify names the damage); nothing to replay"
        )
    model = bundle_loader(record.bundle_hash)
    again = model.rescore(record.request)
    stored_features = record.payload.get("features", {})
    differing = tuple(
        sorted(
            name
            for name in set(stored_features) | set(again["features"])
            if not _same(stored_features.get(name), again["features"].get(name), tolerance)
        )
    )
    diff = abs(float(again["pd"]) - record.pd)
    grade_equal = again["grade"] == record.grade
    tier_equal = again["tier"] == record.tier
    return ReplayResult(
        id=record.id,
        decision_id=record.decision_id,
        bundle_hash=record.bundle_hash,
        equal=diff <= tolerance and grade_equal and tier_equal and not differing,
        recorded_pd=record.pd,
        replayed_pd=float(again["pd"]),
        abs_diff=diff,
        grade_equal=grade_equal,
        tier_equal=tier_equal,
        features_equal=not differing,
        differing_features=differing,
    )
