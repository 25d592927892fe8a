"""The idempotency mechanism on a router of its own (as a management router adopts it)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from audit import AuditConfig, SqlAuditStore
from serving.api import idempotency as mechanism
from serving.api.deps import get_state
from serving.api.errors import ApiError, install_error_handlers
from serving.api.idempotency import (
    IDEMPOTENCY,
    Idempotency,
    IdempotentRoute,
    check_key,
    request_digest,
)
from serving.auth import TokenStore, create_token
from serving.schemas import RequestLimits
from tests.audit.conftest import event


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A router adopting the mechanism in one line, over a real SQLite store and token store."""
    tokens_path = tmp_path / "tokens.json"
    tokens = {name: create_token(tokens_path, name, "scorer") for name in ("ann", "bob")}
    store = SqlAuditStore(AuditConfig(url=f"sqlite:///{tmp_path / 'audit.db'}"), key=b"k")
    state = SimpleNamespace(
        tokens=TokenStore(tokens_path),
        audit=store,
        open_audit=lambda: store,
        config=SimpleNamespace(limits=RequestLimits(), timeout_s=30.0),
    )
    calls: list[str] = []
    router = APIRouter(route_class=IdempotentRoute)

    @router.post("/events", status_code=201)
    async def add_event(request: Request, key: Idempotency | None = IDEMPOTENCY) -> JSONResponse:
        # Writes one event with its answer in the same transaction.
        calls.append("events")
        n = json.loads(await request.body())["n"]
        body = {"event_id": f"e{n:04d}", "n": n}
        store.append_events([event(n)], idempotent=key and key.answer(body, 201))
        return JSONResponse(body, 201)

    @router.post("/nothing")
    async def nothing(request: Request) -> dict[str, int]:
        # Writes no record: its answer is stored after it returns.
        calls.append("nothing")
        return {"calls": len(calls)}

    @router.post("/refuse")
    async def refuse() -> None:
        calls.append("refuse")
        raise ApiError(422, "validation_error", "no")

    @router.get("/read")
    async def read() -> dict[str, int]:
        return {"calls": len(calls)}

    api = FastAPI()
    install_error_handlers(api)
    api.include_router(router)
    api.dependency_overrides[get_state] = lambda: state
    client = TestClient(api, raise_server_exceptions=False)
    yield SimpleNamespace(client=client, tokens=tokens, store=store, calls=calls)
    store.close()


def _post(app, path: str, token: str, key: str | bytes | None, body: dict):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {app.tokens[token]}"}
    if key is not None:
        headers["Idempotency-Key"] = key  # type: ignore[assignment]
    return app.client.post(path, json=body, headers=headers)


def test_given_same_json_in_another_layout_then_same_digest_and_method_path_count():
    # Given one body written two ways
    a, b = b'{"n": 1, "m": [1, 2]}', b'{"m":[1,2],"n":1}'
    # Then the digest ignores layout and key order, but not the method, path or values
    assert request_digest("POST", "/x", a) == request_digest("POST", "/x", b)
    assert request_digest("POST", "/x", a) != request_digest("POST", "/y", a)
    assert request_digest("POST", "/x", a) != request_digest("PUT", "/x", a)
    assert request_digest("POST", "/x", a) != request_digest("POST", "/x", b'{"n": 2}')
    assert request_digest("POST", "/x", b"not json") != request_digest("POST", "/x", b"not  json")


@pytest.mark.parametrize("key", ["", " ", " a", "a" * 129, "clé", "tab\there"])
def test_given_a_bad_key_then_400_naming_the_header(key):
    with pytest.raises(ApiError) as raised:
        check_key(key)
    assert (raised.value.status, raised.value.code) == (400, "invalid_idempotency_key")
    assert raised.value.fields[0].loc == "Idempotency-Key"
    assert check_key("a" * 128) == "a" * 128 and check_key("order 7/2026-01") == "order 7/2026-01"


def test_given_an_answer_then_rendered_as_the_json_response_renders_it():
    handle = Idempotency(store=None, caller="ann", key="k")  # type: ignore[arg-type]
    body = {"b": "管理", "a": [1.5, None]}
    answer = handle.answer(body, 201)
    assert answer.response.encode() == JSONResponse(body, 201).body
    assert (answer.status_code, handle.answered) == (201, True)


def test_given_a_writing_route_when_retried_then_first_answer_and_one_event(app):
    # Given a call with a key that writes an event
    first = _post(app, "/events", "ann", "k-1", {"n": 1})
    # When it is retried with the same body (another layout), then another body, then by bob
    again = app.client.post(
        "/events",
        content=b'{ "n" : 1 }',
        headers={"Authorization": f"Bearer {app.tokens['ann']}", "Idempotency-Key": "k-1"},
    )
    reused = _post(app, "/events", "ann", "k-1", {"n": 2})
    other_caller = _post(app, "/events", "bob", "k-1", {"n": 3})
    # Then the retry gets the first answer byte for byte, and only two events are written
    assert first.status_code == 201 and (again.status_code, again.content) == (201, first.content)
    assert again.headers["content-type"] == "application/json"
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "idempotency_key_reused")
    assert other_caller.status_code == 201
    assert app.calls == ["events", "events"]
    assert app.store.search_events().total == 2


def test_given_a_route_writing_nothing_when_retried_then_answer_stored_after_it(app):
    first = _post(app, "/nothing", "ann", "k", {})
    again = _post(app, "/nothing", "ann", "k", {})
    plain = _post(app, "/nothing", "ann", None, {})
    assert first.json() == again.json() == {"calls": 1}
    assert plain.json() == {"calls": 2}


def test_given_a_refused_call_when_retried_then_it_runs_again(app):
    # Given a call answered 422 (it wrote nothing)
    assert _post(app, "/refuse", "ann", "k", {}).status_code == 422
    # When retried, the key was released: the route runs again (not a stored 422)
    assert _post(app, "/refuse", "ann", "k", {}).status_code == 422
    assert app.calls == ["refuse", "refuse"]
    # And the same key is free for another request
    assert _post(app, "/events", "ann", "k", {"n": 1}).status_code == 201


def test_given_a_call_in_flight_when_retried_then_409_after_waiting(app, monkeypatch):
    # Given a reservation whose call is still running (reserved, not answered)
    monkeypatch.setattr(mechanism, "IN_FLIGHT_WAIT_S", 0.05)
    digest = request_digest("POST", "/events", b'{"n":1}')
    assert app.store.reserve("ann", "k", digest).state == "new"
    # When a retry arrives
    response = _post(app, "/events", "ann", "k", {"n": 1})
    # Then it waits, then answers 409 in flight with Retry-After, and runs nothing
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "idempotency_key_in_flight",
    )
    assert response.headers["retry-after"] == "1" and app.calls == []


def test_given_bad_keys_or_get_routes_then_400_or_ignored(app):
    for key in ("a" * 129, b"cl\xe9"):
        response = _post(app, "/events", "ann", key, {"n": 1})
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["error"]["message"]
    read = app.client.get(
        "/read", headers={"Authorization": f"Bearer {app.tokens['ann']}", "Idempotency-Key": ""}
    )
    assert read.json() == {"calls": 0}
    assert app.calls == []
