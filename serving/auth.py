"""Bearer-token roles for the API: scorer, auditor, admin, analyst, approver, senior_approver.

A token reads ``rg_<id>_<secret>``. The token file (JSON, default ``data/tokens.json``) keeps,
per token id, the owner's name, the role, a random salt, ``sha256(salt + secret)``, the creation
time and an optional expiry: never the token itself. Every write replaces the file atomically
(temp file + rename), so a reader never sees half a file.

`TokenStore` is what the service authenticates with: it checks the file's identity (inode,
mtime, size) on every call and re-reads it when it changed, so a token created, revoked or
edited while the service runs counts from the next call, without a restart; expiry is checked
against the clock at call time. The scorer, auditor and admin roles are not hierarchical
(separation of duties): an admin token cannot score. The human-judgement roles are a ladder:
an approver may do all an analyst does, a senior approver all an approver does (and nobody
decides on what they proposed: that rule is the management package's). Token values are never
logged; callers are identified by token name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path

from features.errors import RiskgradeError

DEFAULT_TOKENS_PATH = Path("data/tokens.json")
_TOKEN_RE = re.compile(r"^rg_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DURATION_RE = re.compile(r"^([1-9][0-9]{0,5})([dh])$")
_REQUIRED = frozenset({"name", "role", "salt", "sha256"})

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    """What a token may do."""

    SCORER = "scorer"
    """Score and explain."""
    AUDITOR = "auditor"
    """Read the audit log and replay decisions."""
    ADMIN = "admin"
    """Reload the model."""
    ANALYST = "analyst"
    """Record assessments, propose overrides and expert ratings, read ratings and the queue."""
    APPROVER = "approver"
    """All an analyst does, and approve or reject others' proposals."""
    SENIOR_APPROVER = "senior_approver"
    """All an approver does, and decide on overrides beyond the approver's notch limit."""

    def satisfies(self, required: Role) -> bool:
        """Whether a token of this role may call what needs ``required``."""
        if self is required:
            return True
        ladder = JUDGEMENT_LADDER
        return self in ladder and required in ladder and ladder.index(self) > ladder.index(required)


JUDGEMENT_LADDER: tuple[Role, ...] = (Role.ANALYST, Role.APPROVER, Role.SENIOR_APPROVER)
"""The hierarchical roles, from the least authority to the most."""


class TokenError(RiskgradeError, ValueError):
    """Bad token-store input (name, role, file)."""


class AuthenticationError(Exception):
    """No valid token: HTTP 401."""


class TokenStoreUnavailableError(AuthenticationError):
    """The token file cannot be read: nobody is authenticated (HTTP 503 where it can be told)."""


class PermissionDeniedError(Exception):
    """A valid token without the required role: HTTP 403."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    name: str
    role: Role
    token_id: str


@dataclass(frozen=True)
class TokenInfo:
    """What ``token list`` shows of a token: never its secret or hash."""

    name: str
    role: Role
    created_at: datetime | None
    expires_at: datetime | None
    """None: the token does not expire."""

    def expired(self, now: datetime) -> bool:
        """Whether the token has expired at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class _Entry:
    info: TokenInfo
    salt: str
    sha256: str


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """The expiry instant that ``--expires`` names, in UTC.

    Accepts a duration from now (``90d``, ``12h``), a date (``2026-12-31``: the token works
    through that day, UTC, and ends at the next midnight UTC) or an ISO date-time with an
    offset (naive means UTC).

    Raises:
        TokenError: if the text is none of those or names a moment not after ``now``.
    """
    now = (now or _utc_now()).replace(microsecond=0)
    value = text.strip()
    duration = _DURATION_RE.match(value)
    if duration:
        amount, unit = int(duration.group(1)), duration.group(2)
        return now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = datetime.fromisoformat(value).date()
            moment = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    except ValueError:
        raise TokenError(
            f"--expires {text!r} is neither a duration (90d, 12h) nor a date (2026-12-31)"
        ) from None
    if moment <= now:
        raise TokenError(f"--expires {text!r} is in the past ({moment.isoformat()})")
    return moment.astimezone(UTC)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def _instant(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise TokenError(f"{what} {value!r} is not an ISO date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _read(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenError(f"cannot read token file {path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), dict):
        raise TokenError(f"token file {path} must hold an object with a 'tokens' mapping")
    return document["tokens"]


def _entries(path: Path) -> dict[str, _Entry]:
    """Every token of the file, checked.

    Raises:
        TokenError: naming the first malformed entry.
    """
    entries: dict[str, _Entry] = {}
    for token_id, raw in _read(path).items():
        where = f"token {token_id} in {path}"
        if not isinstance(raw, dict):
            raise TokenError(f"{where} is not an object")
        missing = _REQUIRED - set(raw)
        if missing:
            raise TokenError(f"{where} lacks {sorted(missing)}")
        try:
            role = Role(raw["role"])
        except ValueError:
            raise TokenError(f"{where} has unknown role {raw['role']!r}") from None
        info = TokenInfo(
            name=str(raw["name"]),
            role=role,
            created_at=_instant(raw.get("created_at"), f"{where}: created_at"),
            expires_at=_instant(raw.get("expires_at"), f"{where}: expires_at"),
        )
        entries[token_id] = _Entry(info, str(raw["salt"]), str(raw["sha256"]))
    return entries


def _write(path: Path, tokens: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump({"tokens": tokens}, stream, indent=2, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_token(
    store_path: Path | str,
    name: str,
    role: Role | str,
    expires_at: datetime | None = None,
) -> str:
    """Create a token for ``name`` with ``role``; store only its salted hash.

    Args:
        store_path: The token file (created if missing).
        name: Who holds the token; unique in the file.
        role: scorer, auditor, admin, analyst, approver or senior_approver.
        expires_at: When the token stops working (see `parse_expiry`); None: never.

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
    if any(entry.get("name") == name for entry in tokens.values()):
        raise TokenError(f"a token named {name!r} already exists; revoke it first")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    entry = {
        "name": name,
        "role": role.value,
        "salt": salt,
        "sha256": _hash(salt, secret),
        "created_at": _utc_now().isoformat(timespec="seconds"),
    }
    if expires_at is not None:
        entry["expires_at"] = expires_at.astimezone(UTC).isoformat(timespec="seconds")
    tokens[token_id] = entry
    _write(path, tokens)
    return f"rg_{token_id}_{secret}"


def revoke_token(store_path: Path | str, name: str) -> bool:
    """Remove the token of ``name``; returns whether one existed."""
    path = Path(store_path)
    tokens = _read(path)
    kept = {key: entry for key, entry in tokens.items() if entry.get("name") != name}
    if len(kept) == len(tokens):
        return False
    _write(path, kept)
    return True


def list_tokens(store_path: Path | str) -> list[TokenInfo]:
    """Name, role, creation and expiry of every token, by name (no secrets, no hashes).

    Raises:
        TokenError: if the file is malformed.
    """
    return sorted((e.info for e in _entries(Path(store_path)).values()), key=lambda i: i.name)


_Signature = tuple[int, ...] | None
"""(inode, mtime ns, size) of the token file; None when it does not exist."""


def _signature(path: Path) -> _Signature:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class TokenStore:
    """The token file as the service sees it: re-read when it changes, expiry checked per call."""

    def __init__(self, path: Path | str = DEFAULT_TOKENS_PATH, clock: Clock = _utc_now) -> None:
        """Load the token file; a missing file means no token is valid.

        An unreadable or malformed file is kept as `problem` (every call is refused until the
        file is fixed) rather than raised, so a running service recovers without a restart.

        Args:
            path: The token file.
            clock: The current time (UTC), read at each call to check expiry.
        """
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: _Signature = ()
        self._entries: dict[str, _Entry] = {}
        self._problem: str | None = None
        self._refresh()

    def __len__(self) -> int:
        return len(self._current())

    @property
    def problem(self) -> str | None:
        """Why the current token file cannot be used (None when it can)."""
        self._refresh()
        return self._problem

    def _refresh(self) -> None:
        """Re-read the file if its identity changed (an atomic replace changes the inode)."""
        signature = _signature(self.path)
        if signature == self._signature:
            return
        with self._lock:
            if signature == self._signature:
                return
            try:
                entries, problem = _entries(self.path), None
            except TokenError as error:
                entries, problem = {}, str(error)
            # The signature read before the file: a change in between is seen on the next call.
            self._entries, self._problem, self._signature = entries, problem, signature

    def _current(self) -> dict[str, _Entry]:
        self._refresh()
        if self._problem is not None:
            raise TokenStoreUnavailableError(f"token store unreadable: {self._problem}")
        return self._entries

    def authenticate(self, authorization: str | None) -> Caller:
        """Resolve an ``Authorization: Bearer <token>`` header value to a caller.

        Raises:
            AuthenticationError: if the header is absent or malformed, or the token unknown,
                revoked or expired.
            TokenStoreUnavailableError: if the token file became unreadable.
        """
        entries = self._current()
        if not authorization:
            raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("Authorization header must read 'Bearer <token>'")
        match = _TOKEN_RE.match(token.strip())
        entry = entries.get(match.group(1)) if match else None
        # Compare even for unknown ids so timing says nothing about which ids exist.
        salt = entry.salt if entry else "0" * 32
        expected = entry.sha256 if entry else "0" * 64
        secret = match.group(2) if match else ""
        if not hmac.compare_digest(_hash(salt, secret), expected) or entry is None or not match:
            raise AuthenticationError("invalid or revoked token")
        if entry.info.expired(self._clock()):
            assert entry.info.expires_at is not None
            raise AuthenticationError(
                f"token '{entry.info.name}' expired at {entry.info.expires_at.isoformat()}"
            )
        return Caller(name=entry.info.name, role=entry.info.role, token_id=match.group(1))

    def require(self, authorization: str | None, role: Role | tuple[Role, ...]) -> Caller:
        """Authenticate and check the role: one of ``role`` (or a role above it on the ladder).

        Raises:
            AuthenticationError: no valid token (401).
            PermissionDeniedError: valid token, other role (403).
        """
        caller = self.authenticate(authorization)
        roles = role if isinstance(role, tuple) else (role,)
        if not any(caller.role.satisfies(r) for r in roles):
            needed = " or ".join(f"'{r}'" for r in roles)
            raise PermissionDeniedError(
                f"token '{caller.name}' has role '{caller.role}', this endpoint needs {needed}"
            )
        return caller


PROBES = ("/livez", "/healthz", "/readyz")
"""BentoML's liveness and readiness probes: they answer without a token."""
REVIEW_PAGE = ("/review", "/review/", "/review/index.html", "/review/customer")
"""The review and customer pages hold no data (it comes from token-gated routes)."""
REVIEW_ASSETS_PREFIX = "/review/static/"
METRICS_PATH = "/metrics"


def answers_without_token(path: str, *, metrics_public: bool = False) -> bool:
    """Whether a request path is served without a token (every other path needs a valid one).

    Open: the probes, the review page and its script and style sheet, and ``/metrics`` when
    ``metrics_public`` (``RISKGRADE_METRICS_PUBLIC=true``) lets Prometheus scrape without a
    token. Everything else, BentoML's own index, docs, schema and static files included, needs
    a valid token of any role; the route itself then checks the role.
    """
    if path in PROBES or path in REVIEW_PAGE:
        return True
    if path.startswith(REVIEW_ASSETS_PREFIX) and "/" not in path[len(REVIEW_ASSETS_PREFIX) :]:
        return True
    return metrics_public and path == METRICS_PATH
