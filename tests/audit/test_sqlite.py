"""What only the SQLite database does: WAL, fsync, the file lock, a file path, older logs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from audit import (
    GENESIS_HASH,
    RATED_ON_SQLITE,
    AuditConfig,
    AuditError,
    AuditUnavailableError,
    SqlAuditStore,
    canonical_json,
    open_audit_store,
    record_hash,
    verify,
)
from tests.audit.cases import check_export_filters, rated_records
from tests.audit.conftest import KEY, record
from tests.audit.fixtures.make_legacy_logs import FIRST_FORMAT_SCHEMA


def test_given_store_when_opened_then_wal_and_full_sync(tmp_path):
    store = SqlAuditStore(AuditConfig(path=tmp_path / "a.db"), key=KEY)
    store.append(record(1))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


def test_given_a_path_when_verified_then_opened_read_only_with_the_given_key(tmp_path):
    path = tmp_path / "audit.db"
    store = SqlAuditStore(AuditConfig(path=path, checkpoint_every=10), key=KEY)
    for i in range(1, 26):
        store.append(record(i))
    store.close()
    result = verify(path, key=KEY, checkpoint_every=10)
    assert result.ok and result.records == 25 and result.checkpoints == 2
    assert not verify(path, key=b"another key", checkpoint_every=10).ok
    with pytest.raises(AuditError, match="does not exist"):
        verify(tmp_path / "none.db")


def test_given_store_locked_by_another_writer_when_append_then_unavailable(tmp_path):
    path = tmp_path / "audit.db"
    store = SqlAuditStore(AuditConfig(path=path, busy_timeout_ms=50), key=KEY)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert not store.is_writable()
        with pytest.raises(AuditUnavailableError):
            store.append(record(1))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.is_writable()
    assert store.count() == 0


def test_given_a_log_of_the_first_format_when_opened_then_old_records_verify_and_replay(
    tmp_path,
):
    # Given a log written before request bodies were stored apart (request in the payload)
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(FIRST_FORMAT_SCHEMA)
    row = {
        "id": 1,
        "decision_id": "old1",
        "created_at": "2026-01-01T00:00:00.000000+00:00",
        "kind": "score",
        "caller": "c",
        "customer_id": "C1",
        "model_version": "m",
        "bundle_hash": "ab" * 32,
        "policy_version": "p",
        "pd": 0.1,
        "grade": "4",
        "tier": "medium",
        "payload": canonical_json({"request": {"old": True}, "features": {}}),
        "prev_hash": GENESIS_HASH,
    }
    row["hash"] = record_hash(GENESIS_HASH, row)
    conn.execute(
        f"INSERT INTO decisions ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    conn.commit()
    conn.close()
    # When it is verified as found (read-only), then opened by the store and appended to
    assert verify(path, key=KEY).ok
    store = SqlAuditStore(AuditConfig(path=path), key=KEY)
    store.append(record(2))
    # Then both formats verify in one chain, and the old request is still readable
    assert store.verify().ok and verify(path, key=KEY).ok
    assert store.show(1).request == {"old": True} and store.show(1).request_sha256 is None
    assert store.show(2).request == {"i": 2}


def test_given_a_log_written_before_the_rated_index_when_opened_then_it_verifies_and_filters(
    tmp_path,
):
    # Given a log of the current format without the rating-date index (written by older code)
    path = tmp_path / "audit.db"
    store = SqlAuditStore(AuditConfig(path=path), key=KEY)
    store.append_many(rated_records())
    hashes = [r.hash for r in store.iter_all()]
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX decisions_rated_on")
    conn.commit()
    conn.close()
    # When it is opened again
    store = SqlAuditStore(AuditConfig(path=path), key=KEY)
    # Then the index is back, the chain is unchanged and verifies, and rated exports work
    conn = sqlite3.connect(path)
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT id FROM decisions WHERE {RATED_ON_SQLITE} >= '2024-06-30'"
    ).fetchall()
    conn.close()
    assert any("decisions_rated_on" in str(row) for row in plan)
    assert [r.hash for r in store.iter_all()] == hashes
    assert store.verify().ok and verify(path, key=KEY).ok
    check_export_filters(store)
    store.close()


def test_given_a_sqlite_url_or_a_path_when_opened_then_the_same_file(tmp_path: Path):
    by_url = open_audit_store(AuditConfig(url=f"sqlite:///{tmp_path}/url.db"), key=KEY)
    by_path = open_audit_store(AuditConfig(path=tmp_path / "url.db"), key=KEY)
    assert by_url.path == by_path.path == tmp_path / "url.db"
    by_url.append(record(1))
    assert by_path.show(1).decision_id == "d0001"
    by_url.close()
    by_path.close()
