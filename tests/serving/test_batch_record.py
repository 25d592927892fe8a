"""``riskgrade score --record``: batch ratings in the audit chain, overridable like /score's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from audit import AuditConfig, SqlAuditStore
from features.io import write_raw
from management.batch_decisions import BATCH_KIND
from rating.config import default_rating_config
from riskgrade.cli import app
from serving.auth import create_token
from tests.serving.conftest import auth

runner = CliRunner(env={"COLUMNS": "200", "RISKGRADE_AUDIT_KEY": "test-key"})
NAMES = default_rating_config().scale.names


def _text(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def folder(tmp_path: Path, portfolio) -> Path:
    """The serving portfolio as a raw folder; params whose audit log is the service's."""
    write_raw(portfolio, tmp_path / "raw")
    params = {"paths": {"bundles": str(tmp_path / "b"), "audit_db": str(tmp_path / "audit.db")}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _cli(folder: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--params", str(folder / "params.yaml")])
    assert result.exit_code == 0, (result.output, result.exception)
    return _text(result.output)


def _score(folder: Path, bundle, as_of) -> tuple[pd.DataFrame, str]:
    out = folder / "scores.parquet"
    text = _cli(
        folder,
        "score",
        "--raw",
        str(folder / "raw"),
        "--as-of",
        as_of.isoformat(),
        "--out",
        str(out),
        "--bundle",
        str(bundle.path),
        "--record",
    )
    return pd.read_parquet(out).set_index("customer_id"), text


def _decisions(folder: Path) -> list:
    with SqlAuditStore(AuditConfig(path=folder / "audit.db"), key=b"test-key") as store:
        return store.export()


def _worse(grade: str) -> str:
    i = NAMES.index(grade)
    return NAMES[i + 1] if i + 1 < len(NAMES) - 1 else NAMES[i - 1]


def test_given_score_record_when_rerun_then_one_batch_decision_per_customer(folder, bundle, as_of):
    # Given a portfolio scored with --record
    scores, text = _score(folder, bundle, as_of)
    n = len(scores)
    assert f"{n} batch decision(s) recorded, 0 already there" in text
    decisions = _decisions(folder)
    # Then one batch decision per customer, in the /score record shape
    assert [d.kind for d in decisions] == [BATCH_KIND] * n
    assert sorted(d.customer_id for d in decisions) == sorted(scores.index)
    c2 = next(d for d in decisions if d.customer_id == "C00002")
    row = scores.loc["C00002"]
    response = c2.payload["response"]
    assert (c2.pd, c2.grade, c2.bundle_hash) == (row["pd"], row["grade"], row["bundle_hash"])
    assert (response["model_grade"], response["final_grade"], response["tier"]) == (
        row["model_grade"],
        row["final_grade"],
        row["tier"],
    )
    assert response["as_of"] == as_of.isoformat()
    assert [r["code"] for r in response["reasons"]] == [
        row[f"reason_{k}"] for k in range(1, 5) if isinstance(row[f"reason_{k}"], str)
    ]
    read = c2.payload["read"]
    assert read["source"] == str(folder / "raw") and len(read["records_sha256"]) == 64
    assert read["rows"]["customers"] == 1
    # When the same command runs again
    _, again = _score(folder, bundle, as_of)
    # Then nothing new is written, and the chain verifies
    assert f"0 batch decision(s) recorded, {n} already there" in again
    assert len(_decisions(folder)) == n
    assert "audit log intact" in _cli(folder, "audit", "verify")


def test_given_a_batch_rated_customer_when_overridden_then_rating_history_and_export_show_it(
    folder, bundle, as_of, service_client, tmp_path
):
    # Given the portfolio rated in a batch run only (no /score call)
    scores, _ = _score(folder, bundle, as_of)
    model_grade = str(scores.loc["C00002", "grade"])
    day = as_of.isoformat()
    with service_client() as (client, tokens, audit_db):
        assert audit_db == folder / "audit.db"
        for name, role in (("ann", "analyst"), ("bob", "approver")):
            tokens[name] = create_token(tmp_path / "tokens.json", name, role)
        # Then its rating is the batch decision's
        rating = client.get(f"/customers/C00002/rating?as_of={day}", headers=auth(tokens["ann"]))
        assert rating.status_code == 200, rating.text
        view = rating.json()
        assert (view["model_grade"], view["final_grade"]) == (model_grade, model_grade)
        assert view["decision_id"].startswith("batch-")
        # When ann proposes an override and bob approves it
        target = _worse(model_grade)
        proposed = client.post(
            "/overrides",
            json={
                "customer_id": "C00002",
                "as_of": day,
                "proposed_grade": target,
                "reason_code": "OR01",
                "comment": "recent event not in the data",
            },
            headers=auth(tokens["ann"]),
        )
        assert proposed.status_code == 201, proposed.text
        override_id = proposed.json()["override_id"]
        approved = client.post(
            f"/overrides/{override_id}/approve",
            json={"comment": "checked"},
            headers=auth(tokens["bob"]),
        )
        assert approved.status_code == 200, approved.text
        # Then the rating shows the final grade, its tier and policy
        view = client.get(
            f"/customers/C00002/rating?as_of={day}", headers=auth(tokens["auditor"])
        ).json()
        policy = default_rating_config().policy
        tier = policy.tier_of_grade(target).value
        assert (view["model_grade"], view["final_grade"], view["tier"]) == (
            model_grade,
            target,
            tier,
        )
        assert view["override"]["override_id"] == override_id
        # And the history lists the batch rating first, then the override
        history = client.get("/customers/C00002/history", headers=auth(tokens["auditor"]))
        assert [h["type"] for h in history.json()["history"]] == [
            "rating",
            "override.proposed",
            "override.approved",
        ]
        assert history.json()["history"][0]["decision_id"] == view["decision_id"]
        assert client.get("/audit/verify", headers=auth(tokens["auditor"])).json()["ok"]
    # And a second batch run applies the override in its output, recording nothing new
    again, text = _score(folder, bundle, as_of)
    assert again.loc["C00002", "final_grade"] == target
    assert "0 batch decision(s) recorded" in text
    # And the auditor's export holds the batch decision
    result = runner.invoke(
        app,
        ["audit", "export", "--customer", "C00002", "--params", str(folder / "params.yaml")],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["kind"] for r in records] == [BATCH_KIND]
    assert records[0]["payload"]["response"]["model_grade"] == model_grade


def test_given_a_batch_decision_when_replayed_then_equal_and_a_changed_source_is_refused(
    folder, bundle, as_of, portfolio
):
    # Given a batch-recorded portfolio
    _score(folder, bundle, as_of)
    decision = next(d for d in _decisions(folder) if d.customer_id == "C00002")
    # When its decision is replayed (records re-read from the recorded folder)
    text = _cli(folder, "audit", "replay", decision.decision_id)
    # Then the model gives the same answer
    for check in ("grade equal", "tier equal", "features equal", "equal"):
        assert re.search(rf"{check} \W+ True", text), (check, text)
    assert "False" not in text
    # When the source changed since (a statement of C00002 edited)
    changed = folder / "changed"
    statements = portfolio.financial_statements.copy()
    first = statements.index[statements["customer_id"] == "C00002"][0]
    statements.loc[first, "revenue"] = statements.loc[first, "revenue"] * 2
    tables = dict(portfolio.items())
    tables["financial_statements"] = statements
    from features.io import RawTables

    write_raw(RawTables(**tables), changed)
    result = runner.invoke(
        app,
        [
            "audit",
            "replay",
            decision.decision_id,
            "--raw",
            str(changed),
            "--params",
            str(folder / "params.yaml"),
        ],
    )
    # Then replay refuses, naming why, with the exit code of a result that differs
    assert result.exit_code == 1
    assert "differ from those the batch run rated" in _text(result.output)
