from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serving.audit import (
    AuditConfig,
    AuditRecordNotFoundError,
    AuditStore,
    AuditUnavailableError,
    DecisionRecord,
    verify,
)

KEY = b"test-key"


def record(i: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{i:04d}",
        kind="score",
        caller="scorer-user",
        customer_id=f"C{i:03d}",
        model_version="m1",
        bundle_hash="ab" * 32,
        policy_version="p1",
        pd=0.01 + i / 1000,
        grade="4",
        tier="medium",
        payload={"request": {"i": i}, "features": {"x": 1.5, "y": None}},
    )


def filled(tmp_path: Path, n: int, every: int = 10) -> tuple[AuditStore, Path]:
    path = tmp_path / "audit.db"
    store = AuditStore(AuditConfig(path=path, checkpoint_every=every), key=KEY)
    for i in range(1, n + 1):
        store.append(record(i))
    return store, path


def tamper(path: Path, *statements: str) -> None:
    """Edit the file as an attacker with file access would: drop the triggers first."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("DROP TRIGGER decisions_no_delete")
    conn.execute("DROP TRIGGER checkpoints_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def check(path: Path) -> object:
    return verify(path, key=KEY, checkpoint_every=10)


def test_given_appended_records_when_verified_then_chain_and_checkpoints_hold(tmp_path):
    store, path = filled(tmp_path, 25)
    result = check(path)
    assert result.ok and result.records == 25 and result.checkpoints == 2
    assert store.count() == 25
    assert [c["record_count"] for c in store.checkpoints()] == [10, 20]


def test_given_store_when_opened_then_wal_and_full_sync(tmp_path):
    store, _ = filled(tmp_path, 1)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_given_log_when_update_or_delete_then_triggers_reject(tmp_path):
    _, path = filled(tmp_path, 12)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE decisions SET pd = 0.5 WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM decisions WHERE id = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    assert check(path).ok


def test_given_one_byte_edited_when_verified_then_that_record_fails(tmp_path):
    _, path = filled(tmp_path, 15)
    tamper(path, "UPDATE decisions SET payload = replace(payload, '1.5', '1.6') WHERE id = 7")
    result = check(path)
    assert not result.ok and result.first_bad_id == 7
    assert "does not match its hash" in result.problem


def test_given_edited_pd_column_when_verified_then_detected(tmp_path):
    _, path = filled(tmp_path, 5)
    tamper(path, "UPDATE decisions SET pd = 0.0001 WHERE id = 4")
    assert check(path).first_bad_id == 4


def test_given_deleted_row_when_verified_then_missing_record_named(tmp_path):
    _, path = filled(tmp_path, 15)
    tamper(path, "DELETE FROM decisions WHERE id = 5")
    result = check(path)
    assert not result.ok and result.first_bad_id == 5
    assert "missing" in result.problem


def test_given_reordered_rows_when_verified_then_first_swapped_record_fails(tmp_path):
    _, path = filled(tmp_path, 15)
    columns = (
        "decision_id, created_at, kind, caller, customer_id, model_version, bundle_hash, "
        "policy_version, pd, grade, tier, payload, prev_hash, hash"
    )
    tamper(
        path,
        "CREATE TABLE swap AS SELECT * FROM decisions WHERE id IN (3, 4)",
        "DELETE FROM decisions WHERE id IN (3, 4)",
        f"INSERT INTO decisions (id, {columns}) SELECT 3, {columns} FROM swap WHERE id = 4",
        f"INSERT INTO decisions (id, {columns}) SELECT 4, {columns} FROM swap WHERE id = 3",
    )
    result = check(path)
    assert not result.ok and result.first_bad_id == 3


def test_given_tail_dropped_when_verified_then_checkpoint_reveals_cut(tmp_path):
    _, path = filled(tmp_path, 25)
    tamper(path, "DELETE FROM decisions WHERE id > 14")
    result = check(path)
    assert not result.ok and result.first_bad_id == 15
    assert "tail cut off" in result.problem


def test_given_tail_and_checkpoint_dropped_when_verified_then_missing_checkpoint_found(tmp_path):
    _, path = filled(tmp_path, 25)
    tamper(path, "DELETE FROM decisions WHERE id > 22", "DELETE FROM checkpoints WHERE id = 1")
    assert not check(path).ok


def test_given_forged_checkpoint_when_verified_then_signature_fails(tmp_path):
    _, path = filled(tmp_path, 25)
    result = verify(path, key=b"another key", checkpoint_every=10)
    assert not result.ok and "bad signature" in result.problem


def test_given_records_when_show_and_export_then_stored_values_come_back(tmp_path):
    store, _ = filled(tmp_path, 3)
    by_id = store.show(2)
    assert by_id.decision_id == "d0002" and by_id.payload["features"] == {"x": 1.5, "y": None}
    assert store.show("d0003").id == 3
    with pytest.raises(AuditRecordNotFoundError):
        store.show(99)
    now = datetime.now(UTC)
    assert [r.id for r in store.export(now - timedelta(hours=1), now + timedelta(hours=1))] == [
        1,
        2,
        3,
    ]
    assert store.export(now + timedelta(hours=1)) == []


def test_given_store_locked_by_another_writer_when_append_then_unavailable(tmp_path):
    path = tmp_path / "audit.db"
    store = AuditStore(AuditConfig(path=path, busy_timeout_ms=50), key=KEY)
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


def test_given_non_finite_value_when_appended_then_stored_as_null(tmp_path):
    store = AuditStore(AuditConfig(path=tmp_path / "a.db"), key=KEY)
    rec = record(1).model_copy(update={"payload": {"features": {"x": float("nan")}}})
    assert store.append(rec).payload == {"features": {"x": None}}
    assert store.verify().ok
