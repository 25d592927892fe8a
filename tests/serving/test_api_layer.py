"""The shared HTTP pieces: one error schema, one caller dependency, one record-id parser."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from serving.api.deps import get_state, require
from serving.api.errors import ApiError, install_error_handlers
from serving.api.ids import parse_record_id
from serving.auth import Caller, Role, TokenStore, create_token
from serving.schemas import ErrorResponse


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    """An app with one route per error kind, behind a real token store."""
    tokens_path = tmp_path / "tokens.json"
    tokens = {
        role: create_token(tokens_path, f"{role}-user", role) for role in ("scorer", "auditor")
    }
    state = SimpleNamespace(tokens=TokenStore(tokens_path))
    app = FastAPI()
    install_error_handlers(app)
    app.dependency_overrides[get_state] = lambda: state

    @app.get("/who")
    async def who(caller: Caller = Depends(require(Role.AUDITOR))) -> dict[str, str]:  # noqa: B008
        return {"name": caller.name, "role": caller.role.value}

    @app.get("/anyone", dependencies=[Depends(require())])
    async def anyone() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/conflict")
    async def conflict() -> None:
        raise ApiError(409, "conflict", "taken", headers={"X-Why": "test"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    @app.get("/id/{raw}")
    async def record(raw: str) -> dict[str, object]:
        return {"id": parse_record_id(raw)}

    return TestClient(app, raise_server_exceptions=False), tokens


def _error(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return response.status_code, ErrorResponse.model_validate(response.json()).error.code


def test_given_tokens_when_calling_then_the_caller_or_401_403(client):
    # Given an auditor, a scorer and no token
    app, tokens = client
    # When each calls the auditor route / the any-role route
    auditor = app.get("/who", headers={"Authorization": f"Bearer {tokens['auditor']}"})
    scorer = app.get("/who", headers={"Authorization": f"Bearer {tokens['scorer']}"})
    anonymous = app.get("/who")
    anyone = app.get("/anyone", headers={"Authorization": f"Bearer {tokens['scorer']}"})
    # Then the caller is yielded, or refused in the error schema
    assert auditor.json() == {"name": "auditor-user", "role": "auditor"}
    assert _error(scorer) == (403, "forbidden")
    assert _error(anonymous) == (401, "unauthorized")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anyone.json() == {"ok": True}


def test_given_each_error_kind_then_one_schema(client):
    app, _ = client
    # Given an ApiError, a FastAPI validation error, an unknown path, a wrong method, a crash
    conflict = app.get("/conflict")
    typed = app.get("/typed", params={"n": "x"})
    missing = app.get("/nowhere")
    wrong = app.post("/typed")
    crash = app.get("/boom")
    # Then each is answered in the error schema with its code
    assert _error(conflict) == (409, "conflict") and conflict.headers["x-why"] == "test"
    assert _error(typed) == (422, "validation_error")
    assert typed.json()["error"]["fields"][0]["loc"] == "n"
    assert _error(missing) == (404, "not_found")
    assert _error(wrong) == (405, "method_not_allowed") and wrong.headers["allow"] == "GET"
    assert _error(crash) == (500, "internal_error") and "secret" not in crash.text


@pytest.mark.parametrize(
    "raw,expected",
    [("17", 17), ("²", "²"), ("٣", "٣"), ("9" * 30, 10**30 - 1), ("d-1", "d-1")],
)
def test_given_a_raw_id_then_only_ascii_digits_make_a_row_id(raw, expected):
    assert parse_record_id(raw) == expected
    assert isinstance(parse_record_id(raw), type(expected))


@pytest.mark.parametrize("raw", ["", "x" * 65])
def test_given_an_empty_or_long_id_then_422_naming_id(raw):
    with pytest.raises(ApiError) as caught:
        parse_record_id(raw)
    assert caught.value.status == 422 and caught.value.fields[0].loc == "id"


def test_given_the_id_route_when_a_unicode_digit_is_sent_then_it_stays_a_string(client):
    app, _ = client
    assert app.get("/id/%C2%B2").json() == {"id": "²"}
