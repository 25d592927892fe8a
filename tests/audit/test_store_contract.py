"""The audit store contract, on SQLite and on PostgreSQL (the ``backend`` fixture)."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from audit import (
    AuditError,
    AuditQuery,
    AuditRecordNotFoundError,
    AuditUnavailableError,
    SqlAuditStore,
    body_digest,
    replay,
    verify,
)
from tests.audit.cases import check_export_filters, rated_records
from tests.audit.conftest import KEY, Backend, event, record


def test_given_appended_records_when_verified_then_chain_and_checkpoints_hold(backend):
    # Given 12 appended decisions, checkpoint every 5
    store = backend.filled(12, every=5)
    # When verified
    result = store.verify()
    # Then the chain holds with two checkpoints, and module-level verify agrees
    assert (result.ok, result.records, result.checkpoints) == (True, 12, 2)
    assert verify(store) == result
    assert store.count() == 12
    assert [c["record_count"] for c in store.checkpoints()] == [5, 10]
    assert store.is_writable()
    store.close()


def test_given_records_when_show_and_export_then_stored_values_come_back(backend):
    store = backend.filled(6)
    by_id = store.show(2)
    assert by_id.decision_id == "d0002" and by_id.payload["features"] == {"x": 1.5, "y": None}
    assert by_id.request == {"i": 2}
    assert store.show("d0004") == store.show(4)
    assert [r.id for r in store.iter_all()] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(AuditRecordNotFoundError):
        store.show(99)
    with pytest.raises(AuditRecordNotFoundError, match="d9999"):
        store.show("d9999")
    now = datetime.now(UTC)
    window = store.export(now - timedelta(hours=1), now + timedelta(hours=1))
    assert [r.id for r in window] == [1, 2, 3, 4, 5, 6]
    assert store.export(now + timedelta(hours=1)) == []
    store.close()


def test_given_records_when_searched_and_exported_then_filters_and_pages_apply(backend):
    # Given 9 decisions over customers C000..C002 and tiers medium/low
    store = backend.filled(9)
    # When searched by customer and tier, and paged
    page = store.search(AuditQuery(customer_id="C001", tier="medium"))
    latest = store.search(AuditQuery(limit=2, offset=1))
    # Then matches are exact, newest first, with totals
    assert [r.id for r in page.records] == [7, 1] and page.total == 2
    assert [r.id for r in latest.records] == [8, 7] and latest.total == 9
    assert store.facets() == {"tiers": ["low", "medium"], "model_versions": ["m1", "m2"]}
    now = datetime.now(UTC)
    assert store.search(AuditQuery(start=now - timedelta(hours=1))).total == 9
    store.close()


def test_given_log_when_owner_updates_deletes_or_truncates_then_trigger_refuses(backend):
    # Given a log with a checkpoint and an event
    store = backend.filled(5, every=5)
    store.append_event(event(1))
    statements = [
        "UPDATE decisions SET pd = 0.5 WHERE id = 2",
        "DELETE FROM decisions WHERE id = 3",
        "UPDATE checkpoints SET record_count = 1",
        "DELETE FROM checkpoints",
        "UPDATE request_bodies SET body = body",
        "DELETE FROM request_bodies",
        "UPDATE events SET reason = 'x'",
        "DELETE FROM events",
    ]
    if backend.name == "postgresql":
        statements.append("TRUNCATE decisions CASCADE")
    # When anyone changes a row, then the trigger raises and nothing changes
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            backend.owner_sql(statement)
    assert store.verify().ok and store.count() == 5 and len(store.checkpoints()) == 1
    store.close()


def test_given_one_byte_edited_when_verified_then_that_record_fails(backend):
    store = backend.filled(15)
    backend.tamper("UPDATE decisions SET payload = replace(payload, '1.5', '1.6') WHERE id = 7")
    result = store.verify()
    assert not result.ok and result.first_bad_id == 7
    assert result.problem == "record 7: content does not match its hash"
    assert not store.check_record(7).hash_ok and store.check_record(6).ok
    store.close()


def test_given_edited_pd_column_when_verified_then_detected(backend):
    store = backend.filled(5)
    backend.tamper("UPDATE decisions SET pd = 0.0001 WHERE id = 4")
    assert store.verify().first_bad_id == 4
    store.close()


def test_given_deleted_row_when_verified_then_missing_record_named(backend):
    store = backend.filled(15)
    backend.tamper("DELETE FROM decisions WHERE id = 5")
    result = store.verify()
    assert not result.ok and result.first_bad_id == 5
    assert "record 5 is missing" in result.problem
    assert store.check_record(6).problem == "record 5 (before record 6) is missing"
    store.close()


def test_given_reordered_rows_when_verified_then_first_swapped_record_fails(backend):
    store = backend.filled(15)
    columns = (
        "decision_id, created_at, kind, caller, customer_id, model_version, bundle_hash, "
        "policy_version, pd, grade, tier, payload, prev_hash, hash, request_sha256, "
        "request_pointer"
    )
    backend.tamper(
        "CREATE TABLE swap AS SELECT * FROM decisions WHERE id IN (3, 4)",
        "DELETE FROM decisions WHERE id IN (3, 4)",
        f"INSERT INTO decisions (id, {columns}) SELECT 3, {columns} FROM swap WHERE id = 4",
        f"INSERT INTO decisions (id, {columns}) SELECT 4, {columns} FROM swap WHERE id = 3",
    )
    result = store.verify()
    assert not result.ok and result.first_bad_id == 3
    store.close()


def test_given_tail_cut_below_checkpoint_when_verified_then_cut_reported(backend):
    # Given records 15..25 removed behind the store's back (checkpoint 2 covers 20)
    store = backend.filled(25)
    backend.tamper("DELETE FROM decisions WHERE id > 14")
    # When verified by a reader that creates nothing (no trigger re-creation)
    reader = backend.open(create=False)
    result = reader.verify()
    # Then the checkpoint reveals the cut
    assert not result.ok and result.first_bad_id == 15
    assert "tail cut off" in result.problem
    reader.close()
    store.close()


def test_given_tail_and_checkpoint_dropped_when_verified_then_missing_checkpoint_found(backend):
    store = backend.filled(25)
    backend.tamper("DELETE FROM decisions WHERE id > 22", "DELETE FROM checkpoints WHERE id = 1")
    assert not store.verify().ok
    store.close()


def test_given_forged_checkpoint_when_verified_then_signature_fails(backend):
    backend.filled(25).close()
    other = backend.open(key=b"another key")
    result = other.verify()
    assert not result.ok and "bad signature" in result.problem
    other.close()


def test_given_non_finite_value_when_appended_then_stored_as_null(backend):
    store = backend.open()
    rec = record(1, payload={"features": {"x": float("nan")}})
    assert store.append(rec).payload == {"features": {"x": None}}
    assert store.show(1).payload == {"features": {"x": None}}
    assert store.verify().ok
    store.close()


def test_given_records_when_shown_then_request_is_the_body_as_received(backend):
    # Given a body with its own spacing and key order, stored for one decision
    store = backend.open()
    body = b'{ "z": 1,  "a": [1, 2.50] }'
    stored = store.append(record(1, request_body=body))
    # When shown, then the request is that body, and its digest is the body's SHA-256
    shown = store.show(1)
    assert shown.request == {"z": 1, "a": [1, 2.5]}
    assert shown.request_sha256 == stored.request_sha256 == body_digest(body)
    assert bytes(backend.scalar("SELECT body FROM request_bodies")) == body
    store.close()


def test_given_batch_group_when_appended_then_one_body_and_pointers_per_request(backend):
    # Given a /score_batch body with three requests, committed as one group
    store = backend.open(every=2)
    body = b'{"requests": [{"n": 0}, {"n": 1}, {"n": 2}]}'
    group = [record(i + 1, request_body=body, request_pointer=f"/requests/{i}") for i in range(3)]
    stored = store.append_many(group)
    # Then the records chain in order, the body is kept once, each points at its request
    assert [r.id for r in stored] == [1, 2, 3] and stored[2].prev_hash == stored[1].hash
    assert backend.scalar("SELECT COUNT(*) FROM request_bodies") == 1
    assert store.show(3).request == {"n": 2} and store.show(1).request == {"n": 0}
    assert store.verify().ok and len(store.checkpoints()) == 1
    store.close()


def test_given_a_failing_group_when_appended_then_nothing_of_it_is_written(backend):
    # Given one committed record, then a group whose second record repeats a decision id
    store = backend.open()
    store.append(record(1))
    # When appended, then the group fails whole: no record of it and no new body
    with pytest.raises(AuditUnavailableError, match="decision_id"):
        store.append_many([record(2), record(1)])
    assert store.count() == 1
    assert backend.scalar("SELECT COUNT(*) FROM request_bodies") == 1
    # And the next append continues the chain
    assert store.append(record(2)).id == 2
    assert store.verify().ok
    store.close()


def test_given_body_byte_edited_when_verified_then_its_record_fails(backend):
    # Given 6 records, and an attacker who changes one byte of record 4's stored body
    store = backend.filled(6)
    digest = body_digest(b'{"i": 4}')
    forged = "X'" + b'{"i": 5}'.hex() + "'"
    if backend.name == "postgresql":
        forged = "'\\x" + b'{"i": 5}'.hex() + "'::bytea"
    backend.tamper(f"UPDATE request_bodies SET body = {forged} WHERE sha256 = '{digest}'")
    # When verified, then record 4 is named for its body, and its local check agrees
    result = store.verify()
    assert not result.ok and result.first_bad_id == 4
    assert result.problem == "record 4: request body missing or altered"
    assert not store.check_record(4).ok and store.check_record(3).ok
    store.close()


def test_given_body_deleted_when_verified_then_its_record_fails(backend):
    store = backend.filled(6)
    digest = body_digest(b'{"i": 2}')
    backend.tamper(f"DELETE FROM request_bodies WHERE sha256 = '{digest}'")
    result = store.verify()
    assert not result.ok and result.first_bad_id == 2 and "request body" in result.problem
    store.close()


def test_given_a_body_made_unreadable_when_shown_then_no_request_and_replay_refuses(backend):
    # Given record 2's stored body overwritten with bytes that are not JSON
    store = backend.filled(3)
    digest = body_digest(b'{"i": 2}')
    garbage = (
        "X'" + b"not json".hex() + "'"
        if backend.name == "sqlite"
        else "'\\x" + b"not json".hex() + "'::bytea"
    )
    backend.tamper(f"UPDATE request_bodies SET body = {garbage} WHERE sha256 = '{digest}'")
    # When shown, then the record still reads, without a request, and its check names the body
    shown = store.show(2)
    assert shown.request is None and shown.decision_id == "d0002"
    assert store.check_record(2).problem == "record 2: request body missing or altered"
    # And replay refuses with an audit error rather than scoring garbage
    with pytest.raises(AuditError, match="missing or altered"):
        replay(store, 2, lambda _hash: None)
    store.close()


def test_given_rated_records_when_exported_then_rating_date_time_and_customer_filter(backend):
    # Given decisions of two customers on three rating dates (and one without a rating date)
    store = backend.open()
    store.append_many(rated_records())
    # When exported by rating date, logging time and customer, then each filter applies
    check_export_filters(store)
    # And the rating date is indexed; the search takes the same filters
    assert store.search(AuditQuery(rated_from=date(2024, 6, 30), customer_id="A")).total == 2
    assert "decisions_rated_on" in backend.index_names("decisions")
    # And a payload that is not JSON (edited by the owner) reads as no rating date, no error
    backend.tamper("UPDATE decisions SET payload = 'not json' WHERE id = 1")
    assert [r.id for r in store.export(rated_to=date(2024, 12, 31))] == [2, 3, 4]
    assert not store.verify().ok
    store.close()


def test_given_two_stores_and_threads_when_appending_concurrently_then_one_valid_chain(backend):
    # Given two independent stores (two engines, as two service processes would have)
    stores = [backend.open(every=7), backend.open(every=7)]
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        store = stores[worker % 2]
        try:
            for i in range(15):
                store.append(record(1000 + worker * 100 + i))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    # When 6 threads append 15 decisions each at the same time
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then all 90 are in one unbroken chain with every checkpoint
    assert errors == []
    result = stores[0].verify()
    assert (result.ok, result.records, result.checkpoints) == (True, 90, 12)
    for store in stores:
        store.close()


def _process_writer(url: str, worker: int, n: int, barrier: Any) -> None:
    store = SqlAuditStore(Backend("", url).config(checkpoint_every=7), key=KEY)
    barrier.wait(timeout=60)  # start appending together
    for i in range(n):
        store.append(record(5000 + worker * 100 + i))
    store.close()


def test_given_two_processes_when_appending_concurrently_then_one_valid_chain(backend):
    # Given two separate writer processes on one log
    backend.open().close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    procs = [
        context.Process(target=_process_writer, args=(backend.url, w, 20, barrier))
        for w in range(2)
    ]
    # When they append at the same time
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    # Then both succeeded and the log is one valid chain of 40
    assert [proc.exitcode for proc in procs] == [0, 0]
    store = backend.open(every=7)
    result = store.verify()
    assert (result.ok, result.records, result.checkpoints) == (True, 40, 5)
    store.close()
