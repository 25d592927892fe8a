"""``riskgrade score`` applies data sufficiency and the judgement recorded in the audit store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from audit import AuditConfig, SqlAuditStore
from features.io import RawTables, write_raw
from management import Actor
from management.judgement import (
    AssessmentInput,
    OverrideInput,
    RatingRules,
    decide_override,
    propose_override,
    record_assessment,
)
from rating.config import default_rating_config
from rating.output import POLICY_PREFIX, judged_column_names
from riskgrade.cli import app
from tests.management.conftest import scored

runner = CliRunner(env={"COLUMNS": "200"})
AT = datetime.now(UTC) - timedelta(hours=1)
WEAK = {
    "management": "weak",
    "market_position": "poor",
    "governance": "weak",
    "transparency": "poor",
    "collateral": "weak",
    "due_diligence": "material",
}


@pytest.fixture
def folder(tmp_path: Path, portfolio) -> Path:
    """The serving portfolio plus C09999, onboarded with no statement, facility or payment."""
    customers = portfolio.customers
    bare = customers.iloc[[0]].assign(customer_id="C09999")
    tables = {**dict(portfolio.items()), "customers": pd.concat([customers, bare])}
    write_raw(RawTables(**tables), tmp_path / "raw")
    params = {"paths": {"bundles": str(tmp_path / "b"), "audit_db": str(tmp_path / "audit.db")}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _score(folder: Path, bundle, as_of, out: Path) -> pd.DataFrame:
    args = ["score", "--raw", str(folder / "raw"), "--as-of", as_of.isoformat()]
    args += [
        "--out",
        str(out),
        "--bundle",
        str(bundle.path),
        "--params",
        str(folder / "params.yaml"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return pd.read_parquet(out).set_index("customer_id")


def test_given_judgement_in_the_store_when_batch_scored_then_final_grades_apply(
    folder, bundle, as_of
):
    # Given a first batch run without any judgement: final grade = model grade, and the bare
    # customer insufficient, provisional
    first = _score(folder, bundle, as_of, folder / "before.parquet")
    assert tuple(first.reset_index().columns) == judged_column_names()
    assert (first["final_grade"] == first["grade"]).loc[first.index != "C09999"].all()
    bare = first.loc["C09999"]
    assert bool(bare["insufficient_data"]) and bool(bare["provisional"])
    assert bare["tier"] in ("high", "restricted") and "DS01" in bare["sufficiency_reasons"]
    assert not first.drop(index="C09999")["insufficient_data"].any()
    # And people's judgement recorded: C00002 scored and overridden, another assessed weak
    names = default_rating_config().scale.names
    movable = first.drop(index=["C00002", "C09999"])
    weak = str(movable.index[movable["grade"].map(names.index) <= 6][0])
    config = default_rating_config()
    rules = RatingRules(config.scale, config.policy, config.judgement)
    store = SqlAuditStore(AuditConfig(path=folder / "audit.db"))
    row = first.loc["C00002"]
    store.append(scored("C00002", as_of, row["grade"], row["tier"], pd=float(row["pd"])))
    i = names.index(row["grade"])
    target = names[i + 1] if i + 2 < len(names) else names[i - 1]  # never the default grade
    ann, bob = Actor(name="ann", role="analyst"), Actor(name="bob", role="approver")
    item = OverrideInput("C00002", as_of, target, "OR01", "recent event not in the data")
    proposed = propose_override(store, rules, ann, item, at=AT)
    decide_override(store, proposed.proposal_id, bob, approve=True, comment="confirmed")
    record_assessment(store, rules, ann, AssessmentInput(weak, as_of, WEAK), at=AT)
    store.close()
    # When the portfolio is scored again
    second = _score(folder, bundle, as_of, folder / "after.parquet")
    # Then C00002 gets the override's grade, tier and policy; the other the assessment's notches
    c2 = second.loc["C00002"]
    tier = config.policy.tier_of_grade(target)
    assert (c2["model_grade"], c2["final_grade"], c2["tier"]) == (row["grade"], target, tier)
    assert c2["override_id"] == proposed.proposal_id
    policy = config.policy.policy_of_tier(tier).model_dump()
    assert {k: c2[POLICY_PREFIX + k] for k in policy} == policy
    c4 = second.loc[weak]
    assert c4["qualitative_notches"] == -2 and c4["assessment_id"]
    assert names.index(c4["final_grade"]) > names.index(c4["grade"])
    # And everyone else is unchanged
    others = second.index.difference(["C00002", weak])
    pd.testing.assert_frame_equal(second.loc[others], first.loc[others])


def test_given_a_status_and_a_measure_in_the_store_when_batch_scored_then_policy_tightens(
    folder, bundle, as_of
):
    from management.lifecycle import decide_status_change, propose_status_change
    from management.measures import MeasureInput, decide_measure, propose_measure
    from rating.lifecycle import CustomerStatus, MeasureEffect, MeasureScope

    first = _score(folder, bundle, as_of, folder / "before.parquet")
    assert (first["status"] == "normal").all() and (first["measures"] == "").all()
    lifecycle = default_rating_config().lifecycle
    store = SqlAuditStore(AuditConfig(path=folder / "audit.db"))
    ann, bob = Actor(name="ann", role="analyst"), Actor(name="bob", role="approver")
    sue, ada = Actor(name="sue", role="senior_approver"), Actor(name="ada", role="admin")
    # Given C00002 suspended (four eyes) and a measure on C00003's industry capping limits
    why = "covenant breach confirmed at the site visit"
    before = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) - timedelta(days=2)
    change = propose_status_change(
        store, ann, "C00002", CustomerStatus.SUSPENDED, why, lifecycle, at=before
    )
    decide_status_change(
        store, change.change_id, bob, approve=True, comment="ok", config=lifecycle, at=before
    )
    industry = str(first.loc["C00003", "industry"]) if "industry" in first else None
    scope = (
        MeasureScope(customer_ids=("C00003",))
        if industry is None
        else MeasureScope(industries=(industry,))
    )
    measure = MeasureInput(
        title="Sector cap",
        scope=scope,
        effect=MeasureEffect(max_credit_limit_factor=0.1),
        reason="sector-wide payment stress",
        starts_on=as_of - timedelta(days=30),
        expires_on=as_of + timedelta(days=30),
    )
    view = propose_measure(store, ada, measure, pending_days=30, at=before)
    decide_measure(store, view.measure.measure_id, sue, approve=True, comment="go", at=before)
    store.close()
    # When the portfolio is scored again
    second = _score(folder, bundle, as_of, folder / "after.parquet")
    # Then C00002 is suspended with no new credit, C00003 carries the measure and the cap
    c2 = second.loc["C00002"]
    assert c2["status"] == "suspended" and not c2[POLICY_PREFIX + "new_credit_allowed"]
    c3 = second.loc["C00003"]
    assert c3["measures"] == view.measure.measure_id
    assert c3[POLICY_PREFIX + "credit_limit_factor"] <= 0.1
    assert (second["grade"] == first["grade"]).all()  # the model's grades never move
