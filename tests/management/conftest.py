"""Management tests run on the audit store of both databases (fixtures of tests/audit)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from audit import DecisionRecord
from management.judgement import RatingRules
from rating.config import default_rating_config
from tests.audit.conftest import backend, filled  # noqa: F401  (fixtures: SQLite and PostgreSQL)


@pytest.fixture(scope="session")
def rules() -> RatingRules:
    """The project's scale, policy and judgement settings (params.yaml)."""
    config = default_rating_config()
    return RatingRules(config.scale, config.policy, config.judgement)


def scored(
    customer_id: str,
    as_of: date,
    grade: str,
    tier: str,
    *,
    pd: float = 0.02,
    hard_rules: list[dict[str, str]] | None = None,
    sufficiency: dict[str, Any] | None = None,
) -> DecisionRecord:
    """A decision as ``/score`` records it (the parts the rating chain reads)."""
    response: dict[str, Any] = {
        "decision_id": uuid.uuid4().hex,
        "customer_id": customer_id,
        "as_of": as_of.isoformat(),
        "pd": pd,
        "grade": grade,
        "tier": tier,
        "hard_rules": hard_rules or [],
        "default": None,
    }
    if sufficiency is not None:
        response["data_sufficiency"] = sufficiency
    return DecisionRecord(
        decision_id=response["decision_id"],
        kind="score",
        caller="scorer",
        customer_id=customer_id,
        model_version="1",
        bundle_hash="ab" * 32,
        policy_version="p1",
        pd=pd,
        grade=grade,
        tier=tier,
        request_body=b"{}",
        payload={"features": {}, "flags": {}, "response": response},
    )
