"""Tokens created, revoked and expired while the service runs; which routes answer without one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount, Route
from typer.testing import CliRunner

from riskgrade.cli import app as cli_app
from serving.auth import create_token, revoke_token
from serving.batch import request_example
from tests.cli_helpers import run_main
from tests.serving.conftest import auth
from tests.serving.factory import bentoml_serve

runner = CliRunner(env={"COLUMNS": "200"})

OPEN_WITHOUT_TOKEN = {
    ("GET", "/livez"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/review/"),
    ("GET", "/review/index.html"),
    ("GET", "/review/customer"),
    ("GET", "/review/static/review.js"),
}
"""Every (method, path) that answers without a token; the README lists the same."""


@pytest.fixture
def body(portfolio, as_of):
    return request_example(portfolio, "C00002", as_of)


def _concrete(path: str) -> str:
    return (
        path.replace("{record_id}", "1")
        .replace("{bundle_hash}", "0")
        .replace("{name}", "review.js")
    )


def _routes(app: object, prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, concrete path) the app serves, mounted sub-apps included."""
    found: list[tuple[str, str]] = []
    for route in getattr(app, "routes", []):
        if isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                found.append((method, _concrete(prefix + route.path)))
        elif isinstance(route, Mount):
            inner = _routes(route.app, prefix + route.path)
            found += inner or [("GET", prefix + route.path + "/index.css")]
        elif hasattr(route, "original_router"):  # a FastAPI router included in the app
            found += _routes(route.original_router, prefix + route.include_context.prefix)
        elif hasattr(route, "app"):  # BentoML's passive mount of the service's own app
            found += _routes(route.app, prefix)
    return found


def test_given_every_route_when_called_without_token_then_only_the_listed_ones_answer(
    asgi_app, service_client
):
    # Given every route of the running app (BentoML's own and ours)
    routes = _routes(asgi_app)
    assert ("GET", "/docs.json") in routes and ("POST", "/score") in routes
    assert ("GET", "/static_content/index.css") in routes and ("GET", "/metrics") in routes
    with service_client() as (client, tokens, _):
        # When each is called without a token
        answered = {
            (method, path)
            for method, path in routes
            if client.request(method, path, follow_redirects=False).status_code != 401
        }
        # Then exactly the probes and the review page answer; the rest is 401 in the schema
        assert answered == OPEN_WITHOUT_TOKEN
        refused = client.get("/docs.json")
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
        # And with any valid token BentoML's own documentation routes answer
        assert client.get("/docs.json", headers=auth(tokens["auditor"])).status_code == 200


def test_given_service_running_when_token_created_then_it_works_on_the_next_call(
    service_client, body
):
    with service_client() as (client, _, audit_db):
        tokens_path = audit_db.with_name("tokens.json")
        # Given a token created after the service started
        late = create_token(tokens_path, "late-scorer", "scorer")
        # When it is used on the next call, then it is accepted (no restart, no reload)
        response = client.post("/score", json=body, headers=auth(late))
        assert response.status_code == 200, response.text
        assert client.get("/model", headers=auth(late)).status_code == 200


def test_given_service_running_when_token_revoked_then_401_on_the_next_call(service_client, body):
    with service_client() as (client, tokens, audit_db):
        assert client.post("/score", json=body, headers=auth(tokens["scorer"])).status_code == 200
        # When the token is revoked while the service runs
        revoke_token(audit_db.with_name("tokens.json"), "scorer-user")
        # Then the next call is refused
        response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid or revoked token"


def test_given_token_whose_expiry_has_passed_when_called_then_401_naming_the_expiry(
    service_client, body
):
    with service_client() as (client, tokens, audit_db):
        path = audit_db.with_name("tokens.json")
        # Given the scorer token's expiry moved into the past while the service runs
        document = json.loads(path.read_text())
        for entry in document["tokens"].values():
            if entry["name"] == "scorer-user":
                entry["expires_at"] = "2020-01-01T00:00:00+00:00"
        path.write_text(json.dumps(document))
        # When it is used, then 401 says it expired; other tokens still work
        response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert response.status_code == 401
        assert "expired at 2020-01-01" in response.json()["error"]["message"]
        assert client.get("/model", headers=auth(tokens["auditor"])).status_code == 200


def test_given_token_file_broken_while_running_when_called_then_503_until_it_is_fixed(
    service_client, body
):
    with service_client() as (client, tokens, audit_db):
        path = audit_db.with_name("tokens.json")
        good = path.read_text()
        # Given the token file broken while the service runs
        path.write_text("{not json")
        # Then calls are refused with 503 and the service reports not ready
        response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_ready"
        assert client.get("/readyz").status_code == 503
        # When it is fixed, then the next call is served (no restart)
        path.write_text(good)
        assert client.post("/score", json=body, headers=auth(tokens["scorer"])).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_given_cli_when_tokens_created_listed_revoked_then_no_secret_is_shown(tmp_path):
    store = str(tmp_path / "tokens.json")
    # Given two tokens, one expiring
    create = ["token", "create", "--name", "ops", "--role", "auditor", "--expires"]
    created = runner.invoke(cli_app, [*create, "2099-12-31", "--store", store])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    runner.invoke(
        cli_app, ["token", "create", "--name", "svc", "--role", "scorer", "--store", store]
    )
    # When listed, then names, roles and expiry show, never the token, secret or hash
    listed = runner.invoke(cli_app, ["token", "list", "--store", store])
    assert listed.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if "│" in line}
    assert "2100-01-01 00:00Z" in rows["ops"] and "auditor" in rows["ops"]
    assert "never" in rows["svc"] and "active" in rows["svc"]
    stored = json.loads(Path(store).read_text())["tokens"]
    for secret in [token, token.split("_", 2)[2], *(e["sha256"] for e in stored.values())]:
        assert secret not in listed.stdout
    # When one is revoked by name, then it is gone from the list
    revoked = runner.invoke(cli_app, ["token", "revoke", "ops", "--store", store])
    assert revoked.exit_code == 0 and "revoked 'ops'" in revoked.stdout
    assert "ops" not in runner.invoke(cli_app, ["token", "list", "--store", store]).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "x", "--role", "scorer", "--expires", "90x"], "neither a duration"),
        (["create", "--name", "x", "--role", "scorer", "--expires", "2001-01-01"], "in the past"),
        (["revoke", "nobody"], "no token named 'nobody'"),
    ],
)
def test_given_bad_token_arguments_when_run_then_one_error_line_exit_2(tmp_path, args, message):
    code, _, stderr = run_main("token", *args, "--store", str(tmp_path / "tokens.json"))
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert (
        line.startswith("error: ") and message in line and not (tmp_path / "tokens.json").exists()
    )


@pytest.mark.slow
def test_given_metrics_public_setting_when_served_then_only_metrics_opens(tmp_path, bundle):
    # Given a real bentoml serve with RISKGRADE_METRICS_PUBLIC=true
    tokens = tmp_path / "tokens.json"
    auditor = create_token(tokens, "ops", "auditor")
    env = {"RISKGRADE_METRICS_PUBLIC": "true"}
    with bentoml_serve(bundle.path, tokens, tmp_path, extra_env=env) as base:
        # When Prometheus scrapes without a token, then /metrics answers in its text format
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        # And BentoML's other routes still need a token, which opens them
        assert httpx.get(f"{base}/docs.json", timeout=10).status_code == 401
        assert httpx.get(f"{base}/", timeout=10).status_code == 401
        assert httpx.get(f"{base}/docs.json", headers=auth(auditor), timeout=10).status_code == 200
