"""What only PostgreSQL does: synchronous commit, TRUNCATE, lock timeout, URLs, cross-backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from audit import (
    AuditConfig,
    AuditUnavailableError,
    AuditUrlError,
    SqlAuditStore,
    open_audit_store,
)
from tests.audit.conftest import KEY, record


def test_given_a_store_when_connected_then_every_commit_is_synchronous(pg_url):
    store = SqlAuditStore(AuditConfig(url=pg_url), key=KEY)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SHOW synchronous_commit")).scalar_one() == "on"
    store.close()


def test_given_records_when_read_back_then_same_values_as_sqlite_store(pg_url, tmp_path):
    # Given the same decisions in PostgreSQL and in SQLite
    pg = SqlAuditStore(AuditConfig(url=pg_url, checkpoint_every=5), key=KEY)
    lite = SqlAuditStore(AuditConfig(path=tmp_path / "a.db", checkpoint_every=5), key=KEY)
    for i in range(1, 7):
        pg.append(record(i, payload={"features": {"x": 1.5, "y": None, "z": float("nan")}}))
        lite.append(record(i, payload={"features": {"x": 1.5, "y": None, "z": float("nan")}}))
    # When read back, then every column but time and hashes matches; NaN became null in both
    skip = {"created_at", "prev_hash", "hash"}
    pg_rec, lite_rec = pg.show(4), lite.show(4)
    assert {k: v for k, v in pg_rec.to_dict().items() if k not in skip} == {
        k: v for k, v in lite_rec.to_dict().items() if k not in skip
    }
    assert pg_rec.payload["features"]["z"] is None
    lite.close()
    pg.close()


def test_given_a_bare_postgresql_url_when_opened_then_psycopg_3(pg_url):
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    store = open_audit_store(AuditConfig(url=bare), key=KEY)
    assert store.append(record(1)).id == 1 and store.path is None
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+pymysql://u@h/db", "dialect 'mysql' is not supported"),
        ("mssql://u@h/db", "dialect 'mssql' is not supported"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("not a url", "not a valid"),
    ],
)
def test_given_unsupported_url_when_opened_then_error_names_the_dialect(url, message):
    with pytest.raises(AuditUrlError, match=message):
        open_audit_store(AuditConfig(url=url))


def test_given_unreachable_server_when_opened_then_error_masks_the_password(pg_cluster):
    bad = "postgresql+psycopg://u:secret@/nope?host=/nonexistent&port=1"
    with pytest.raises(Exception, match=r"\*\*\*") as info:
        SqlAuditStore(AuditConfig(url=bad))
    assert "secret" not in str(info.value)


def test_given_writer_holding_the_lock_when_append_then_unavailable_after_timeout(pg_url):
    # Given another session holding the append lock, and a 200 ms lock timeout
    store = SqlAuditStore(AuditConfig(url=pg_url, busy_timeout_ms=200), key=KEY)
    store.append(record(1))
    other = sa.create_engine(pg_url)
    with other.begin() as conn:
        conn.execute(sa.text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
        # When the store appends, Then it gives up with AuditUnavailableError (no decision)
        with pytest.raises(AuditUnavailableError, match="lock timeout"):
            store.append(record(2))
    other.dispose()
    # And once the lock is released, appends continue the chain
    assert store.append(record(2)).id == 2 and store.verify().ok
    store.close()


def test_given_the_server_dropped_the_connection_when_appending_then_it_reconnects(pg_url):
    # Given a store whose append connection the server terminates (a restart, a failover)
    store = SqlAuditStore(AuditConfig(url=pg_url), key=KEY)
    store.append(record(1))
    pid = store._writer().dbapi_connection.info.backend_pid
    other = sa.create_engine(pg_url)
    with other.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()
    # When the next decision is appended, then it is committed on a new connection
    assert store.append(record(2)).id == 2
    assert store.verify().ok and store.count() == 2
    store.close()
