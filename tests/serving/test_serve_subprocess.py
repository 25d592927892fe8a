"""One real ``bentoml serve`` process on loopback (slow: BentoML starts a server + worker)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.audit import verify
from serving.auth import create_token
from serving.batch import request_example
from tests.serving.conftest import auth

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_given_bentoml_serve_when_scoring_over_http_then_decision_and_audit(
    tmp_path, bundle, portfolio, as_of
):
    port = free_port()
    tokens = tmp_path / "tokens.json"
    scorer = create_token(tokens, "svc", "scorer")
    env = {
        **os.environ,
        "RISKGRADE_BUNDLE": str(bundle.path),
        "RISKGRADE_AUDIT_DB": str(tmp_path / "audit.db"),
        "RISKGRADE_TOKENS": str(tokens),
        "RISKGRADE_AUDIT_KEY": "test-key",
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskgradeService"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.5)
        assert ready, "service did not become ready"
        body = request_example(portfolio, "C00003", as_of)
        response = httpx.post(f"{base}/score", json=body, headers=auth(scorer), timeout=30)
        assert response.status_code == 200
        assert 0 < response.json()["pd"] < 1
        denied = httpx.post(f"{base}/score", json=body, timeout=30)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert verify(tmp_path / "audit.db", key=b"test-key").records == 1
