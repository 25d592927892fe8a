"""One real ``bentoml serve`` process on loopback (slow: BentoML starts a server + worker)."""

from __future__ import annotations

import httpx
import pytest

from serving.audit import verify
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
