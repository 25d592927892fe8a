from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serving.audit import (
    GENESIS_HASH,
    RATED_ON_SQLITE,
    AuditConfig,
    AuditError,
    AuditRecordNotFoundError,
    AuditStore,
    AuditUnavailableError,
    DecisionRecord,
    body_digest,
    canonical_json,
    record_hash,
    replay,
    verify,
)
from tests.serving.audit_cases import check_export_filters, rated_records

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
        request_body=b'{"i": %d}' % i,
        payload={"features": {"x": 1.5, "y": None}},
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
    conn.execute("DROP TRIGGER request_bodies_no_update")
    conn.execute("DROP TRIGGER request_bodies_no_delete")
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
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE request_bodies SET body = x'00'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM request_bodies")
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


def test_given_records_when_shown_then_request_is_the_body_as_received(tmp_path):
    # Given a body with its own spacing and key order, stored for one decision
    store = AuditStore(AuditConfig(path=tmp_path / "a.db"), key=KEY)
    body = b'{ "z": 1,  "a": [1, 2.50] }'
    stored = store.append(record(1).model_copy(update={"request_body": body}))
    # When shown, then the request is that body, and its digest is the body's SHA-256
    shown = store.show(1)
    assert shown.request == {"z": 1, "a": [1, 2.5]}
    assert shown.request_sha256 == stored.request_sha256 == body_digest(body)
    raw = store._conn.execute("SELECT body FROM request_bodies").fetchone()[0]
    assert raw == body


def test_given_batch_group_when_appended_then_one_body_and_pointers_per_request(tmp_path):
    # Given a /score_batch body with two requests, committed as one group
    store = AuditStore(AuditConfig(path=tmp_path / "a.db", checkpoint_every=2), key=KEY)
    body = b'{"requests": [{"n": 0}, {"n": 1}]}'
    group = [
        record(i + 1).model_copy(update={"request_body": body, "request_pointer": f"/requests/{i}"})
        for i in range(2)
    ]
    stored = store.append_many(group)
    # Then the records chain in order, the body is kept once, each points at its request
    assert [r.id for r in stored] == [1, 2] and stored[1].prev_hash == stored[0].hash
    assert store._conn.execute("SELECT COUNT(*) FROM request_bodies").fetchone()[0] == 1
    assert store.show(2).request == {"n": 1} and store.show(1).request == {"n": 0}
    assert store.verify().ok and len(store.checkpoints()) == 1


def test_given_a_failing_group_when_appended_then_nothing_of_it_is_written(tmp_path):
    # Given one committed record, then a group whose second record repeats a decision id
    store = AuditStore(AuditConfig(path=tmp_path / "a.db"), key=KEY)
    store.append(record(1))
    group = [record(2), record(1)]
    # When appended, then the group fails whole: no record of it and no new body
    with pytest.raises(AuditUnavailableError):
        store.append_many(group)
    assert store.count() == 1
    assert store._conn.execute("SELECT COUNT(*) FROM request_bodies").fetchone()[0] == 1
    assert store.verify().ok


def test_given_body_byte_edited_when_verified_then_its_record_fails(tmp_path):
    # Given 6 records, and an attacker who changes one byte of record 4's stored body
    _, path = filled(tmp_path, 6)
    digest = body_digest(b'{"i": 4}')
    forged = b'{"i": 5}'.hex()
    tamper(path, f"UPDATE request_bodies SET body = X'{forged}' WHERE sha256 = '{digest}'")
    # When verified, then record 4 is named for its body, and its local check agrees
    result = check(path)
    assert not result.ok and result.first_bad_id == 4
    assert result.problem == "record 4: request body missing or altered"
    store = AuditStore(AuditConfig(path=path, checkpoint_every=10), key=KEY)
    assert not store.check_record(4).ok and store.check_record(3).ok


def test_given_body_deleted_when_verified_then_its_record_fails(tmp_path):
    _, path = filled(tmp_path, 6)
    digest = body_digest(b'{"i": 2}')
    tamper(path, f"DELETE FROM request_bodies WHERE sha256 = '{digest}'")
    result = check(path)
    assert not result.ok and result.first_bad_id == 2 and "request body" in result.problem


def test_given_a_log_of_the_first_format_when_opened_then_old_records_verify_and_replay(
    tmp_path,
):
    # Given a log written before request bodies were stored apart (request in the payload)
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_FIRST_FORMAT_SCHEMA)
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
    # When the current store opens it and appends a new record
    store = AuditStore(AuditConfig(path=path), key=KEY)
    store.append(record(2))
    # Then both formats verify in one chain, and the old request is still readable
    assert store.verify().ok and verify(path, key=KEY).ok
    assert store.show(1).request == {"old": True} and store.show(1).request_sha256 is None
    assert store.show(2).request == {"i": 2}


_FIRST_FORMAT_SCHEMA = """
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, kind TEXT NOT NULL, caller TEXT NOT NULL,
    customer_id TEXT NOT NULL, model_version TEXT NOT NULL, bundle_hash TEXT NOT NULL,
    policy_version TEXT NOT NULL, pd REAL NOT NULL, grade TEXT NOT NULL, tier TEXT NOT NULL,
    payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL UNIQUE
);
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT, record_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL, created_at TEXT NOT NULL, signature TEXT NOT NULL
);
"""


def test_given_a_body_made_unreadable_when_shown_then_no_request_and_replay_refuses(tmp_path):
    # Given record 2's stored body overwritten with bytes that are not JSON
    _, path = filled(tmp_path, 3)
    digest = body_digest(b'{"i": 2}')
    tamper(
        path, f"UPDATE request_bodies SET body = X'{b'not json'.hex()}' WHERE sha256 = '{digest}'"
    )
    store = AuditStore(AuditConfig(path=path, checkpoint_every=10), key=KEY)
    # When shown, then the record still reads, without a request, and its check names the body
    shown = store.show(2)
    assert shown.request is None and shown.decision_id == "d0002"
    assert store.check_record(2).problem == "record 2: request body missing or altered"
    # And replay refuses with an audit error rather than scoring garbage
    with pytest.raises(AuditError, match="missing or altered"):
        replay(store, 2, lambda _hash: None)


def test_given_rated_records_when_exported_then_rating_date_time_and_customer_filter(tmp_path):
    # Given decisions of two customers on three rating dates (and one without a rating date)
    store = AuditStore(AuditConfig(path=tmp_path / "audit.db"), key=KEY)
    store.append_many(rated_records())
    # When exported by rating date, logging time and customer, then each filter applies
    check_export_filters(store)
    store.close()


def test_given_a_log_written_before_the_rated_index_when_opened_then_it_verifies_and_filters(
    tmp_path,
):
    # Given a log of the current format without the rating-date index (written by older code)
    path = tmp_path / "audit.db"
    store = AuditStore(AuditConfig(path=path), key=KEY)
    store.append_many(rated_records())
    hashes = [r.hash for r in store.iter_all()]
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX decisions_rated_on")
    conn.commit()
    conn.close()
    # When it is opened again
    store = AuditStore(AuditConfig(path=path), key=KEY)
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
