from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from serving.auth import (
    AuthenticationError,
    PermissionDeniedError,
    Role,
    TokenError,
    TokenStore,
    TokenStoreUnavailableError,
    answers_without_token,
    create_token,
    list_tokens,
    parse_expiry,
    revoke_token,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_given_created_token_when_stored_then_only_salted_hash_is_kept(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", "scorer")
    text = path.read_text()
    secret = token.split("_", 2)[2]
    assert secret not in text and token not in text
    entry = next(iter(json.loads(text)["tokens"].values()))
    assert set(entry) == {"name", "role", "salt", "sha256", "created_at"}
    (info,) = list_tokens(path)
    assert (info.name, info.role, info.expires_at) == ("alice", Role.SCORER, None)
    assert info.created_at == datetime.fromisoformat(entry["created_at"])


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", NOW + timedelta(days=90)),
        ("12h", NOW + timedelta(hours=12)),
        ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-03-02T08:00:00+08:00", datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
        ("2026-03-02T08:00:00", datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
    ],
)
def test_given_expiry_text_when_parsed_then_utc_instant(text, expected):
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("90x", "neither a duration"),
        ("0d", "neither a duration"),
        ("-3d", "neither a duration"),
        ("", "neither a duration"),
        ("2026-02-30", "neither a duration"),
        ("2026-02-28", "in the past"),
        ("2026-03-01T12:00:00+00:00", "in the past"),
    ],
)
def test_given_bad_expiry_text_when_parsed_then_error_names_it(text, problem):
    with pytest.raises(TokenError, match=problem):
        parse_expiry(text, NOW)


def test_given_running_store_when_token_created_later_then_accepted_on_next_call(tmp_path):
    # Given a store loaded before the token exists
    path = tmp_path / "tokens.json"
    create_token(path, "first", "scorer")
    store = TokenStore(path)
    # When a token is created in the file afterwards
    token = create_token(path, "late", "auditor")
    # Then the same store accepts it on the next call
    assert store.authenticate(f"Bearer {token}").name == "late"
    assert len(store) == 2


def test_given_running_store_when_token_revoked_then_refused_on_next_call(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", "scorer")
    store = TokenStore(path)
    assert store.authenticate(f"Bearer {token}").name == "alice"
    revoke_token(path, "alice")
    with pytest.raises(AuthenticationError, match="invalid or revoked"):
        store.authenticate(f"Bearer {token}")


def test_given_expiring_token_when_clock_passes_expiry_then_refused(tmp_path):
    # Given a token that expires in 12 hours and a clock we move
    path = tmp_path / "tokens.json"
    now = [NOW]
    token = create_token(path, "alice", "scorer", parse_expiry("12h", NOW))
    store = TokenStore(path, clock=lambda: now[0])
    # When the clock is before the expiry, then it works; at the expiry it is refused
    now[0] = NOW + timedelta(hours=11, minutes=59)
    assert store.authenticate(f"Bearer {token}").name == "alice"
    now[0] = NOW + timedelta(hours=12)
    with pytest.raises(AuthenticationError, match="expired at 2026-03-02T00:00:00"):
        store.authenticate(f"Bearer {token}")
    assert list_tokens(path)[0].expired(now[0])


def test_given_store_when_file_becomes_malformed_then_nobody_passes_until_fixed(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "alice", "scorer")
    good = path.read_text()
    store = TokenStore(path)
    path.write_text('{"tokens": {"abc": {"name": "x"}}}')
    with pytest.raises(TokenStoreUnavailableError, match="lacks"):
        store.authenticate(f"Bearer {token}")
    assert store.problem is not None
    path.write_text(good)
    assert store.authenticate(f"Bearer {token}").name == "alice"
    assert store.problem is None


@pytest.mark.parametrize(
    ("path", "public_metrics", "open_"),
    [
        ("/livez", False, True),
        ("/readyz", False, True),
        ("/review/", False, True),
        ("/review/static/review.js", False, True),
        ("/review/static/../api/chain", False, False),
        ("/review/api/chain", False, False),
        ("/metrics", False, False),
        ("/metrics", True, True),
        ("/", True, False),
        ("/docs.json", False, False),
    ],
)
def test_given_path_when_policy_asked_then_only_probes_review_page_and_opt_in_metrics(
    path, public_metrics, open_
):
    assert answers_without_token(path, metrics_public=public_metrics) is open_
