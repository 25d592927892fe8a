"""``riskgrade assessments import``, ``overrides list``, ``judgement export`` end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from audit import AuditConfig, SqlAuditStore
from features.io import write_raw
from management import Actor
from management.judgement import OverrideInput, RatingRules, decide_override, propose_override
from rating.config import default_rating_config
from tests.cli_helpers import run_main
from tests.management.conftest import scored
from tests.serving.factory import make_portfolio

DAY = date(2024, 6, 30)
ANSWERS = {
    "management": "strong",
    "market_position": "adequate",
    "governance": "adequate",
    "transparency": "strong",
    "collateral": "weak",
    "due_diligence": "clean",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_raw(make_portfolio(6, seed=5), tmp_path / "raw")
    paths = {"raw": str(tmp_path / "raw"), "audit_db": str(tmp_path / "audit.db")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"paths": paths}))
    return tmp_path


def _events(home: Path) -> int:
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        return store.search_events().total


def test_given_a_clean_csv_when_imported_then_every_row_recorded(home):
    rows = [{"customer_id": "C00001", "as_of": DAY, **ANSWERS, "comment": "visit"}]
    rows.append({"customer_id": "C00002", "as_of": DAY, **ANSWERS, "comment": ""})
    pd.DataFrame(rows).to_csv(home / "a.csv", index=False)
    code, out, err = run_main(
        "assessments",
        "import",
        str(home / "a.csv"),
        "--analyst",
        "ann",
        "--params",
        str(home / "params.yaml"),
    )
    assert code == 0, err
    assert "recorded 2 assessments" in " ".join(out.split())
    assert _events(home) == 2


def test_given_a_bad_csv_when_imported_then_every_problem_listed_and_nothing_written(home):
    # Given rows with an unknown factor column, an unknown answer, an unknown customer, a
    # future date and a non-date
    future = (date.today() + timedelta(days=3)).isoformat()
    rows = [
        {"customer_id": "C00001", "as_of": DAY, **ANSWERS, "vibes": "good"},
        {"customer_id": "C00001", "as_of": DAY, **{**ANSWERS, "management": "great"}, "vibes": ""},
        {"customer_id": "NOPE", "as_of": DAY, **ANSWERS, "vibes": ""},
        {"customer_id": "C00002", "as_of": future, **ANSWERS, "vibes": ""},
        {"customer_id": "C00002", "as_of": "30/06/2024", **ANSWERS, "vibes": ""},
    ]
    pd.DataFrame(rows).to_csv(home / "bad.csv", index=False)
    # When imported
    code, _, err = run_main(
        "assessments",
        "import",
        str(home / "bad.csv"),
        "--analyst",
        "ann",
        "--params",
        str(home / "params.yaml"),
    )
    # Then exit 2 with one report naming every problem, and nothing recorded
    text = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert "5 problem(s), nothing imported" in text
    assert "column 'vibes': unknown factor" in text
    assert "row 3: factor 'management' has no answer 'great'" in text
    assert "row 4: unknown customer 'NOPE'" in text
    assert f"row 5: as_of {future} is in the future" in text
    assert "row 6: as_of '30/06/2024' is not a date" in text
    assert not (home / "audit.db").exists() or _events(home) == 0


def test_given_overrides_when_listed_and_exported_then_table_and_files(home):
    # Given one pending and one approved override in the store
    config = default_rating_config()
    rules = RatingRules(config.scale, config.policy, config.judgement)
    at = datetime.now(UTC) - timedelta(minutes=5)
    ann, bob = Actor(name="ann", role="analyst"), Actor(name="bob", role="approver")
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        for cid in ("C00001", "C00002"):
            store.append(scored(cid, DAY, "5", "medium"))
        first = propose_override(
            store,
            rules,
            ann,
            OverrideInput("C00001", DAY, "4", "OR02", "group support letter"),
            at=at,
        )
        second = propose_override(
            store, rules, ann, OverrideInput("C00002", DAY, "6", "OR05", "new CEO, unproven"), at=at
        )
        decide_override(store, second.proposal_id, bob, approve=True, comment="agreed, watch it")
    params = ("--params", str(home / "params.yaml"))
    # When the pending ones are listed
    code, out, err = run_main("overrides", "list", "--status", "pending", *params)
    text = " ".join(out.split())
    # Then only the pending one shows, with its proposer
    assert code == 0, err
    assert first.proposal_id[:8] in text and second.proposal_id[:8] not in text
    assert "C00001" in text and "5→4" in text and "1 override(s)" in text
    code, out, err = run_main("overrides", "list", "--status", "later", *params)
    assert code == 2
    # And the export holds assessments, overrides with decisions, and the chain's events
    code, out, err = run_main("judgement", "export", "--out", str(home / "x"), *params)
    assert code == 0, err
    overrides = pd.read_csv(home / "x" / "overrides.csv").set_index("override_id")
    approved = overrides.loc[second.proposal_id]
    assert (approved["proposer"], approved["decided_by"], approved["decision_comment"]) == (
        "ann",
        "bob",
        "agreed, watch it",
    )
    events = pd.read_csv(home / "x" / "events.csv")
    assert list(events["kind"]) == ["override.proposed", "override.proposed", "override.approved"]
    code, _, err = run_main(
        "judgement", "export", "--out", str(home / "p"), "--format", "parquet", *params
    )
    assert code == 0, err
    assert len(pd.read_parquet(home / "p" / "overrides.parquet")) == 2


def test_given_an_overdue_proposal_when_expired_then_recorded_once(home):
    # Given a proposal made 31 days ago (pending_days is 30) and a fresh one
    config = default_rating_config()
    rules = RatingRules(config.scale, config.policy, config.judgement)
    ann = Actor(name="ann", role="analyst")
    old = datetime.now(UTC) - timedelta(days=31)
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        store.append(scored("C00001", DAY, "5", "medium"))
        item = OverrideInput("C00001", DAY, "4", "OR02", "group support letter")
        overdue = propose_override(store, rules, ann, item, at=old)
        fresh = propose_override(store, rules, ann, item)
    params = ("--params", str(home / "params.yaml"))
    # When expired twice
    code, out, err = run_main("overrides", "expire", *params)
    again = run_main("overrides", "expire", *params)
    # Then only the overdue one expires, by the system, once
    assert code == 0, err
    text = " ".join(out.split())
    assert f"expired override {overdue.proposal_id}" in text and "1 proposal(s) expired" in text
    assert "0 proposal(s) expired" in " ".join(again[1].split())
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        expiry = store.event(f"decision:{overdue.proposal_id}")
        assert (expiry.kind, expiry.actor) == ("override.expired", "riskgrade")
    listed = " ".join(run_main("overrides", "list", "--status", "pending", *params)[1].split())
    assert fresh.proposal_id[:8] in listed and overdue.proposal_id[:8] not in listed
