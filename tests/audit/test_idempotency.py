"""Idempotency keys: one request does the work, retries get its answer, never a second record."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from audit import AuditUnavailableError, IdempotentResponse
from tests.audit.conftest import event, record


def test_given_a_key_when_reserved_answered_and_retried_then_stored_answer(backend):
    store = backend.open()
    # Given a first request reserving its key
    assert store.reserve("bank-a", "k1", "digest-1").state == "new"
    # While it runs, a retry is told it is in progress; another body under the key conflicts
    assert store.reserve("bank-a", "k1", "digest-1").state == "in_progress"
    assert store.reserve("bank-a", "k1", "digest-2").state == "conflict"
    # When its records are committed with its answer, in one transaction
    answer = IdempotentResponse("bank-a", "k1", 200, {"decision_id": "d0001"})
    store.append_many([record(1)], idempotent=answer)
    # Then a retry gets that answer, a conflicting body still conflicts, other callers are apart
    again = store.reserve("bank-a", "k1", "digest-1")
    assert (again.state, again.status_code, again.response) == ("replay", 200, answer.response)
    assert store.reserve("bank-a", "k1", "digest-2").state == "conflict"
    assert store.reserve("bank-b", "k1", "digest-2").state == "new"
    assert store.count() == 1
    store.close()


def test_given_a_failed_commit_when_retried_then_no_answer_stored_and_work_redone(backend):
    store = backend.open()
    store.append(record(1))
    assert store.reserve("c", "k", "d").state == "new"
    # When the commit fails (a repeated decision id), the answer is not stored either
    with pytest.raises(AuditUnavailableError):
        store.append_many([record(1)], idempotent=IdempotentResponse("c", "k", 200, {}))
    assert store.reserve("c", "k", "d").state == "in_progress"
    # And once released, a retry does the work again and events can carry the answer
    store.release("c", "k")
    assert store.reserve("c", "k", "d").state == "new"
    store.append_events([event(1)], idempotent=IdempotentResponse("c", "k", 201, {"ok": True}))
    assert store.reserve("c", "k", "d").response == {"ok": True}
    assert store.verify().records == 2
    store.close()


def test_given_an_answer_for_a_key_not_reserved_when_committed_then_refused(backend):
    store = backend.open()
    with pytest.raises(AuditUnavailableError, match="not reserved"):
        store.append_many([record(1)], idempotent=IdempotentResponse("c", "k", 200, {}))
    assert store.count() == 0
    store.reserve("c", "k", "d")
    store.complete(IdempotentResponse("c", "k", 422, {"error": {"code": "bad"}}))
    assert store.reserve("c", "k", "d").status_code == 422
    with pytest.raises(AuditUnavailableError, match="already answered"):
        store.complete(IdempotentResponse("c", "k", 200, {}))
    store.close()


def test_given_a_reservation_past_its_lease_when_retried_then_taken_over_once(backend):
    store = backend.open()
    store.reserve("c", "k", "d")
    time.sleep(0.05)
    assert store.reserve("c", "k", "d", lease_seconds=0.01).state == "new"
    assert store.reserve("c", "k", "d", lease_seconds=60).state == "in_progress"
    store.close()


def test_given_identical_retries_at_once_when_reserved_then_exactly_one_does_the_work(backend):
    # Given two stores (as two workers) and eight identical requests arriving together
    stores = [backend.open(), backend.open()]
    barrier = threading.Barrier(8)
    states: list[str] = []
    errors: list[BaseException] = []

    def attempt(n: int) -> None:
        store = stores[n % 2]
        try:
            barrier.wait(timeout=30)
            reservation = store.reserve("bank-a", "same", "digest")
            states.append(reservation.state)
            if reservation.state == "new":
                answer: Any = IdempotentResponse("bank-a", "same", 200, {"n": n})
                store.append_many([record(1)], idempotent=answer)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one did the work and wrote one record; the others waited or got its answer
    assert errors == []
    assert states.count("new") == 1 and set(states) <= {"new", "in_progress", "replay"}
    assert (
        stores[0].count() == 1 and stores[0].reserve("bank-a", "same", "digest").state == "replay"
    )
    for store in stores:
        store.close()
