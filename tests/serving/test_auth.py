from __future__ import annotations

import json

import pytest

from serving.auth import (
    AuthenticationError,
    PermissionDeniedError,
    Role,
    TokenError,
    TokenStore,
    create_token,
    list_tokens,
    revoke_token,
)


def test_given_created_token_when_stored_then_only_salted_hash_is_kept(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", "scorer")
    text = path.read_text()
    secret = token.split("_", 2)[2]
    assert secret not in text and token not in text
    entry = next(iter(json.loads(text)["tokens"].values()))
    assert set(entry) == {"name", "role", "salt", "sha256", "created_at"}
    assert list_tokens(path) == [
        {"name": "alice", "role": "scorer", "created_at": entry["created_at"]}
    ]


def test_given_token_when_authenticated_then_caller_and_role_resolved(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", Role.AUDITOR)
    store = TokenStore(path)
    caller = store.authenticate(f"Bearer {token}")
    assert caller.name == "alice" and caller.role is Role.AUDITOR
    assert store.require(f"bearer {token}", Role.AUDITOR).name == "alice"
    with pytest.raises(PermissionDeniedError, match="needs 'scorer'"):
        store.require(f"Bearer {token}", Role.SCORER)


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic abc", "Bearer", "Bearer rg_000000000000_" + "x" * 43, "Bearer garbage"],
)
def test_given_bad_header_when_authenticated_then_401(tmp_path, header):
    path = tmp_path / "tokens.json"
    create_token(path, "alice", "scorer")
    with pytest.raises(AuthenticationError):
        TokenStore(path).authenticate(header)


def test_given_tampered_secret_when_authenticated_then_rejected(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", "scorer")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AuthenticationError):
        TokenStore(path).authenticate(f"Bearer {forged}")


def test_given_bad_inputs_when_creating_then_clear_errors(tmp_path):
    path = tmp_path / "tokens.json"
    with pytest.raises(TokenError, match="unknown role 'root'"):
        create_token(path, "alice", "root")
    with pytest.raises(TokenError, match="token name"):
        create_token(path, "bad name!", "scorer")
    create_token(path, "alice", "scorer")
    with pytest.raises(TokenError, match="already exists"):
        create_token(path, "alice", "admin")


def test_given_revoked_token_when_authenticated_then_rejected(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", "scorer")
    assert revoke_token(path, "alice") and not revoke_token(path, "alice")
    with pytest.raises(AuthenticationError):
        TokenStore(path).authenticate(f"Bearer {token}")
