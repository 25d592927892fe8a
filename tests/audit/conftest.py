"""One audit store, two databases: every contract test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from audit import AuditConfig, DecisionRecord, EventRecord, SqlAuditStore
from audit.schema import APPEND_ONLY_TABLES

KEY = b"test-key"


def record(i: int, **update: Any) -> DecisionRecord:
    """Decision ``i``: customers C000..C002, model m1 (odd) / m2, tier medium (odd) / low."""
    values: dict[str, Any] = {
        "decision_id": f"d{i:04d}",
        "kind": "score",
        "caller": "scorer-user",
        "customer_id": f"C{i % 3:03d}",
        "model_version": "m1" if i % 2 else "m2",
        "bundle_hash": "ab" * 32,
        "policy_version": "p1",
        "pd": 0.01 + i / 1000,
        "grade": "4",
        "tier": "medium" if i % 2 else "low",
        "request_body": b'{"i": %d}' % i,
        "payload": {"features": {"x": 1.5, "y": None}},
    }
    return DecisionRecord(**{**values, **update})


def event(i: int, **update: Any) -> EventRecord:
    """A person's action ``i``: analyst ann or approver bob, about customer C000..C001."""
    values: dict[str, Any] = {
        "event_id": f"e{i:04d}",
        "kind": "override_proposed" if i % 2 else "override_approved",
        "actor": "ann" if i % 2 else "bob",
        "role": "analyst" if i % 2 else "approver",
        "subject": f"C{i % 2:03d}",
        "reason": f"reason {i}: 管理层变动",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i),
        "payload": {"grade": str(i % 8 + 1), "score": i / 3},
    }
    return EventRecord(**{**values, **update})


@dataclass
class Backend:
    """A fresh, empty database of one dialect and what an owner could do to it."""

    name: str
    url: str

    def config(self, **settings: Any) -> AuditConfig:
        return AuditConfig(url=self.url, **settings)

    def open(self, every: int = 10, key: bytes = KEY, **kwargs: Any) -> SqlAuditStore:
        return SqlAuditStore(self.config(checkpoint_every=every), key=key, **kwargs)

    def filled(self, n: int, every: int = 10) -> SqlAuditStore:
        store = self.open(every)
        for i in range(1, n + 1):
            store.append(record(i))
        return store

    def owner_sql(self, *statements: str) -> None:
        """Statements run outside the store, as the database owner (triggers still on)."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def tamper(self, *statements: str) -> None:
        """What an attacker with file or owner access does: disable the triggers, then edit."""
        if self.name == "sqlite":
            disable = [
                f"DROP TRIGGER IF EXISTS {table}_no_{op}"
                for table in APPEND_ONLY_TABLES
                for op in ("update", "delete")
            ]
        else:
            disable = [f"ALTER TABLE {table} DISABLE TRIGGER USER" for table in APPEND_ONLY_TABLES]
        self.owner_sql(*disable, *statements)

    def scalar(self, sql: str) -> Any:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql(sql).scalar()
        finally:
            engine.dispose()

    def index_names(self, table: str) -> set[str]:
        sql = (
            f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'"
            if self.name == "sqlite"
            else f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'"
        )
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return {row[0] for row in conn.exec_driver_sql(sql)}
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'audit.db'}")
    return Backend("postgresql", request.getfixturevalue("pg_url"))


@pytest.fixture
def filled(backend: Backend) -> Callable[..., SqlAuditStore]:
    return backend.filled
