"""The audit log on a SQLAlchemy URL: PostgreSQL for scale, same records and chain as SQLite.

``SqlAuditStore`` has the public methods and semantics of ``serving.audit.AuditStore`` (append,
show, export, iter_all, search, facets, check_record, checkpoints, count, verify, is_writable,
close) and writes byte-identical records: the same columns, canonical JSON and hash chain, so
the shared ``_verify_rows`` checks both and a log can move between backends.

PostgreSQL specifics:

- Append-only: a PL/pgSQL trigger raises on every UPDATE or DELETE (row level) and on TRUNCATE
  (statement level) of ``decisions`` and ``checkpoints``.
- Appends are serialised across processes and hosts: each append transaction takes
  ``LOCK TABLE decisions IN EXCLUSIVE MODE`` (readers are not blocked) before reading the chain
  head, so the head is read and the next record written atomically. Ids are assigned from the
  head (never from a sequence, whose rolled-back values would leave gaps verify reports).
- ``synchronous_commit`` is forced on for every connection: the commit returns only once the
  record is flushed to the write-ahead log. ``busy_timeout_ms`` becomes ``lock_timeout``.
- The payload is stored as TEXT (not JSONB, which would reorder keys and break the hash);
  ``created_at`` is TEXT with the "C" collation so time ranges compare like SQLite's.

The triggers stop the service and any ordinary client, not the table owner (who can drop
them): in production let the service connect as a role granted only SELECT and INSERT on
both tables, and keep ``export_checkpoints`` copies elsewhere, as for SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from serving.audit import (
    _DEV_KEY,
    _REQUEST_COLUMNS,
    _STORED,
    GENESIS_HASH,
    MAX_RECORD_ID,
    AuditConfig,
    AuditError,
    AuditPage,
    AuditQuery,
    AuditRecordNotFoundError,
    AuditUnavailableError,
    DecisionRecord,
    RecordCheck,
    StoredDecision,
    VerifyResult,
    _query_clauses,
    _sign,
    _to_stored,
    _verify_rows,
    body_digest,
    chained_row,
    check_row,
    export_query,
    good_body_digests,
    payload_json,
    stored_request,
)

_NAMES: tuple[str, ...] = _STORED
RATED_ON_PG = 'riskgrade_rated_on(payload) COLLATE "C"'
"""A record's rating date (``as_of`` in the payload; NULL if unreadable), as indexed."""
_SCHEMA_LOCK_ID = 0x5269736B  # pg_advisory_xact_lock key serialising concurrent schema setup

_PG_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS decisions (
        id BIGINT PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        created_at TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        caller TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        bundle_hash TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        pd DOUBLE PRECISION NOT NULL,
        grade TEXT NOT NULL,
        tier TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        request_sha256 TEXT,
        request_pointer TEXT
    )
    """,
    *(f"ALTER TABLE decisions ADD COLUMN IF NOT EXISTS {c} TEXT" for c in _REQUEST_COLUMNS),
    """
    CREATE TABLE IF NOT EXISTS request_bodies (
        sha256 TEXT PRIMARY KEY,
        body BYTEA NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS decisions_created_at ON decisions (created_at)",
    "CREATE INDEX IF NOT EXISTS decisions_customer_id ON decisions (customer_id)",
    "CREATE INDEX IF NOT EXISTS decisions_tier ON decisions (tier)",
    "CREATE INDEX IF NOT EXISTS decisions_model_version ON decisions (model_version)",
    """
    CREATE OR REPLACE FUNCTION riskgrade_rated_on(payload text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    BEGIN
        RETURN payload::json #>> '{response,as_of}';
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    $$
    """,
    f"CREATE INDEX IF NOT EXISTS decisions_rated_on ON decisions (({RATED_ON_PG}))",
    """
    CREATE TABLE IF NOT EXISTS checkpoints (
        id BIGINT PRIMARY KEY,
        record_count BIGINT NOT NULL,
        head_hash TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        signature TEXT NOT NULL
    )
    """,
    """
    CREATE OR REPLACE FUNCTION riskgrade_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit log is append-only: % rejected on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
    """,
    *(
        statement
        for table in ("decisions", "checkpoints", "request_bodies")
        for statement in (
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION riskgrade_audit_append_only()",
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION riskgrade_audit_append_only()",
        )
    ),
)
"""Idempotent DDL (PostgreSQL 14+ for CREATE OR REPLACE TRIGGER)."""


class AuditUrlError(AuditError, ValueError):
    """The audit URL is malformed or names a database this store does not support."""


SUPPORTED_BACKENDS = ("sqlite", "postgresql")
"""Dialects with append-only triggers (SQLite: ``serving.audit``; PostgreSQL: here)."""


def parse_audit_url(text: str) -> URL:
    """Parse and check an audit database URL; a bare ``postgresql://`` gets psycopg 3.

    Raises:
        AuditUrlError: if the URL is malformed, in-memory, or of an unsupported dialect
            (the message names the dialect and the supported ones).
    """
    try:
        url = make_url(text)
    except ArgumentError as error:
        raise AuditUrlError(f"audit url is not a valid SQLAlchemy URL: {error}") from error
    backend = url.get_backend_name()
    shown = url.render_as_string(hide_password=True)
    if backend not in SUPPORTED_BACKENDS:
        raise AuditUrlError(
            f"audit url {shown}: dialect {backend!r} is not supported; the append-only "
            f"triggers exist for {' and '.join(SUPPORTED_BACKENDS)} "
            "(sqlite:///PATH or postgresql://USER@HOST/DB)"
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise AuditUrlError(
            f"audit url {shown}: an in-memory SQLite log loses every decision; name a file "
            "(sqlite:///data/audit.db)"
        )
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _named(clauses: Sequence[str], params: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """Rewrite ``?`` placeholders (shared SQLite clauses) as SQLAlchemy named binds."""
    counter = iter(range(len(params)))
    text = " AND ".join(re.sub(r"\?", lambda _: f":p{next(counter)}", c) for c in clauses)
    return (f"WHERE {text}" if text else ""), {f"p{i}": value for i, value in enumerate(params)}


class SqlAuditStore:
    """The audit store on a SQLAlchemy engine (PostgreSQL): append, read, export, verify.

    Thread-safe: every call checks a connection out of the engine's pool; appends from any
    number of threads, processes or hosts are serialised by the database's table lock.
    """

    def __init__(
        self,
        config: AuditConfig,
        *,
        key: bytes | None = None,
        create: bool = True,
    ) -> None:
        """Connect to ``config.url`` and (unless ``create`` is False) create schema and triggers.

        Args:
            config: Audit settings; ``url`` must be a ``postgresql+psycopg://`` URL.
            key: Checkpoint HMAC key (default: from ``config.hmac_key_env``, else the dev key).
            create: Create tables, function and triggers if missing; False opens read-only use
                (verification must not recreate triggers someone removed).

        Raises:
            AuditUrlError: if the URL is missing, malformed or not PostgreSQL.
            AuditError: if the database cannot be reached or initialised.
        """
        import os

        if not config.url:
            raise AuditUrlError("AuditConfig.url is not set: SqlAuditStore needs a database URL")
        url = parse_audit_url(config.url)
        self.url = url.render_as_string(hide_password=True)
        """The URL with its password masked (safe to log)."""
        if url.get_backend_name() != "postgresql":
            raise AuditUrlError(
                f"audit url {self.url}: SqlAuditStore is the PostgreSQL store "
                "(open_audit_store opens sqlite:/// URLs with the SQLite store)"
            )
        self.config = config
        env_key = os.environ.get(config.hmac_key_env)
        self._key = key if key is not None else (env_key or _DEV_KEY).encode()
        self._engine = self._make_engine(url, config.busy_timeout_ms)
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            if create:
                with self._engine.begin() as conn:
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_ID}
                    )
                    for statement in _PG_SCHEMA:
                        conn.execute(sa.text(statement))
        except SQLAlchemyError as error:
            self._engine.dispose()
            raise AuditError(f"cannot open audit store {self.url}: {_short(error)}") from error

    @staticmethod
    def _make_engine(url: URL, busy_timeout_ms: int) -> Engine:
        engine = sa.create_engine(url, pool_pre_ping=True, future=True)

        @sa.event.listens_for(engine, "connect")
        def _session_settings(dbapi_conn: Any, _record: Any) -> None:
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO on")
                cursor.execute(f"SET lock_timeout TO {int(busy_timeout_ms)}")
            dbapi_conn.autocommit = autocommit

        return engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> SqlAuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def uses_dev_key(self) -> bool:
        """True when checkpoints are signed with the built-in development key."""
        return self._key == _DEV_KEY.encode()

    def is_writable(self) -> bool:
        """Whether decisions can be committed now: reachable, primary, INSERT granted."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    sa.text(
                        "SELECT NOT pg_is_in_recovery() "
                        "AND current_setting('transaction_read_only') = 'off' "
                        "AND has_table_privilege('decisions', 'INSERT') "
                        "AND has_table_privilege('checkpoints', 'INSERT')"
                    )
                ).scalar_one()
        except SQLAlchemyError:
            return False
        return bool(row)

    def append(self, record: DecisionRecord) -> StoredDecision:
        """Commit one decision (and a checkpoint when due) durably, before returning.

        Raises:
            AuditUnavailableError: if anything prevents the commit; nothing is written then.
        """
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[DecisionRecord]) -> list[StoredDecision]:
        """Commit decisions in one transaction (one WAL flush), chained in the given order.

        Raises:
            AuditUnavailableError: if the group cannot be committed; none of it is written.
        """
        prepared = [(r, payload_json(r), body_digest(r.request_body)) for r in records]
        insert = sa.text(
            f"INSERT INTO decisions ({', '.join(_NAMES)}) "
            f"VALUES ({', '.join(':' + name for name in _NAMES)})"
        )
        rows: list[dict[str, Any]] = []
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
                head = conn.execute(
                    sa.text("SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1")
                ).first()
                prev_id, prev_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
                for record, payload, digest in prepared:
                    conn.execute(
                        sa.text(
                            "INSERT INTO request_bodies (sha256, body) VALUES (:d, :b) "
                            "ON CONFLICT (sha256) DO NOTHING"
                        ),
                        {"d": digest, "b": record.request_body},
                    )
                    row = chained_row(record, payload, prev_id + 1, prev_hash, digest)
                    conn.execute(insert, row)
                    if row["id"] % self.config.checkpoint_every == 0:
                        conn.execute(
                            sa.text(
                                "INSERT INTO checkpoints (id, record_count, head_hash, "
                                "created_at, signature) SELECT COALESCE(MAX(id), 0) + 1, "
                                ":n, :h, :t, :s FROM checkpoints"
                            ),
                            {
                                "n": row["id"],
                                "h": row["hash"],
                                "t": row["created_at"],
                                "s": _sign(self._key, row["id"], row["hash"]),
                            },
                        )
                    rows.append(row)
                    prev_id, prev_hash = row["id"], row["hash"]
        except (SQLAlchemyError, ValueError) as error:
            raise AuditUnavailableError(f"audit store {self.url}: {_short(error)}") from error
        return [_to_stored(row) for row in rows]

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            with self._engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), params or {})]
        except SQLAlchemyError as error:
            raise AuditError(f"cannot read audit store {self.url}: {_short(error)}") from error

    def _select(self, where: str, params: dict[str, Any]) -> list[StoredDecision]:
        rows = self._rows(f"SELECT {', '.join(_NAMES)} FROM decisions {where} ORDER BY id", params)
        return [_to_stored(dict(zip(_NAMES, row, strict=True))) for row in rows]

    def show(self, record_id: int | str) -> StoredDecision:
        """One record by row id (int) or decision id (str).

        Raises:
            AuditRecordNotFoundError: if there is no such record.
        """
        return self._read(record_id)[0]

    def _read(self, record_id: int | str) -> tuple[StoredDecision, bytes | None]:
        """A record (with its request) and its stored body, read once."""
        column = "id" if isinstance(record_id, int) else "decision_id"
        if isinstance(record_id, int) and not 0 < record_id <= MAX_RECORD_ID:
            raise AuditRecordNotFoundError(f"no audit record with {column} {record_id!r}")
        rows = self._select(f"WHERE {column} = :v", {"v": record_id})
        if not rows:
            raise AuditRecordNotFoundError(f"no audit record with {column} {record_id!r}")
        body = self._body(rows[0].request_sha256)
        return replace(rows[0], request=stored_request(rows[0], body)), body

    def _body(self, digest: str | None) -> bytes | None:
        if digest is None:
            return None
        rows = self._rows("SELECT body FROM request_bodies WHERE sha256 = :d", {"d": digest})
        return bytes(rows[0][0]) if rows else None

    def export(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        customer_id: str | None = None,
        rated_from: date | None = None,
        rated_to: date | None = None,
    ) -> list[StoredDecision]:
        """Records matching every given filter, oldest first (see ``AuditStore.export``).

        Raises:
            ValueError: if a range is inverted.
        """
        query = export_query(start, end, customer_id, rated_from, rated_to)
        return self._select(*_named(*_query_clauses(query, RATED_ON_PG)))

    def iter_all(self) -> Iterator[StoredDecision]:
        """Every record, oldest first."""
        yield from self._select("", {})

    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoint rows (count, head hash, time, signature), oldest first."""
        keys = ("id", "record_count", "head_hash", "created_at", "signature")
        rows = self._rows(f"SELECT {', '.join(keys)} FROM checkpoints ORDER BY id")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def count(self) -> int:
        """Number of records."""
        return int(self._rows("SELECT COUNT(*) FROM decisions")[0][0])

    def verify(self) -> VerifyResult:
        """Check the whole chain and the checkpoints on one consistent snapshot.

        Same checks and messages as ``serving.audit.verify``: edited, missing or reordered
        records, forged or missing checkpoints, a tail cut below the last checkpoint.

        Raises:
            AuditError: if the tables cannot be read.
        """
        try:
            with self._engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ) as conn:
                bodies = good_body_digests(
                    conn.execution_options(yield_per=200).execute(
                        sa.text("SELECT sha256, body FROM request_bodies")
                    )
                )
                n_rows = int(conn.execute(sa.text("SELECT COUNT(*) FROM decisions")).scalar_one())
                checkpoints = [
                    tuple(row)
                    for row in conn.execute(
                        sa.text(
                            "SELECT id, record_count, head_hash, signature FROM checkpoints "
                            "ORDER BY id"
                        )
                    )
                ]
                rows = conn.execution_options(yield_per=500).execute(
                    sa.text(f"SELECT {', '.join(_NAMES)} FROM decisions ORDER BY id")
                )
                return _verify_rows(
                    rows, n_rows, checkpoints, self._key, self.config.checkpoint_every, bodies
                )
        except SQLAlchemyError as error:
            raise AuditError(f"cannot read audit store {self.url}: {_short(error)}") from error

    def search(self, query: AuditQuery | None = None) -> AuditPage:
        """Records matching ``query`` (all filters combined), newest first, one page of them.

        Args:
            query: customer, ``start <= created_at < end`` (UTC), tier, model version, and the
                page (``limit``, ``offset``); None lists the latest records.

        Returns:
            The page of records and the total number of matches.
        """
        query = query or AuditQuery()
        where, params = _named(*_query_clauses(query, RATED_ON_PG))
        total = int(self._rows(f"SELECT COUNT(*) FROM decisions {where}", params)[0][0])
        rows = self._rows(
            f"SELECT {', '.join(_NAMES)} FROM decisions {where} ORDER BY id DESC "
            "LIMIT :limit OFFSET :offset",
            {**params, "limit": query.limit, "offset": query.offset},
        )
        records = tuple(_to_stored(dict(zip(_NAMES, row, strict=True))) for row in rows)
        return AuditPage(records=records, total=total, limit=query.limit, offset=query.offset)

    def facets(self) -> dict[str, list[str]]:
        """Distinct tiers and model versions in the log (for search forms), sorted."""
        tiers = self._rows("SELECT DISTINCT tier FROM decisions")
        versions = self._rows("SELECT DISTINCT model_version FROM decisions")
        return {
            "tiers": sorted(str(row[0]) for row in tiers),
            "model_versions": sorted(str(row[0]) for row in versions),
        }

    def check_record(self, record_id: int | str) -> RecordCheck:
        """Check one record locally: its hash recomputes and it links to the record before it.

        Raises:
            AuditRecordNotFoundError: if there is no such record.
        """
        record, body = self._read(record_id)
        stored = self._rows("SELECT payload FROM decisions WHERE id = :i", {"i": record.id})
        previous = self._rows("SELECT hash FROM decisions WHERE id = :i", {"i": record.id - 1})
        return check_row(record, stored[0][0], previous[0][0] if previous else None, body)


def _short(error: BaseException) -> str:
    """First line of a driver error (SQLAlchemy appends the statement and a help link)."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
