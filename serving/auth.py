"""Bearer-token roles for the scoring API: scorer, auditor, admin.

A token reads ``rg_<id>_<secret>``. The token file (JSON, default ``data/tokens.json``) keeps,
per token id, the owner's name, the role, a random salt and ``sha256(salt + secret)``: never the
token itself. Roles are not hierarchical (separation of duties): an admin token cannot score.
Token values are never logged; callers are identified by token name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from features.errors import RiskgradeError

DEFAULT_TOKENS_PATH = Path("data/tokens.json")
_TOKEN_RE = re.compile(r"^rg_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    """What a token may do."""

    SCORER = "scorer"
    """Score and explain."""
    AUDITOR = "auditor"
    """Read the audit log and replay decisions."""
    ADMIN = "admin"
    """Reload the model."""


class TokenError(RiskgradeError, ValueError):
    """Bad token-store input (name, role, file)."""


class AuthenticationError(Exception):
    """No valid token: HTTP 401."""


class PermissionDeniedError(Exception):
    """A valid token without the required role: HTTP 403."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    name: str
    role: Role
    token_id: str


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def _read(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TokenError(f"cannot read token file {path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), dict):
        raise TokenError(f"token file {path} must hold an object with a 'tokens' mapping")
    return document["tokens"]


def _write(path: Path, tokens: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump({"tokens": tokens}, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_token(store_path: Path | str, name: str, role: Role | str) -> str:
    """Create a token for ``name`` with ``role``; store only its salted hash.

    Returns:
        The token, shown once: it cannot be recovered from the store.

    Raises:
        TokenError: if the name or role is invalid or the name already has a token.
    """
    path = Path(store_path)
    if not _NAME_RE.match(name):
        raise TokenError(
            f"token name {name!r} must be 1-64 characters of letters, digits, '_', '.', '@', '-'"
        )
    try:
        role = Role(role)
    except ValueError:
        raise TokenError(
            f"unknown role {role!r}; roles are {', '.join(r.value for r in Role)}"
        ) from None
    tokens = _read(path)
    if any(entry["name"] == name for entry in tokens.values()):
        raise TokenError(f"a token named {name!r} already exists; revoke it first")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    tokens[token_id] = {
        "name": name,
        "role": role.value,
        "salt": salt,
        "sha256": _hash(salt, secret),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write(path, tokens)
    return f"rg_{token_id}_{secret}"


def revoke_token(store_path: Path | str, name: str) -> bool:
    """Remove the token of ``name``; returns whether one existed."""
    path = Path(store_path)
    tokens = _read(path)
    kept = {key: entry for key, entry in tokens.items() if entry["name"] != name}
    if len(kept) == len(tokens):
        return False
    _write(path, kept)
    return True


def list_tokens(store_path: Path | str) -> list[dict[str, str]]:
    """Name, role and creation time of every token (no secrets, no hashes)."""
    return [
        {"name": entry["name"], "role": entry["role"], "created_at": entry["created_at"]}
        for entry in _read(Path(store_path)).values()
    ]


class TokenStore:
    """Tokens loaded once (the service reloads them on admin reload)."""

    def __init__(self, path: Path | str = DEFAULT_TOKENS_PATH) -> None:
        """Load the token file; a missing file means no token is valid.

        Raises:
            TokenError: if the file is unreadable or malformed.
        """
        self.path = Path(path)
        self._tokens = _read(self.path)
        for token_id, entry in self._tokens.items():
            missing = {"name", "role", "salt", "sha256"} - set(entry)
            if missing:
                raise TokenError(f"token {token_id} in {self.path} lacks {sorted(missing)}")
            Role(entry["role"])

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, authorization: str | None) -> Caller:
        """Resolve an ``Authorization: Bearer <token>`` header value to a caller.

        Raises:
            AuthenticationError: if the header is absent, malformed or the token unknown.
        """
        if not authorization:
            raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("Authorization header must read 'Bearer <token>'")
        match = _TOKEN_RE.match(token.strip())
        entry = self._tokens.get(match.group(1)) if match else None
        # Compare even for unknown ids so timing says nothing about which ids exist.
        salt = entry["salt"] if entry else "0" * 32
        expected = entry["sha256"] if entry else "0" * 64
        secret = match.group(2) if match else ""
        if not hmac.compare_digest(_hash(salt, secret), expected) or entry is None or not match:
            raise AuthenticationError("invalid or revoked token")
        return Caller(name=entry["name"], role=Role(entry["role"]), token_id=match.group(1))

    def require(self, authorization: str | None, role: Role) -> Caller:
        """Authenticate and check the role.

        Raises:
            AuthenticationError: no valid token (401).
            PermissionDeniedError: valid token, other role (403).
        """
        caller = self.authenticate(authorization)
        if caller.role != role:
            raise PermissionDeniedError(
                f"token '{caller.name}' has role '{caller.role}', this endpoint needs '{role}'"
            )
        return caller
