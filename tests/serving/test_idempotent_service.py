"""Idempotency-Key through the service: retries get the first answer, decisions are logged once."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from audit import AuditConfig, SqlAuditStore, verify
from serving.auth import create_token
from serving.batch import request_example
from tests.serving.conftest import auth


@pytest.fixture
def body(portfolio, as_of):
    return request_example(portfolio, "C00002", as_of)


@pytest.fixture
def running(service_client):
    with service_client() as started:
        yield started


def _keyed(token: str, key: str) -> dict[str, str]:
    return {**auth(token), "Idempotency-Key": key}


def _log(audit_db) -> SqlAuditStore:  # type: ignore[no-untyped-def]
    return SqlAuditStore(AuditConfig(path=audit_db), key=b"test-key")


def test_given_a_keyed_score_when_retried_then_same_bytes_and_one_decision(running, body):
    client, tokens, audit_db = running
    headers = _keyed(tokens["scorer"], "order-1")
    # Given a first call with a key
    first = client.post("/score", json=body, headers=headers)
    # When it is retried with the same body, then with another body under the same key
    again = client.post("/score", json=body, headers=headers)
    other = client.post("/score", json={**body, "lang": "zh"}, headers=headers)
    # Then the retry gets the first answer byte for byte, the reuse 409, one decision logged
    assert first.status_code == 200
    assert (again.status_code, again.content) == (200, first.content)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
    store = _log(audit_db)
    try:
        assert store.count() == 1
        assert store.show(first.json()["decision_id"]).caller == "scorer-user"
    finally:
        store.close()


def test_given_keys_per_caller_then_another_scorer_reuses_the_key_freely(running, body, tmp_path):
    client, tokens, audit_db = running
    second = create_token(tmp_path / "tokens.json", "scorer-2", "scorer")
    one = client.post("/score", json=body, headers=_keyed(tokens["scorer"], "k"))
    two = client.post("/score", json=body, headers=_keyed(second, "k"))
    assert one.status_code == two.status_code == 200
    assert one.json()["decision_id"] != two.json()["decision_id"]
    assert verify(audit_db, key=b"test-key").records == 2


def test_given_batch_and_explain_when_retried_then_first_answers(running, portfolio, as_of):
    client, tokens, audit_db = running
    bodies = [request_example(portfolio, c, as_of) for c in ("C00001", "C00003")]
    batch = {"requests": bodies}
    headers = _keyed(tokens["scorer"], "batch-1")
    first = client.post("/score_batch", json=batch, headers=headers)
    again = client.post("/score_batch", json=batch, headers=headers)
    explain = {**bodies[0], "chart": "svg"}
    e1 = client.post("/explain", json=explain, headers=_keyed(tokens["scorer"], "explain-1"))
    e2 = client.post("/explain", json=explain, headers=_keyed(tokens["scorer"], "explain-1"))
    # A key of /explain sent to /score is another request
    moved = client.post("/score", json=explain, headers=_keyed(tokens["scorer"], "explain-1"))
    assert first.status_code == 200 and again.content == first.content
    assert e1.status_code == 200 and e2.content == e1.content and "chart" in e1.json()
    assert moved.status_code == 409
    assert verify(audit_db, key=b"test-key").records == 3


def test_given_a_refused_first_call_when_retried_then_the_key_is_free(running, body):
    client, tokens, audit_db = running
    headers = _keyed(tokens["scorer"], "retry-me")
    # Given a first call refused (422) with nothing written
    bad = client.post("/score", json={**body, "customer": None}, headers=headers)
    # When the caller fixes the body and retries with the same key
    good = client.post("/score", json=body, headers=headers)
    # Then the retry runs and is the one decision in the log
    assert bad.status_code == 422 and good.status_code == 200
    assert verify(audit_db, key=b"test-key").records == 1


def test_given_a_failed_commit_when_retried_then_the_key_is_free(running, body):
    client, tokens, audit_db = running
    headers = _keyed(tokens["scorer"], "k-503")
    # Given an audit store that refuses decisions (the chain's commit fails: 503, nothing kept)
    owner = sqlite3.connect(audit_db)
    owner.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    owner.commit()
    failed = client.post("/score", json=body, headers=headers)
    owner.execute("DROP TRIGGER refuse")
    owner.commit()
    owner.close()
    # When the caller retries with the same key
    retried = client.post("/score", json=body, headers=headers)
    # Then the retry runs (the failed call released the key) and is the one decision
    assert (failed.status_code, failed.json()["error"]["code"]) == (503, "audit_unavailable")
    assert retried.status_code == 200
    assert verify(audit_db, key=b"test-key").records == 1


def test_given_a_wrong_role_or_bad_key_then_403_400_and_no_key_kept(running, body):
    client, tokens, _ = running
    forbidden = client.post("/score", json=body, headers=_keyed(tokens["auditor"], "k"))
    bad = client.post("/score", json=body, headers=_keyed(tokens["scorer"], "x" * 129))
    assert forbidden.status_code == 403
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_idempotency_key")
    # The auditor's refused call kept no key: the scorer's call with it runs
    ok = client.post("/score", json=body, headers=_keyed(tokens["scorer"], "k"))
    assert ok.status_code == 200


def test_given_admin_reload_when_retried_then_first_answer(running):
    client, tokens, _ = running
    headers = _keyed(tokens["admin"], "reload-1")
    first = client.post("/admin/reload", json={}, headers=headers)
    again = client.post("/admin/reload", json={}, headers=headers)
    other = client.post("/admin/reload", json={"bundle": "/nowhere"}, headers=headers)
    assert first.status_code == 200 and again.content == first.content
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_given_duplicated_retries_under_load_then_each_decision_logged_once(
    running, portfolio, as_of, monkeypatch
):
    reservations: Counter[str] = Counter()
    reserve = SqlAuditStore.reserve

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        found = reserve(self, *args, **kwargs)
        reservations[found.state] += 1
        return found

    monkeypatch.setattr(SqlAuditStore, "reserve", counted)
    # Given 64 keys, each sent 2 to 4 times by 16 threads, concurrently and one after another
    client, tokens, audit_db = running
    customers = [f"C{n:05d}" for n in range(12)]
    bodies = {c: request_example(portfolio, c, as_of) for c in customers}
    rng = random.Random(7)
    plan = [(f"load-{k}", customers[k % len(customers)]) for k in range(64)]
    sends = [item for item in plan for _ in range(rng.randint(2, 4))]
    rng.shuffle(sends)
    sends = sends[:200]
    answers: dict[str, list[tuple[int, bytes]]] = {}
    lock = threading.Lock()

    in_flight: list[str] = []

    def post(key: str, customer: str):  # type: ignore[no-untyped-def]
        """One call as a credit system makes it: a 409 in flight is retried after Retry-After."""
        while True:
            response = client.post(
                "/score", json=bodies[customer], headers=_keyed(tokens["scorer"], key)
            )
            if response.status_code != 409:
                return response
            assert response.json()["error"]["code"] == "idempotency_key_in_flight"
            with lock:
                in_flight.append(response.headers["Retry-After"])
            time.sleep(0.05)  # the header says 1 s; the test need not wait that long

    def send(item: tuple[str, str]) -> None:
        key, customer = item
        response = post(key, customer)
        if response.status_code == 200 and rng.random() < 0.3:
            # a sequential retry right after the answer
            again = post(key, customer)
            with lock:
                answers.setdefault(key, []).append((again.status_code, again.content))
        with lock:
            answers.setdefault(key, []).append((response.status_code, response.content))

    # When they are all sent
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(send, sends))
    # Then every call was answered 200 with its key's first answer, byte for byte (a retry that
    # outwaited the first call's answer under load was told when to come back)
    assert set(in_flight) <= {"1"}
    statuses = Counter(status for got in answers.values() for status, _ in got)
    assert set(statuses) == {200}, statuses
    for key, got in answers.items():
        assert len({content for _, content in got}) == 1, key
    # And the log holds each key's decision exactly once, and nothing else
    store = _log(audit_db)
    try:
        logged = Counter(record.decision_id for record in store.iter_all())
    finally:
        store.close()
    first_ids = {key: json.loads(got[0][1])["decision_id"] for key, got in answers.items()}
    assert sorted(logged.values()) == [1] * len(answers)
    assert set(logged) == set(first_ids.values())
    assert verify(audit_db, key=b"test-key").ok
    # And retries were answered from the store, some while their first call was in flight
    assert reservations["new"] == len(answers) and reservations["replay"] > 0


def test_given_postgresql_when_a_keyed_call_is_retried_then_one_decision(
    pg_url, service_client, body
):
    with service_client(RISKGRADE_AUDIT_URL=pg_url) as (client, tokens, _):
        headers = _keyed(tokens["scorer"], "pg-1")
        first = client.post("/score", json=body, headers=headers)
        again = client.post("/score", json=body, headers=headers)
    assert first.status_code == 200 and again.content == first.content
    store = SqlAuditStore(AuditConfig(url=pg_url), key=b"test-key")
    try:
        assert store.count() == 1
        assert store.show(first.json()["decision_id"]).decision_id == first.json()["decision_id"]
    finally:
        store.close()
