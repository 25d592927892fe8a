"""The audit store: one protocol, one implementation on SQLAlchemy Core (SQLite, PostgreSQL).

Every append reads the chain head and writes the next records under the chain's write lock
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a table lock), so any number of threads, processes
and hosts build one unbroken chain; the commit is durable before the call returns (SQLite WAL
with ``synchronous=FULL``; PostgreSQL ``synchronous_commit=on``). Every ``checkpoint_every``
records a checkpoint row stores (record count, head hash, HMAC-SHA256 of both under a secret
key), so a log whose tail was cut off (rows and triggers removed by someone with file or owner
access) no longer matches its last checkpoint; ship copies elsewhere (``export_checkpoints``)
to catch a cut shorter than the interval. Triggers reject UPDATE and DELETE on the chain's
tables; they stop the service and any ordinary client, not the database owner: in production
let the service connect as a role granted only SELECT and INSERT on them.

Idempotency keys (``reserve`` / ``append_many(..., idempotent=...)`` / ``release``): a caller's
key is reserved once; the first request with it does the work and its answer is stored in the
transaction that commits the records it produced. A retry with the same key and the same request
digest gets the stored answer (``replay``), or ``in_progress`` while the first is running; the
same key with another digest is a ``conflict``. A reservation left without answer longer than
its lease (a crashed worker) is taken over by the next retry. Keys are not part of the chain.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, cast, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from audit import schema
from audit.chain import check_row, good_body_digests, merged, verify_rows
from audit.records import (
    DECISION_STORED,
    DEV_KEY,
    EVENT_STORED,
    GENESIS_HASH,
    MAX_RECORD_ID,
    AuditConfig,
    AuditDuplicateDecisionError,
    AuditDuplicateEventError,
    AuditError,
    AuditPage,
    AuditQuery,
    AuditRecordNotFoundError,
    AuditUnavailableError,
    DecisionRecord,
    EventPage,
    EventQuery,
    EventRecord,
    RecordCheck,
    StoredDecision,
    StoredEvent,
    VerifyResult,
    body_digest,
    canonical_json,
    decision_row,
    event_row,
    now_iso,
    payload_json,
    sign,
    stored_request,
    utc_iso,
)
from audit.schema import checkpoints, decisions, events, idempotency_keys, request_bodies


@dataclass(frozen=True)
class IdempotentResponse:
    """The answer to store for a reserved idempotency key (with the records it produced)."""

    caller: str
    key: str
    status_code: int
    response: Any
    """JSON-ready body of the answer."""


@dataclass(frozen=True)
class Reservation:
    """Outcome of ``reserve``: do the work (``new``), answer from the store, or refuse."""

    state: Literal["new", "replay", "conflict", "in_progress"]
    status_code: int | None = None
    response: Any = None
    """The stored answer (``replay`` only)."""


Answers = IdempotentResponse | Sequence[IdempotentResponse] | None
"""The answer(s) of reserved idempotency keys committed with an append (one per call)."""


@runtime_checkable
class AuditStore(Protocol):
    """What the service, the CLI and the management package need of an audit store."""

    config: AuditConfig

    @property
    def uses_dev_key(self) -> bool:
        """True when checkpoints are signed with the built-in development key."""
        ...

    def is_writable(self) -> bool:
        """Whether records can be committed now (readiness probe)."""
        ...

    def append(self, record: DecisionRecord) -> StoredDecision:
        """Commit one decision durably before returning (``AuditUnavailableError`` if not)."""
        ...

    def append_many(
        self, records: Sequence[DecisionRecord], *, idempotent: Answers = None
    ) -> list[StoredDecision]:
        """Commit decisions (and the answer of an idempotency key) in one transaction."""
        ...

    def existing_decision_ids(self, decision_ids: Sequence[str]) -> set[str]:
        """Which of ``decision_ids`` the log holds."""
        ...

    def append_event(self, event: EventRecord) -> StoredEvent:
        """Commit one person's action durably before returning."""
        ...

    def append_events(
        self, items: Sequence[EventRecord], *, idempotent: Answers = None
    ) -> list[StoredEvent]:
        """Commit people's actions (and the answer of an idempotency key) in one transaction."""
        ...

    def show(self, record_id: int | str) -> StoredDecision:
        """One decision by record id or decision id, with the request it scored."""
        ...

    def event(self, event_id: int | str) -> StoredEvent:
        """One event by record id or event id."""
        ...

    def export(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        customer_id: str | None = None,
        rated_from: date | None = None,
        rated_to: date | None = None,
    ) -> list[StoredDecision]:
        """Decisions matching every given filter, oldest first."""
        ...

    def iter_all(self) -> Iterator[StoredDecision]:
        """Every decision, oldest first."""
        ...

    def search(self, query: AuditQuery | None = None) -> AuditPage:
        """One page of matching decisions, newest first."""
        ...

    def search_events(self, query: EventQuery | None = None) -> EventPage:
        """One page of matching events, newest first."""
        ...

    def facets(self) -> dict[str, list[str]]:
        """Distinct tiers and model versions of the decisions."""
        ...

    def check_record(self, record_id: int | str) -> RecordCheck:
        """Local check of one record: its hash, its body and its link."""
        ...

    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoint rows, oldest first."""
        ...

    def count(self) -> int:
        """Number of decisions."""
        ...

    def verify(self) -> VerifyResult:
        """Check the whole chain, the request bodies and the checkpoints."""
        ...

    def reserve(
        self, caller: str, key: str, request_digest: str, *, lease_seconds: float = 60.0
    ) -> Reservation:
        """Reserve an idempotency key, or say why the request must not run again."""
        ...

    def complete(self, idempotent: IdempotentResponse) -> None:
        """Store the answer of a reserved key that produced no record."""
        ...

    def release(self, caller: str, key: str) -> None:
        """Drop an unanswered reservation (the work failed: a retry may run it)."""
        ...

    def close(self) -> None:
        """Release the database connections."""
        ...


class SqlAuditStore:
    """The audit store on SQLAlchemy Core: a SQLite file (default) or PostgreSQL.

    Thread-safe: reads check a connection out of the engine's pool; appends of one process
    queue on a lock (the database serialises them across processes anyway).
    """

    def __init__(
        self, config: AuditConfig | None = None, *, key: bytes | None = None, create: bool = True
    ) -> None:
        """Open the store ``config`` names: its ``url`` when set, else the SQLite file ``path``.

        Args:
            config: Audit settings.
            key: Checkpoint HMAC key (default: from ``config.hmac_key_env``, else the dev key).
            create: Create tables, columns of older formats, indexes and triggers if missing.
                False opens for reading only (verification must not recreate triggers someone
                removed; a SQLite file is opened read-only).

        Raises:
            AuditUrlError: if the URL is malformed or of an unsupported dialect.
            AuditError: if the database cannot be reached, read or initialised.
        """
        self.config = config = config or AuditConfig()
        url = schema.parse_audit_url(config.url) if config.url else None
        self.dialect = url.get_backend_name() if url else "sqlite"
        self.path: Path | None = None
        """The SQLite file (None on PostgreSQL)."""
        if self.dialect == "sqlite":
            self.path = Path(url.database) if url and url.database else config.path
            if create:
                self._mkdir(self.path)
            elif not self.path.is_file():
                raise AuditError(f"audit database {self.path} does not exist")
            url = schema.sqlite_url(str(self.path), read_only=not create)
        assert url is not None
        self.url = str(self.path) if self.path else url.render_as_string(hide_password=True)
        """Where the log is: the SQLite path, or the URL with its password masked."""
        env_key = os.environ.get(config.hmac_key_env)
        self._key = key if key is not None else (env_key or DEV_KEY).encode()
        self._write_lock = threading.Lock()
        self._engine = schema.make_engine(url, config.busy_timeout_ms, read_only=not create)
        try:
            if create:
                with self._engine.begin() as conn:
                    schema.create_schema(conn)
            inspector = sa.inspect(self._engine)
            tables = set(inspector.get_table_names())
            present = {c["name"] for c in inspector.get_columns("decisions")}
        except (SQLAlchemyError, AuditError) as error:
            self._engine.dispose()
            raise AuditError(f"cannot open audit store {self.url}: {_short(error)}") from error
        self._tables = tables
        self._decision_columns = [
            decisions.c[name] if name in present else sa.null().label(name)
            for name in DECISION_STORED
        ]
        self._key_insert = schema.insert_ignoring_duplicates(idempotency_keys, self.dialect)
        self._dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        self._dbapi_conn: Any = None
        self._sql = _compile(self._engine.dialect)

    @staticmethod
    def _mkdir(path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise AuditError(f"cannot open audit store {path}: {error}") from error

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for tests and maintenance tools)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        with self._write_lock:
            if self._dbapi_conn is not None:
                self._dbapi_conn.close()
                self._dbapi_conn = None
        self._engine.dispose()

    def __enter__(self) -> SqlAuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def uses_dev_key(self) -> bool:
        """True when checkpoints are signed with the built-in development key."""
        return self._key == DEV_KEY.encode()

    def is_writable(self) -> bool:
        """Whether records can be committed now.

        SQLite: the file is writable and the write lock can be taken; PostgreSQL: reachable,
        primary, INSERT granted on the chain's tables.
        """
        try:
            if self.path is not None:
                if not os.access(self.path, os.W_OK):
                    return False
                with self._engine.connect().execution_options(append=True) as conn:
                    conn.begin().rollback()
                return True
            with self._engine.connect() as conn:
                return bool(
                    conn.exec_driver_sql(
                        "SELECT NOT pg_is_in_recovery() "
                        "AND current_setting('transaction_read_only') = 'off' "
                        "AND has_table_privilege('decisions', 'INSERT') "
                        "AND has_table_privilege('events', 'INSERT') "
                        "AND has_table_privilege('checkpoints', 'INSERT')"
                    ).scalar_one()
                )
        except SQLAlchemyError:
            return False

    # --- appends -------------------------------------------------------------------------------

    def append(self, record: DecisionRecord) -> StoredDecision:
        """Commit one decision (and a checkpoint when due) durably, before returning.

        Raises:
            AuditUnavailableError: if anything prevents the commit; nothing is written then.
        """
        return self.append_many([record])[0]

    def append_many(
        self, records: Sequence[DecisionRecord], *, idempotent: Answers = None
    ) -> list[StoredDecision]:
        """Commit decisions in one transaction (one fsync), chained in the given order.

        All or nothing: if anything prevents the commit, no record of the group is written.

        Args:
            records: The decisions, in chain order.
            idempotent: The answer of the reserved idempotency key these decisions belong to
                (or one per call when several calls commit together), stored in the same
                transaction.

        Raises:
            AuditDuplicateDecisionError: if a decision id of the group is already in the log;
                none of the group is written.
            AuditUnavailableError: if the group cannot be committed (or the key is not
                reserved any more).
        """
        bodies = [{"sha256": body_digest(r.request_body), "body": r.request_body} for r in records]
        builders = [
            _builder(decision_row, record, payload_json(record.payload), body["sha256"])
            for record, body in zip(records, bodies, strict=True)
        ]
        try:
            rows = self._append(decisions, builders, bodies, idempotent)
        except AuditUnavailableError:
            try:
                taken = self.existing_decision_ids([r.decision_id for r in records])
            except AuditError:
                taken = set()
            if taken:
                ordered = [r.decision_id for r in records if r.decision_id in taken]
                raise AuditDuplicateDecisionError(ordered) from None
            raise
        return [_to_decision(row) for row in rows]

    def existing_decision_ids(self, decision_ids: Sequence[str]) -> set[str]:
        """Which of ``decision_ids`` the log holds (indexed lookups, a few hundred at a time).

        Raises:
            AuditError: if the store cannot be read.
        """
        found: set[str] = set()
        wanted = list(dict.fromkeys(decision_ids))
        column = decisions.c.decision_id
        for start in range(0, len(wanted), _ID_LOOKUP):
            part = wanted[start : start + _ID_LOOKUP]
            found.update(
                str(row[0]) for row in self._rows(sa.select(column).where(column.in_(part)))
            )
        return found

    def append_event(self, event: EventRecord) -> StoredEvent:
        """Commit one person's action (and a checkpoint when due) durably, before returning.

        Raises:
            AuditUnavailableError: if anything prevents the commit; nothing is written then.
        """
        return self.append_events([event])[0]

    def append_events(
        self, items: Sequence[EventRecord], *, idempotent: Answers = None
    ) -> list[StoredEvent]:
        """Commit people's actions in one transaction, chained in the given order.

        Raises:
            AuditDuplicateEventError: if an event id of the group is already in the log (the
                loser of a race for a deterministic id); none of the group is written.
            AuditUnavailableError: if the group cannot be committed; none of it is written.
        """
        builders = [_builder(event_row, item, payload_json(item.payload)) for item in items]
        try:
            rows = self._append(events, builders, [], idempotent)
        except AuditUnavailableError:
            taken = self._existing_event_ids([item.event_id for item in items])
            if taken:
                raise AuditDuplicateEventError(taken) from None
            raise
        return [_to_event(row) for row in rows]

    def _existing_event_ids(self, event_ids: Sequence[str]) -> list[str]:
        """Which of ``event_ids`` the log holds (after a failed append: was it their clash?)."""
        if "events" not in self._tables:
            return []
        try:
            rows = self._rows(sa.select(events.c.event_id).where(events.c.event_id.in_(event_ids)))
        except AuditError:
            return []
        found = {str(row[0]) for row in rows}
        return [event_id for event_id in event_ids if event_id in found]

    def _append(
        self,
        table: sa.Table,
        builders: Sequence[Callable[[int, str], dict[str, Any]]],
        bodies: list[dict[str, Any]],
        idempotent: Answers,
    ) -> list[dict[str, Any]]:
        """Write rows after the chain head, with the checkpoints due, in one transaction.

        Runs the statements compiled at open on one held DBAPI connection (the hot path). A
        connection the database dropped (a restart) is replaced and the group tried once more;
        a group that did commit before the drop fails that retry on its unique ids.
        """
        with self._write_lock:
            for attempt in (1, 2):
                try:
                    return self._append_once(table, builders, bodies, idempotent)
                except BaseException as error:
                    dropped = self._abandon(error)
                    if dropped and attempt == 1:
                        continue
                    if isinstance(error, self._dbapi_error | ValueError | AuditError):
                        raise AuditUnavailableError(
                            f"audit store {self.url}: {_short(error)}"
                        ) from error
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_once(
        self,
        table: sa.Table,
        builders: Sequence[Callable[[int, str], dict[str, Any]]],
        bodies: list[dict[str, Any]],
        idempotent: Answers,
    ) -> list[dict[str, Any]]:
        sql = self._sql
        raw = self._writer()
        rows: list[dict[str, Any]] = []
        cursor = raw.cursor()
        try:
            cursor.execute(schema.CHAIN_LOCK[self.dialect])
            prev_id, prev_hash = 0, GENESIS_HASH
            for last in (sql["last_decision"], sql["last_event"]):
                cursor.execute(last.sql, last.params())
                head = cursor.fetchone()
                if head is not None and int(head[0]) > prev_id:
                    prev_id, prev_hash = int(head[0]), str(head[1])
            if bodies:
                cursor.executemany(sql["body"].sql, [sql["body"].params(b) for b in bodies])
            due: list[dict[str, Any]] = []
            for build in builders:
                row = build(prev_id + 1, prev_hash)
                rows.append(row)
                prev_id, prev_hash = row["id"], row["hash"]
                if prev_id % self.config.checkpoint_every == 0:
                    due.append(row)
            insert = sql[table.name]
            if rows:
                cursor.executemany(insert.sql, [insert.params(row) for row in rows])
            if due:
                self._checkpoint(cursor, due)
            if isinstance(idempotent, IdempotentResponse):
                idempotent = [idempotent]
            for answer in idempotent or ():
                self._answer(cursor, answer)
            raw.commit()
        finally:
            cursor.close()
        return rows

    def _writer(self) -> Any:
        """The DBAPI connection appends run on (checked out of the pool once, kept)."""
        if self._dbapi_conn is None:
            self._dbapi_conn = self._engine.raw_connection()
        return self._dbapi_conn

    def _abandon(self, error: BaseException) -> bool:
        """Roll back a failed append; True when its connection was lost (and is dropped)."""
        raw = self._dbapi_conn
        if raw is None:
            return False
        lost = isinstance(error, self._dbapi_error) and self._engine.dialect.is_disconnect(
            cast(Any, error),  # the loaded driver's DBAPI Error (the isinstance above)
            raw.dbapi_connection,
            None,
        )
        if not lost:
            try:
                raw.rollback()
            except self._dbapi_error:
                lost = True
        if lost:
            raw.invalidate()
            self._dbapi_conn = None
        return lost

    def _checkpoint(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        last, insert = self._sql["last_checkpoint"], self._sql["checkpoint"]
        cursor.execute(last.sql, last.params())
        first_id = int(cursor.fetchone()[0]) + 1
        marks = [
            {
                "id": first_id + n,
                "record_count": row["id"],
                "head_hash": row["hash"],
                "created_at": row["created_at"],
                "signature": sign(self._key, row["id"], row["hash"]),
            }
            for n, row in enumerate(rows)
        ]
        cursor.executemany(insert.sql, [insert.params(mark) for mark in marks])

    # --- idempotency keys ----------------------------------------------------------------------

    def reserve(
        self, caller: str, key: str, request_digest: str, *, lease_seconds: float = 60.0
    ) -> Reservation:
        """Reserve ``key`` of ``caller`` for a request, unless it was seen before.

        Exactly one of concurrent identical requests gets ``new`` (and must do the work, then
        store its answer with ``append_many``/``append_events``/``complete``, or ``release``
        the key if it fails). The others get ``in_progress`` until the answer is stored, then
        ``replay`` with it; a request with another digest under the same key gets
        ``conflict``. A reservation unanswered for ``lease_seconds`` is taken over.

        Raises:
            AuditUnavailableError: if the store cannot be written.
        """
        now = now_iso()
        where = (idempotency_keys.c.caller == caller) & (idempotency_keys.c.key == key)
        try:
            with self._engine.connect().execution_options(append=True) as conn, conn.begin():
                values = {"caller": caller, "key": key, "request_digest": request_digest}
                inserted = conn.execute(
                    self._key_insert.values(**values, created_at=now, reserved_at=now).returning(
                        idempotency_keys.c.key
                    )
                ).first()
                if inserted is not None:
                    return Reservation("new")
                row = conn.execute(sa.select(idempotency_keys).where(where)).one()
                if row.request_digest != request_digest:
                    return Reservation("conflict")
                if row.response is not None:
                    return Reservation("replay", row.status_code, json.loads(row.response))
                expired = datetime.fromisoformat(row.reserved_at) + timedelta(
                    seconds=lease_seconds
                ) < datetime.now(UTC)
                taken = expired and (
                    conn.execute(
                        sa.update(idempotency_keys)
                        .where(where, idempotency_keys.c.reserved_at == row.reserved_at)
                        .where(idempotency_keys.c.response.is_(None))
                        .values(reserved_at=now)
                    ).rowcount
                    == 1
                )
                return Reservation("new" if taken else "in_progress")
        except SQLAlchemyError as error:
            raise AuditUnavailableError(f"audit store {self.url}: {_short(error)}") from error

    def complete(self, idempotent: IdempotentResponse) -> None:
        """Store the answer of a reserved key whose request wrote no record.

        Raises:
            AuditUnavailableError: if the key is not reserved (released, taken over, answered).
        """
        self._append(decisions, [], [], idempotent)

    def _answer(self, cursor: Any, idempotent: IdempotentResponse) -> None:
        answer = self._sql["answer"]
        values = {
            "w_caller": idempotent.caller,
            "w_key": idempotent.key,
            "v_status": idempotent.status_code,
            "v_response": canonical_json(idempotent.response),
        }
        cursor.execute(answer.sql, answer.params(values))
        if cursor.rowcount != 1:
            raise AuditUnavailableError(
                f"idempotency key {idempotent.key!r} of {idempotent.caller!r} is not reserved "
                "(released, taken over after its lease, or already answered)"
            )

    def release(self, caller: str, key: str) -> None:
        """Drop the unanswered reservation of ``key`` (its work failed; a retry may run it)."""
        table = idempotency_keys
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(table).where(
                    table.c.caller == caller, table.c.key == key, table.c.response.is_(None)
                )
            )

    # --- reads ---------------------------------------------------------------------------------

    def _rows(self, statement: sa.Executable) -> list[sa.Row[Any]]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(statement))
        except SQLAlchemyError as error:
            raise AuditError(f"cannot read audit store {self.url}: {_short(error)}") from error

    def _decisions(self, *where: Any, newest_first: bool = False) -> sa.Select[Any]:
        order = decisions.c.id.desc() if newest_first else decisions.c.id
        return sa.select(*self._decision_columns).where(*where).order_by(order)

    def show(self, record_id: int | str) -> StoredDecision:
        """One decision by record id (int) or decision id (str), with the request it scored.

        Raises:
            AuditRecordNotFoundError: if there is no such decision.
        """
        row = self._raw(record_id, events_too=False)[0]
        record = _to_decision(row)
        return replace(record, request=stored_request(record, self._body(record.request_sha256)))

    def event(self, event_id: int | str) -> StoredEvent:
        """One event by record id (int) or event id (str).

        Raises:
            AuditRecordNotFoundError: if there is no such event.
        """
        column = events.c.id if isinstance(event_id, int) else events.c.event_id
        rows = (
            self._rows(sa.select(events).where(column == event_id))
            if "events" in self._tables
            else []
        )
        if not rows:
            raise AuditRecordNotFoundError(f"no audit event with {column.name} {event_id!r}")
        return _to_event(dict(rows[0]._mapping))

    def _raw(self, record_id: int | str, events_too: bool) -> tuple[dict[str, Any], bool]:
        """A stored row (payload as text) by id or decision id, and whether it is an event."""
        column = "id" if isinstance(record_id, int) else "decision_id"
        if isinstance(record_id, int) and not 0 < record_id <= MAX_RECORD_ID:
            raise AuditRecordNotFoundError(f"no audit record with {column} {record_id!r}")
        rows = self._rows(self._decisions(decisions.c[column] == record_id))
        if rows:
            return dict(rows[0]._mapping), False
        if events_too and column == "id" and "events" in self._tables:
            rows = self._rows(sa.select(events).where(events.c.id == record_id))
            if rows:
                return dict(rows[0]._mapping), True
        raise AuditRecordNotFoundError(f"no audit record with {column} {record_id!r}")

    def _body(self, digest: str | None) -> bytes | None:
        if digest is None or "request_bodies" not in self._tables:
            return None
        rows = self._rows(sa.select(request_bodies.c.body).where(request_bodies.c.sha256 == digest))
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
        """Decisions matching every given filter (open when None), oldest first.

        Args:
            start: earliest ``created_at``, the time the record was written (inclusive, UTC).
            end: latest ``created_at`` (exclusive, UTC).
            customer_id: one customer's decisions.
            rated_from: earliest rating date, the decision's ``as_of`` (inclusive).
            rated_to: latest rating date (inclusive).

        Raises:
            ValueError: if a range is inverted or the customer id is empty or too long.
        """
        query = AuditQuery(
            start=start, end=end, customer_id=customer_id, rated_from=rated_from, rated_to=rated_to
        )
        rows = self._rows(self._decisions(*self._filters(query)))
        return [_to_decision(dict(row._mapping)) for row in rows]

    def iter_all(self) -> Iterator[StoredDecision]:
        """Every decision, oldest first."""
        yield from self.export()

    def _filters(self, query: AuditQuery) -> list[Any]:
        c = decisions.c
        where = _equal(decisions, query, ("customer_id", "tier", "model_version"))
        if query.start is not None:
            where.append(c.created_at >= utc_iso(query.start))
        if query.end is not None:
            where.append(c.created_at < utc_iso(query.end))
        rated = schema.rated_on(self.dialect)
        if query.rated_from is not None:
            where.append(rated >= query.rated_from.isoformat())
        if query.rated_to is not None:
            where.append(rated <= query.rated_to.isoformat())
        return where

    def search(self, query: AuditQuery | None = None) -> AuditPage:
        """Decisions matching ``query`` (all filters combined), newest first, one page of them.

        Args:
            query: customer, ``start <= created_at < end`` (UTC), rating dates, tier, model
                version, and the page (``limit``, ``offset``); None lists the latest decisions.

        Returns:
            The page of records and the total number of matches.
        """
        query = query or AuditQuery()
        where = self._filters(query)
        total = self._rows(sa.select(sa.func.count()).select_from(decisions).where(*where))
        page = self._decisions(*where, newest_first=True).limit(query.limit).offset(query.offset)
        records = tuple(_to_decision(dict(row._mapping)) for row in self._rows(page))
        return AuditPage(records, int(total[0][0]), query.limit, query.offset)

    def search_events(self, query: EventQuery | None = None) -> EventPage:
        """Events matching ``query`` (kind, actor, subject, occurred_at range), newest first."""
        query = query or EventQuery()
        if "events" not in self._tables:
            return EventPage((), 0, query.limit, query.offset)
        c = events.c
        where = _equal(events, query, ("kind", "actor", "subject"))
        if query.start is not None:
            where.append(c.occurred_at >= utc_iso(query.start))
        if query.end is not None:
            where.append(c.occurred_at < utc_iso(query.end))
        total = self._rows(sa.select(sa.func.count()).select_from(events).where(*where))
        page = (
            sa.select(events)
            .where(*where)
            .order_by(c.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        found = tuple(_to_event(dict(row._mapping)) for row in self._rows(page))
        return EventPage(found, int(total[0][0]), query.limit, query.offset)

    def facets(self) -> dict[str, list[str]]:
        """Distinct tiers and model versions of the decisions (for search forms), sorted."""
        return {
            "tiers": sorted(str(r[0]) for r in self._rows(sa.select(decisions.c.tier).distinct())),
            "model_versions": sorted(
                str(r[0]) for r in self._rows(sa.select(decisions.c.model_version).distinct())
            ),
        }

    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoint rows (count, head hash, time, signature), oldest first."""
        c = checkpoints.c
        rows = self._rows(
            sa.select(c.id, c.record_count, c.head_hash, c.created_at, c.signature).order_by(c.id)
        )
        return [dict(row._mapping) for row in rows]

    def count(self) -> int:
        """Number of decisions."""
        return int(self._rows(sa.select(sa.func.count()).select_from(decisions))[0][0])

    def check_record(self, record_id: int | str) -> RecordCheck:
        """Check one record locally: its hash, its request body and its link to the record before.

        Cheap (two rows and a body); the whole chain and the checkpoints are checked by
        ``verify``. An int is a record id (decision or event), a str a decision id.

        Raises:
            AuditRecordNotFoundError: if there is no such record.
        """
        row, is_event = self._raw(record_id, events_too=True)
        previous = [
            r[0]
            for table in (decisions, events)
            if table.name in self._tables
            for r in self._rows(sa.select(table.c.hash).where(table.c.id == row["id"] - 1))
        ]
        body = None if is_event else self._body(row["request_sha256"])
        return check_row(row, is_event, previous[0] if previous else None, body)

    def verify(self) -> VerifyResult:
        """Check the whole chain, the request bodies and the checkpoints on one snapshot.

        Detects an edited byte (of a column or of a request body), a deleted or reordered
        record, a forged checkpoint and a tail cut below the last checkpoint; ``first_bad_id``
        is the first record that fails.

        Raises:
            AuditError: if the tables cannot be read.
        """
        options: dict[str, Any] = {"yield_per": 500}
        if self.dialect == "postgresql":
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        try:
            with self._engine.connect().execution_options(**options) as conn, conn.begin():
                bodies = (
                    good_body_digests(conn.execute(sa.select(request_bodies)))
                    if "request_bodies" in self._tables
                    else set()
                )
                n_rows = self._count_records(conn)
                c = checkpoints.c
                marks = [
                    tuple(row)
                    for row in conn.execute(
                        sa.select(c.id, c.record_count, c.head_hash, c.signature).order_by(c.id)
                    )
                ]
                rows = (dict(row._mapping) for row in conn.execute(self._decisions()))
                stream = (
                    (
                        dict(row._mapping)
                        for row in conn.execute(sa.select(events).order_by(events.c.id))
                    )
                    if "events" in self._tables
                    else iter(())
                )
                every = self.config.checkpoint_every
                return verify_rows(merged(rows, stream), n_rows, marks, self._key, every, bodies)
        except SQLAlchemyError as error:
            raise AuditError(f"cannot read audit store {self.url}: {_short(error)}") from error

    def _count_records(self, conn: Connection) -> int:
        tables = [t for t in (decisions, events) if t.name in self._tables]
        return sum(
            int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in tables
        )


_ID_LOOKUP = 500
"""Ids per ``IN`` list of an id lookup (well under SQLite's and PostgreSQL's bind limits)."""


def _compile(dialect: sa.Dialect) -> dict[str, schema.Compiled]:
    """The statements of the append path, rendered once for ``dialect``."""
    keys = idempotency_keys.c
    statements: dict[str, sa.Executable] = {
        "last_decision": schema.last_record(decisions),
        "last_event": schema.last_record(events),
        "body": schema.insert_ignoring_duplicates(request_bodies, dialect.name),
        "decisions": decisions.insert(),
        "events": events.insert(),
        "last_checkpoint": sa.select(sa.func.coalesce(sa.func.max(checkpoints.c.id), 0)),
        "checkpoint": checkpoints.insert(),
        "answer": sa.update(idempotency_keys)
        .where(keys.caller == sa.bindparam("w_caller"), keys.key == sa.bindparam("w_key"))
        .where(keys.response.is_(None))
        .values(status_code=sa.bindparam("v_status"), response=sa.bindparam("v_response")),
    }
    return {name: schema.Compiled.of(statement, dialect) for name, statement in statements.items()}


def _builder(
    make: Callable[..., dict[str, Any]], item: Any, payload: str, *extra: Any
) -> Callable[[int, str], dict[str, Any]]:
    """``(id, prev_hash) -> row`` for one record, stamped with the time it is chained."""
    return lambda row_id, prev_hash: make(item, payload, row_id, prev_hash, now_iso(), *extra)


def _equal(table: sa.Table, query: Any, names: Sequence[str]) -> list[Any]:
    """``column = value`` for each of ``names`` the query sets."""
    return [table.c[name] == getattr(query, name) for name in names if getattr(query, name)]


def _to_decision(row: dict[str, Any]) -> StoredDecision:
    values = {name: row[name] for name in DECISION_STORED}
    values["payload"] = json.loads(values["payload"])
    return StoredDecision(**values)


def _to_event(row: dict[str, Any]) -> StoredEvent:
    values = {name: row[name] for name in EVENT_STORED}
    values["payload"] = json.loads(values["payload"])
    return StoredEvent(**values)


def _short(error: BaseException) -> str:
    """First line of a driver error (SQLAlchemy appends the statement and a help link)."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def open_audit_store(config: AuditConfig | None = None, *, key: bytes | None = None) -> AuditStore:
    """The audit store ``config`` names (its SQLAlchemy ``url`` when set, else the SQLite file).

    Raises:
        AuditError: if the store cannot be opened (``AuditUrlError`` for a bad URL).
    """
    return SqlAuditStore(config, key=key)


def verify(
    db: Path | str | AuditStore,
    *,
    key: bytes | None = None,
    checkpoint_every: int | None = None,
) -> VerifyResult:
    """Verify an audit log: a SQLite file (opened read-only) or an open store.

    Args:
        db: The SQLite database path, or an open store (SQLite or PostgreSQL).
        key: Checkpoint HMAC key (default: from the environment, as the store does).
        checkpoint_every: Checkpoint interval the log was written with (default: config default).

    Raises:
        AuditError: if the file does not exist or cannot be read.
    """
    if not isinstance(db, Path | str):
        return db.verify()
    config = AuditConfig(path=Path(db))
    if checkpoint_every is not None:
        config = config.model_copy(update={"checkpoint_every": checkpoint_every})
    with SqlAuditStore(config, key=key, create=False) as store:
        return store.verify()


def export_checkpoints(store: AuditStore, path: Path) -> None:
    """Write the checkpoints as JSON lines, to keep outside the database (tail-cut anchor)."""
    path.write_text("".join(canonical_json(row) + "\n" for row in store.checkpoints()))
