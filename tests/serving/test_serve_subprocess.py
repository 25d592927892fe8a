"""One real ``bentoml serve`` process on loopback (slow: BentoML starts a server + worker)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from audit import verify
from serving.auth import create_token
from serving.batch import request_example
from tests.serving.conftest import auth
from tests.serving.factory import bentoml_serve


@pytest.mark.slow
def test_given_bentoml_serve_when_scoring_over_http_then_decision_and_audit(
    tmp_path, bundle, portfolio, as_of
):
    tokens = tmp_path / "tokens.json"
    scorer = create_token(tokens, "svc", "scorer")
    with bentoml_serve(bundle.path, tokens, tmp_path) as base:
        body = request_example(portfolio, "C00003", as_of)
        response = httpx.post(f"{base}/score", json=body, headers=auth(scorer), timeout=30)
        assert response.status_code == 200
        assert 0 < response.json()["pd"] < 1
        denied = httpx.post(f"{base}/score", json=body, timeout=30)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
    assert verify(tmp_path / "audit.db", key=b"test-key").records == 1


@pytest.mark.slow
def test_given_two_workers_when_scored_concurrently_then_one_intact_audit_chain(
    tmp_path, bundle, portfolio, as_of
):
    # Given a real bentoml serve with two worker processes sharing one SQLite audit log
    tokens = tmp_path / "tokens.json"
    scorer = create_token(tokens, "svc", "scorer")
    bodies = [request_example(portfolio, f"C{i:05d}", as_of) for i in range(12)]
    # The subject is the shared chain, not overload: a loaded CI machine must not turn the
    # latency budget's fast 503 on (that is tested in test_adaptive_batching)
    env = {
        "RISKGRADE_WORKERS": "2",
        "RISKGRADE_MAX_CONCURRENCY": "64",
        "RISKGRADE_MAX_LATENCY_MS": "120000",
    }
    with bentoml_serve(bundle.path, tokens, tmp_path, extra_env=env) as base:
        # When 8 clients send 48 /score calls and one /score_batch of 5 at once
        def post(chunk):
            with httpx.Client(timeout=60) as client:
                return [client.post(f"{base}/score", json=b, headers=auth(scorer)) for b in chunk]

        work = bodies * 4
        with ThreadPoolExecutor(8) as pool:
            batch = pool.submit(
                httpx.post,
                f"{base}/score_batch",
                json={"requests": bodies[:5]},
                headers=auth(scorer),
                timeout=60,
            )
            responses = [r for part in pool.map(post, [work[i::8] for i in range(8)]) for r in part]
            batch_response = batch.result()
    # Then every call is answered and every decision is in one chain, exactly once
    refused = {r.text for r in [*responses, batch_response] if r.status_code != 200}
    assert not refused, refused
    result = verify(tmp_path / "audit.db", key=b"test-key")
    assert result.ok and result.records == 53
