"""Shared fixtures: a tiny real bundle, a generated portfolio, tokens and a service client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from features.io import RawTables
from rating.bundle import Bundle, load_bundle
from serving.auth import create_token
from tests.conftest import built_once
from tests.serving.factory import AS_OF, make_bundle, make_portfolio, shared_asgi_app


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The tiny champion bundle, trained once per run (shared by the xdist workers)."""
    root = built_once(tmp_path_factory, "serving-bundle", lambda d: make_bundle(d / "champion"))
    return load_bundle(root / "champion")


@pytest.fixture(scope="session")
def portfolio() -> RawTables:
    return make_portfolio(12, seed=11)


@pytest.fixture(scope="session")
def as_of():
    return AS_OF


@pytest.fixture(scope="session")
def asgi_app() -> object:
    """The process-wide ASGI app (see ``shared_asgi_app``)."""
    return shared_asgi_app()


@pytest.fixture
def service_client(asgi_app: object, tmp_path: Path, bundle: Bundle) -> Callable[..., object]:
    """Start the BentoML service in-process (``to_asgi``) with its own audit db and tokens."""

    @contextmanager
    def start(
        bundle_path: Path | None = None, **env: str
    ) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
        tokens_path = tmp_path / "tokens.json"
        if not tokens_path.exists():
            tokens = {
                role: create_token(tokens_path, f"{role}-user", role)
                for role in ("scorer", "auditor", "admin")
            }
            (tmp_path / "tokens.plain.json").write_text(json.dumps(tokens))
        tokens = json.loads((tmp_path / "tokens.plain.json").read_text())
        audit_db = tmp_path / "audit.db"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RISKGRADE_BUNDLE", str(bundle_path or bundle.path))
            mp.setenv("RISKGRADE_AUDIT_DB", str(audit_db))
            mp.setenv("RISKGRADE_TOKENS", str(tokens_path))
            mp.setenv("RISKGRADE_AUDIT_KEY", "test-key")
            for key, value in env.items():
                mp.setenv(key, value)
            with TestClient(asgi_app, raise_server_exceptions=False) as client:
                yield client, tokens, audit_db

    return start


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
