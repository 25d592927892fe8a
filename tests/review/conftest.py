"""Review page fixtures: a trained-like bundle (holding its report), tokens, decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from audit import AuditConfig
from features.io import RawTables
from rating.bundle import Bundle, attach_validation_report, load_bundle
from serving.api.deps import get_state
from serving.api.errors import install_error_handlers
from serving.auth import create_token
from serving.batch import request_example
from serving.engine import Engine
from serving.review import ReviewConfig, review_router
from serving.schemas import ScoreRequest
from serving.service import ServiceConfig, ServingState
from tests.conftest import built_once
from tests.serving.factory import AS_OF, make_bundle, make_portfolio

REPORT_HTML = "<!doctype html><title>validation report</title><h1>Validation report</h1>"


def write_training_output(root: Path, seed: int = 3) -> Bundle:
    """What ``training`` leaves: ``bundle/`` holding its validation report."""
    bundle = make_bundle(root / "bundle", seed=seed, n_customers=200)
    return attach_validation_report(bundle.path, REPORT_HTML)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The training output, written once per run (shared by the xdist workers)."""
    root = built_once(tmp_path_factory, "review-bundle", write_training_output)
    return load_bundle(root / "bundle")


@pytest.fixture(scope="session")
def raw() -> RawTables:
    return make_portfolio(6, seed=21)


def score_requests(raw: RawTables) -> list[ScoreRequest]:
    ids = list(raw.customers["customer_id"])
    return [ScoreRequest.model_validate(request_example(raw, cid, AS_OF)) for cid in ids]


@dataclass
class Review:
    client: TestClient
    state: ServingState
    tokens: dict[str, str]
    customers: list[str]

    def get(self, path: str, role: str | None = "auditor", **params: str) -> object:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.client.get(path, headers=headers, params=params)


def start_review(
    tmp_path: Path, bundle: Bundle, raw: RawTables, config: ReviewConfig | None = None
) -> Review:
    """A ServingState (real tokens, audit store, engine) with decisions of every customer
    (the first one also explained), behind a FastAPI app holding only the review router."""
    tokens_path = tmp_path / "tokens.json"
    tokens = {
        role: create_token(tokens_path, f"{role}-user", role)
        for role in ("scorer", "auditor", "admin")
    }
    state = ServingState(
        ServiceConfig(
            bundle=bundle.path,
            tokens=tokens_path,
            audit=AuditConfig(path=tmp_path / "audit.db", checkpoint_every=4),
        )
    )
    assert state.engine is not None and state.audit is not None
    requests = score_requests(raw)
    engine: Engine = state.engine
    decisions = engine.decide(requests[:1], "scorer-user", kind="explain", explain_charts=["none"])
    decisions += engine.decide(requests, "scorer-user", kind="score")
    for decision in decisions:
        state.audit.append(decision.record)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(review_router(config))
    app.dependency_overrides[get_state] = lambda: state
    return Review(TestClient(app), state, tokens, [r.customer_id for r in requests])


@pytest.fixture
def review(tmp_path: Path, trained: Bundle, raw: RawTables) -> Iterator[Review]:
    started = start_review(tmp_path, trained, raw)
    with started.client:
        yield started
    assert started.state.audit is not None
    started.state.audit.close()
