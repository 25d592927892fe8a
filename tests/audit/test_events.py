"""People's actions in the decisions' chain: appended, chained, verified, searched, tampered."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from audit import (
    AuditDuplicateEventError,
    AuditRecordNotFoundError,
    AuditUnavailableError,
    EventQuery,
    EventRecord,
)
from tests.audit.conftest import event, record


def test_given_decisions_and_events_interleaved_when_verified_then_one_chain(backend):
    # Given decisions and people's actions appended in turn, checkpoint every 4
    store = backend.open(every=4)
    store.append(record(1))
    first = store.append_events([event(1), event(2)])
    store.append_many([record(2), record(3)])
    last = store.append_event(event(3))
    # Then they share one sequence of ids and links
    assert [e.id for e in first] == [2, 3] and last.id == 6
    assert first[0].prev_hash == store.show(1).hash and store.show(4).prev_hash == first[1].hash
    # And the whole chain verifies, with its checkpoint after record 4
    result = store.verify()
    assert (result.ok, result.records, result.checkpoints) == (True, 6, 1)
    assert store.count() == 3 and store.check_record(3).ok and store.check_record(4).ok
    store.close()


def test_given_an_event_when_read_back_then_as_written(backend):
    store = backend.open()
    stored = store.append_event(event(1, occurred_at=datetime(2026, 3, 1, 8, 30)))
    again = store.event("e0001")
    assert again == store.event(stored.id) == stored
    assert again.occurred_at == "2026-03-01T08:30:00.000000+00:00"  # naive read as UTC
    assert again.reason == "reason 1: 管理层变动" and again.payload == {
        "grade": "2",
        "score": 1 / 3,
    }
    with pytest.raises(AuditRecordNotFoundError):
        store.event("nope")
    store.close()


def test_given_events_when_searched_then_kind_actor_subject_and_time_filter(backend):
    store = backend.open()
    store.append_events([event(i) for i in range(1, 7)])
    assert [e.id for e in store.search_events().events] == [6, 5, 4, 3, 2, 1]
    by_actor = store.search_events(EventQuery(actor="ann"))
    assert [e.event_id for e in by_actor.events] == ["e0005", "e0003", "e0001"]
    assert store.search_events(EventQuery(kind="override_approved", subject="C000")).total == 3
    start = datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert store.search_events(EventQuery(start=start, limit=2)).total == 4
    assert len(store.search_events(EventQuery(start=start, limit=2)).events) == 2
    store.close()


def test_given_an_event_edited_or_deleted_when_verified_then_it_is_named(backend):
    store = backend.open()
    store.append(record(1))
    store.append_events([event(1), event(2)])
    store.append(record(2))
    backend.tamper("UPDATE events SET reason = 'nothing to see' WHERE id = 3")
    result = store.verify()
    assert (result.first_bad_id, result.problem) == (3, "record 3: content does not match its hash")
    assert not store.check_record(3).ok and store.check_record(2).ok
    backend.tamper("DELETE FROM events WHERE id = 2")
    result = store.verify()
    assert (result.first_bad_id, result.problem) == (2, "record 2 is missing (next stored id is 3)")
    store.close()


def test_given_an_event_id_repeated_when_appended_then_nothing_written(backend):
    store = backend.open()
    store.append_event(event(1))
    with pytest.raises(AuditUnavailableError):
        store.append_events([event(2), event(1)])
    assert store.search_events().total == 1 and store.verify().ok
    store.close()


def test_given_a_bad_event_when_built_then_refused_by_field():
    with pytest.raises(ValidationError, match="kind"):
        event(1, kind="Override Proposed")
    with pytest.raises(ValidationError, match="actor"):
        EventRecord(
            event_id="e", kind="k", actor="", role="r", subject="s", occurred_at=datetime.now()
        )


def test_given_a_taken_event_id_when_appended_then_duplicate_error_and_nothing_written(backend):
    # Given an event in the log
    store = backend.open()
    store.append_event(event(1))
    # When a group holding a new event and one with the taken id is appended
    with pytest.raises(AuditDuplicateEventError) as caught:
        store.append_events([event(2), event(3, event_id="e0001")])
    # Then the error names the taken id, nothing of the group is written, the chain holds
    assert caught.value.event_ids == ("e0001",)
    assert isinstance(caught.value, AuditUnavailableError)  # nothing committed, told apart
    assert store.search_events().total == 1
    assert store.verify().ok
    # And the store still appends afterwards
    assert store.append_event(event(2)).id == 2
    store.close()


def test_given_racing_stores_when_appending_one_event_id_then_exactly_one_commits(backend):
    # Given four stores (four connections) and a barrier so they append at once
    stores = [backend.open() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def writer(n: int) -> None:
        barrier.wait()
        try:
            stores[n].append_event(event(n + 1, event_id="decision:p1"))
            outcomes.append("won")
        except AuditDuplicateEventError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one commit, the others a duplicate error, one event in a valid chain
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "won"]
    assert stores[0].search_events().total == 1
    assert stores[0].verify().ok
    for store in stores:
        store.close()
