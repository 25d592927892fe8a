"""Tables of the audit store (SQLAlchemy Core) and what differs between SQLite and PostgreSQL.

The tables are declared once. Per dialect, only: connection settings (SQLite: WAL,
``synchronous=FULL``, busy timeout, our own ``BEGIN``/``BEGIN IMMEDIATE``; PostgreSQL:
``synchronous_commit=on``, ``lock_timeout``), the append-only triggers, the rating-date
expression and its index, and how an append takes the chain's write lock.

The payload is TEXT everywhere (never JSONB, which would reorder keys and break the hash);
``created_at`` compares as text ("C" collation on PostgreSQL), as SQLite does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql.compiler import SQLCompiler

from audit.records import AuditError, AuditUrlError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
"""Dialects with append-only triggers."""
APPEND_ONLY_TABLES = ("decisions", "request_bodies", "checkpoints", "events")
"""Tables that take no UPDATE or DELETE (``idempotency_keys`` is not part of the chain)."""
SCHEMA_LOCK_ID = 0x5269736B
"""PostgreSQL advisory lock key serialising concurrent schema setup."""

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=False),
    sa.Column("decision_id", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("caller", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("bundle_hash", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Text, nullable=False),
    sa.Column("pd", sa.Double, nullable=False),
    sa.Column("grade", sa.Text, nullable=False),
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
    sa.Column("request_sha256", sa.Text),
    sa.Column("request_pointer", sa.Text),
    sa.Index("decisions_created_at", "created_at"),
    sa.Index("decisions_customer_id", "customer_id"),
    sa.Index("decisions_tier", "tier"),
    sa.Index("decisions_model_version", "model_version"),
)
request_bodies = sa.Table(
    "request_bodies",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=False),
    sa.Column("record_count", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
)
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("occurred_at", _TIME, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
    sa.Index("events_kind", "kind"),
    sa.Index("events_actor", "actor"),
    sa.Index("events_subject", "subject"),
    sa.Index("events_occurred_at", "occurred_at"),
)
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("caller", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_digest", sa.Text, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("response", sa.Text),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("reserved_at", _TIME, nullable=False),
)

RATED_ON_SQLITE = "CASE WHEN json_valid(payload) THEN json_extract(payload, '$.response.as_of') END"
"""SQLite expression of a decision's rating date (its ``as_of``, ``YYYY-MM-DD``), read from the
hashed payload (no extra column, so existing chains are unchanged); NULL without one."""
RATED_ON_PG = 'riskgrade_rated_on(payload) COLLATE "C"'
"""The same on PostgreSQL (a function that reads NULL from a payload that is not JSON)."""

_SQLITE_DDL = (
    f"CREATE INDEX IF NOT EXISTS decisions_rated_on ON decisions ({RATED_ON_SQLITE})",
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only: {op} rejected'); END"
        for table in APPEND_ONLY_TABLES
        for op in ("UPDATE", "DELETE")
    ),
)
_PG_DDL = (
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
        for table in APPEND_ONLY_TABLES
        for statement in (
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION riskgrade_audit_append_only()",
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION riskgrade_audit_append_only()",
        )
    ),
)


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


def sqlite_url(path: str, read_only: bool) -> URL:
    """URL of a SQLite file; read-only opens it with ``mode=ro`` (nothing can be created)."""
    if not read_only:
        return URL.create("sqlite+pysqlite", database=path)
    return URL.create(
        "sqlite+pysqlite", database=f"file:{path}", query={"mode": "ro", "uri": "true"}
    )


def make_engine(url: URL, busy_timeout_ms: int, read_only: bool) -> Engine:
    """An engine with the store's connection settings for its dialect.

    SQLite: our own ``BEGIN`` (so a read is one snapshot), ``BEGIN IMMEDIATE`` for a connection
    with the ``append`` execution option (it takes the write lock before the head is read),
    busy timeout, WAL and ``synchronous=FULL``. PostgreSQL: ``synchronous_commit=on`` and
    ``lock_timeout``.
    """
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_settings(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            dbapi_conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if read_only:
                return
            mode = dbapi_conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise AuditError(f"cannot switch the audit log to WAL (got {mode})")
            dbapi_conn.execute("PRAGMA synchronous=FULL")

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            append = conn.get_execution_options().get("append", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if append else "BEGIN")

        return engine
    engine = sa.create_engine(url, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def _pg_settings(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO on")
            cursor.execute(f"SET lock_timeout TO {int(busy_timeout_ms)}")
        dbapi_conn.autocommit = autocommit

    return engine


def create_schema(conn: Connection) -> None:
    """Create what is missing (tables, columns of older formats, indexes, triggers).

    Idempotent, and changes no stored row: a log of an older format gains the request columns
    (NULL in its old rows, hashed as they were written) and the ``events`` table.
    """
    is_pg = conn.dialect.name == "postgresql"
    if is_pg:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_ID})
    metadata.create_all(conn, checkfirst=True)
    present = {column["name"] for column in sa.inspect(conn).get_columns("decisions")}
    for column in ("request_sha256", "request_pointer"):
        if column not in present:
            conn.exec_driver_sql(f"ALTER TABLE decisions ADD COLUMN {column} TEXT")
    for table in metadata.tables.values():
        for index in table.indexes:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    for statement in _PG_DDL if is_pg else _SQLITE_DDL:
        conn.execute(sa.text(statement))


def rated_on(dialect: str) -> sa.ColumnElement[Any]:
    """SQL expression of a decision's rating date in ``dialect`` (as indexed)."""
    return sa.literal_column(RATED_ON_PG if dialect == "postgresql" else RATED_ON_SQLITE)


def insert_ignoring_duplicates(table: sa.Table, dialect: str) -> Any:
    """``INSERT`` that skips rows whose primary key exists (a body stored once)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()


CHAIN_LOCK = {
    "sqlite": "BEGIN IMMEDIATE",
    "postgresql": "LOCK TABLE decisions IN EXCLUSIVE MODE",
}
"""First statement of an append transaction: the chain's write lock, taken before the head is
read. SQLite: the database write lock. PostgreSQL: a table lock that serialises appends across
processes and hosts (readers are not blocked); ids come from the head, never from a sequence
whose rolled-back values would leave gaps."""


def last_record(table: sa.Table) -> sa.Select[Any]:
    """Id and hash of the last record of ``table`` (the chain head is the later of two)."""
    return sa.select(table.c.id, table.c.hash).order_by(table.c.id.desc()).limit(1)


@dataclass(frozen=True)
class Compiled:
    """A Core statement rendered once for a dialect, to run on a DBAPI cursor.

    The append path runs these directly: per-call statement construction, cache-key and
    execution-context work of SQLAlchemy cost more CPU than the append itself.
    """

    sql: str
    order: tuple[str, ...] | None
    """Parameter names in placeholder order (positional paramstyles), None for named ones."""
    defaults: dict[str, Any]

    @classmethod
    def of(cls, statement: sa.Executable, dialect: sa.Dialect) -> Compiled:
        """Render ``statement`` for ``dialect``."""
        # Core statements are ClauseElements, and SQL dialects compile them with a SQLCompiler.
        clause = cast(sa.ClauseElement, statement)
        compiled = cast(SQLCompiler, clause.compile(dialect=dialect))
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, order, dict(compiled.params))

    def params(self, values: dict[str, Any] | None = None) -> Any:
        """DBAPI parameters of one execution (``values`` by bind name, defaults for the rest)."""
        if self.order is None:
            return {**self.defaults, **values} if values else self.defaults
        if values is not None and len(values) >= len(self.order):
            try:  # a row holding every bind (the inserts): no merge
                return tuple([values[name] for name in self.order])
            except KeyError:
                pass
        merged = {**self.defaults, **(values or {})}
        return tuple([merged[name] for name in self.order])
