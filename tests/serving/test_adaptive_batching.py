"""Adaptive batching behind /score and /score_batch, through ``Service.to_asgi()``, and the
batcher itself."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import bentoml
import pytest

from audit import verify
from serving.batch import request_example
from serving.batching import AdaptiveBatcher, BatchingConfig
from serving.service import ServiceConfig, ServiceConfigError
from tests.serving.conftest import auth


def _post_concurrently(client, path, bodies, headers, threads=8):
    start = threading.Barrier(threads)

    def post(chunk):
        start.wait()
        return [client.post(path, json=b, headers=headers) for b in chunk]

    chunks = [bodies[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [r for part in pool.map(post, chunks) for r in part]


@pytest.fixture(scope="module")
def bodies(portfolio, as_of):
    ids = sorted(portfolio.customers["customer_id"])
    return [request_example(portfolio, c, as_of) for c in ids]


def test_given_concurrent_calls_when_batched_then_each_equals_its_sequential_decision(
    service_client, bodies
):
    # Given the scores of 12 customers, one call at a time
    with service_client() as (client, tokens, _):
        headers = auth(tokens["scorer"])
        alone = {
            b["customer"]["customer_id"]: client.post("/score", json=b, headers=headers).json()
            for b in bodies
        }
    # When 8 clients send 60 calls for them at once
    with service_client() as (client, tokens, audit_db):
        headers = auth(tokens["scorer"])
        responses = _post_concurrently(client, "/score", bodies * 5, headers)
        batcher = bentoml.get_current_service().state.batcher
        # Then calls were decided together, every answer is 200 and equals the lone decision
        assert max(batcher.batch_sizes) > 1, batcher.batch_sizes
        assert [r.status_code for r in responses] == [200] * 60
        for response in responses:
            out = response.json()
            lone = alone[out["customer_id"]]
            assert (out["pd"], out["grade"], out["tier"]) == (
                lone["pd"],
                lone["grade"],
                lone["tier"],
            )
            assert out["reasons"] == lone["reasons"]
        # And every decision is in the audit log exactly once, the chain intact
        result = verify(audit_db, key=b"test-key")
        assert result.ok and result.records == len(alone) + 60  # same log as the lone calls
        assert len({r.json()["decision_id"] for r in responses}) == 60


def test_given_a_bad_call_among_concurrent_ones_then_only_it_fails(service_client, bodies):
    # Given concurrent calls, every fourth a feature vector lacking all features
    bad = {"as_of": bodies[0]["as_of"], "feature_vector": {"customer_id": "V", "values": {}}}
    mixed = [bad if i % 4 == 0 else b for i, b in enumerate(bodies * 3)]
    with service_client() as (client, tokens, audit_db):
        responses = _post_concurrently(client, "/score", mixed, auth(tokens["scorer"]))
    # Then the bad ones get 422 naming the field, the others 200, and only they are audited
    codes = [r.status_code for r in responses]
    assert codes.count(422) == 9 and codes.count(200) == 27
    for response in responses:
        if response.status_code == 422:
            assert response.json()["error"]["fields"][0]["loc"].startswith("feature_vector")
    assert verify(audit_db, key=b"test-key").records == 27


def test_given_batch_call_when_scored_then_records_point_into_the_one_body(service_client, bodies):
    with service_client() as (client, tokens, _):
        response = client.post(
            "/score_batch", json={"requests": bodies[:5]}, headers=auth(tokens["scorer"])
        )
        assert response.status_code == 200
        results = response.json()["results"]
        records = [
            client.get(f"/audit/{r['decision_id']}", headers=auth(tokens["auditor"])).json()
            for r in results
        ]
    assert [r["request_pointer"] for r in records] == [f"/requests/{i}" for i in range(5)]
    assert len({r["request_sha256"] for r in records}) == 1
    assert [r["request"] for r in records] == bodies[:5]


def test_given_a_tiny_latency_budget_when_flooded_then_fast_503_and_no_decision_lost(
    service_client, bodies
):
    # Given a 10 ms latency budget, far below what a batch of these customers takes
    with service_client(RISKGRADE_MAX_LATENCY_MS="10") as (client, tokens, audit_db):
        responses = _post_concurrently(client, "/score", bodies * 6, auth(tokens["scorer"]))
    # Then some calls are refused as overloaded (503 with Retry-After), the rest decided,
    # and exactly the decided ones are in the audit log
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and 503 in codes
    for response in responses:
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "overloaded"
            assert response.headers["Retry-After"] == "1"
    assert verify(audit_db, key=b"test-key").records == codes.count(200)


def test_given_batching_disabled_when_scored_concurrently_then_each_call_alone(
    service_client, bodies
):
    with service_client(RISKGRADE_BATCHING="false") as (client, tokens, _):
        responses = _post_concurrently(client, "/score", bodies * 2, auth(tokens["scorer"]))
        batcher = bentoml.get_current_service().state.batcher
    assert all(r.status_code == 200 for r in responses)
    assert set(batcher.batch_sizes) == {1}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RISKGRADE_MAX_BATCH_JOBS", "0"),
        ("RISKGRADE_MAX_LATENCY_MS", "soon"),
        ("RISKGRADE_BATCHING", "perhaps"),
        ("RISKGRADE_WORKERS", "-1"),
    ],
)
def test_given_bad_batching_setting_when_configured_then_error_names_the_variable(variable, value):
    with pytest.raises(ServiceConfigError, match=variable):
        ServiceConfig.from_env({variable: value})


def _batcher(max_wait_ms=2.0):
    def decide(jobs):
        time.sleep(0.005)  # a batch's work, done in a worker thread
        return [ValueError(job) if job == "bad" else job.upper() for job in jobs]

    def overloaded():
        raise RuntimeError("overloaded")

    config = BatchingConfig(max_wait_ms=max_wait_ms)
    return AdaptiveBatcher(decide, config, overloaded)


def test_given_lone_calls_when_submitted_then_decided_at_once_without_the_queue():
    batcher = _batcher()

    async def run():
        return [await batcher.submit(f"job{i}") for i in range(5)]

    assert asyncio.run(run()) == [f"JOB{i}" for i in range(5)]
    assert batcher._worker is None and batcher.batch_sizes == {1: 5}


def test_given_a_burst_when_it_ends_then_batches_stay_bounded_and_the_queue_drains():
    # Given a batcher that has seen a burst of 64 concurrent calls
    batcher = _batcher(max_wait_ms=2.0)

    async def run():
        results = await asyncio.gather(*(batcher.submit(f"j{i}") for i in range(64)))
        bad = await asyncio.gather(
            batcher.submit("x"), batcher.submit("bad"), return_exceptions=True
        )
        return results, bad

    results, bad = asyncio.run(run())
    # Then every call got its own outcome, calls were batched, an error went to its caller
    # alone, no batch exceeded max_batch_jobs and nothing is left queued
    assert results == [f"J{i}" for i in range(64)]
    assert max(batcher.batch_sizes) > 1
    assert bad[0] == "X" and isinstance(bad[1], ValueError)
    assert max(batcher.batch_sizes) <= batcher.config.max_batch_jobs
    assert not batcher._queue and batcher.job_seconds > 0


def test_given_a_known_job_cost_when_the_predicted_wait_exceeds_the_budget_then_refused_at_once():
    # Given a batcher whose jobs take about 5 ms each and a 10 ms budget
    def decide(jobs):
        time.sleep(0.005 * len(jobs))
        return list(jobs)

    def overloaded():
        raise RuntimeError("overloaded")

    batcher = AdaptiveBatcher(decide, BatchingConfig(max_latency_ms=10, max_wait_ms=0), overloaded)

    async def run():
        await batcher.submit(-1)  # one call alone: the cost estimate is learned
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)

    # When, after one call, 20 calls arrive together
    outcomes = asyncio.run(run())
    # Then some were decided, the rest refused with the overload error, none lost
    decided = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert decided and refused and len(decided) + len(refused) == 20
    assert all(str(e) == "overloaded" for e in refused)
    assert sum(size * n for size, n in batcher.batch_sizes.items()) == len(decided) + 1


def test_given_queued_jobs_when_shut_down_then_their_callers_get_the_overload_error():
    batcher = _batcher()

    async def run():
        first = asyncio.ensure_future(batcher.submit("a"))
        queued = [asyncio.ensure_future(batcher.submit(f"q{i}")) for i in range(3)]
        await asyncio.sleep(0)
        batcher.shutdown()
        return await asyncio.gather(first, *queued, return_exceptions=True)

    first, *queued = asyncio.run(run())
    assert first == "A"
    assert all(isinstance(q, RuntimeError) and str(q) == "overloaded" for q in queued)


def test_given_batch_and_single_calls_mixed_with_a_bad_one_then_each_gets_its_own_answers(
    service_client, bodies
):
    # Given concurrent /score_batch calls of three customers and /score calls of one, every
    # seventh /score call unscorable (a feature vector lacking all features)
    bad = {"as_of": bodies[0]["as_of"], "feature_vector": {"customer_id": "V", "values": {}}}
    batches = [{"requests": [bodies[(i + k) % len(bodies)] for k in range(3)]} for i in range(8)]
    singles = [bad if i % 7 == 0 else bodies[i % len(bodies)] for i in range(16)]
    with service_client() as (client, tokens, audit_db):
        headers = auth(tokens["scorer"])
        start = threading.Barrier(8)

        def post(k):
            start.wait()
            return [client.post("/score_batch", json=batches[k], headers=headers)] + [
                client.post("/score", json=b, headers=headers) for b in singles[k::8]
            ]

        with ThreadPoolExecutor(8) as pool:
            answered = list(pool.map(post, range(8)))
        batcher = bentoml.get_current_service().state.batcher
    # When they were decided in shared batches
    assert max(batcher.batch_sizes) > 1, batcher.batch_sizes
    # Then each call's answers are its own customers', in its order; the bad calls alone fail
    for k, (batch, *single) in enumerate(answered):
        assert batch.status_code == 200
        asked = [r["customer"]["customer_id"] for r in batches[k]["requests"]]
        assert [r["customer_id"] for r in batch.json()["results"]] == asked
        for body, response in zip(singles[k::8], single, strict=True):
            if body is bad:
                assert response.status_code == 422
            else:
                assert response.status_code == 200
                assert response.json()["customer_id"] == body["customer"]["customer_id"]
    # And exactly the decided customers are in the audit log
    decided = 8 * 3 + sum(1 for b in singles if b is not bad)
    assert verify(audit_db, key=b"test-key").records == decided


def _gated_batcher(config):
    """A batcher whose engine call waits for ``gate`` and records every batch it got."""
    gate = threading.Event()
    batches = []

    def decide(jobs):
        gate.wait(timeout=30)
        batches.append(list(jobs))
        return [ValueError(job) if job == "bad" else job.upper() for job in jobs]

    def overloaded():
        raise RuntimeError("overloaded")

    return AdaptiveBatcher(decide, config, overloaded), gate, batches


def test_given_calls_queued_behind_a_running_call_then_one_engine_call_takes_them_all():
    # Given one call being decided (alone) and five calls arriving meanwhile
    batcher, gate, batches = _gated_batcher(BatchingConfig(max_wait_ms=0))

    async def run():
        first = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0.05)  # "a" is in the engine, nothing else in flight before it
        rest = [asyncio.ensure_future(batcher.submit(f"q{i}")) for i in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest)

    # When the engine is released
    results = asyncio.run(run())
    # Then the five queued calls were drained in one engine call, in arrival order, and each
    # caller got its own outcome
    assert results == ["A", "Q0", "Q1", "Q2", "Q3", "Q4"]
    assert sorted(batches, key=len) == [["a"], ["q0", "q1", "q2", "q3", "q4"]]


def test_given_a_small_batch_cap_when_flooded_then_no_engine_call_exceeds_it():
    # Given at most 4 calls per engine call and 30 calls at once
    batcher, gate, batches = _gated_batcher(BatchingConfig(max_batch_jobs=4, max_wait_ms=0))
    gate.set()

    async def run():
        return await asyncio.gather(*(batcher.submit(f"j{i}") for i in range(30)))

    results = asyncio.run(run())
    # Then every call was decided once, in engine calls of at most 4, and the queue is empty
    assert results == [f"J{i}" for i in range(30)]
    assert max(len(b) for b in batches) == 4
    assert sorted(job for b in batches for job in b) == sorted(f"j{i}" for i in range(30))
    assert not batcher._queue


def test_given_an_engine_call_that_raises_then_its_callers_get_the_error_and_draining_goes_on():
    # Given an engine whose queued batch (the calls "d...") blows up as a whole; the engine
    # call of "a" alone may start before or after it in its own thread
    def decide(jobs):
        if any(job.startswith("d") for job in jobs):
            raise OSError("engine down")
        time.sleep(0.01)
        return [job.upper() for job in jobs]

    def overloaded():
        raise RuntimeError("overloaded")

    batcher = AdaptiveBatcher(decide, BatchingConfig(max_wait_ms=0), overloaded)

    async def run():
        first = asyncio.ensure_future(batcher.submit("a"))  # alone: call 1
        await asyncio.sleep(0)
        doomed = [asyncio.ensure_future(batcher.submit(f"d{i}")) for i in range(3)]  # call 2
        outcomes = await asyncio.gather(first, *doomed, return_exceptions=True)
        later = await asyncio.gather(batcher.submit("b"), batcher.submit("c"))
        return outcomes, later

    (first, *doomed), later = asyncio.run(run())
    # Then each caller of the failed batch gets the engine's error, the others their answers,
    # and calls after it are decided
    assert first == "A"
    assert all(isinstance(d, OSError) and str(d) == "engine down" for d in doomed)
    assert later == ["B", "C"]


def test_given_a_full_budget_then_a_refused_call_fails_before_the_running_batch_ends():
    # Given a learned cost of 50 ms per call, a 100 ms budget and a batch stuck in the engine
    batcher, gate, batches = _gated_batcher(BatchingConfig(max_latency_ms=100, max_wait_ms=0))
    batcher.job_seconds = 0.05

    async def run():
        first = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0.02)
        queued = asyncio.ensure_future(batcher.submit("b"))  # 2 x 50 ms: within the budget
        await asyncio.sleep(0)
        # When a third call arrives (3 x 50 ms predicted: over the budget)
        with pytest.raises(RuntimeError, match="overloaded"):
            await batcher.submit("c")
        # Then it was refused at once: the engine had not been released yet
        assert not gate.is_set() and batches == []
        gate.set()
        return await asyncio.gather(first, queued)

    assert asyncio.run(run()) == ["A", "B"]
    assert sorted(job for b in batches for job in b) == ["a", "b"]
