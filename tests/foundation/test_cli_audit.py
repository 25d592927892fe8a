"""`riskgrade audit` on a decision log written by the scoring engine."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from audit import AuditConfig, open_audit_store
from rating.model import RatingModel
from riskgrade.cli import app
from serving.batch import request_example
from serving.engine import Engine
from serving.schemas import ScoreRequest
from tests.audit.cases import rated_records
from tests.serving.factory import AS_OF, make_bundle, make_portfolio

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace: params.yaml, the bundle archived by hash, an audit log of 3 decisions."""
    root = tmp_path_factory.mktemp("audit")
    bundle = make_bundle(root / "bundle")
    shutil.copytree(bundle.path, root / "bundles" / bundle.bundle_hash)
    engine = Engine(RatingModel(bundle))
    portfolio = make_portfolio(6, seed=4)
    store = open_audit_store(AuditConfig(path=root / "audit.db"))
    for customer in portfolio.customers["customer_id"].iloc[:3]:
        body = request_example(portfolio, customer, AS_OF)
        (decision,) = engine.decide([ScoreRequest.model_validate(body)], caller="tester")
        store.append(decision.record)
    store.close()
    params = {"paths": {"bundles": str(root / "bundles"), "audit_db": str(root / "audit.db")}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _run(root: Path, *args: str) -> object:
    return runner.invoke(app, ["audit", *args, "--params", str(root / "params.yaml")])


def test_verify_show_replay_export(audited: Path) -> None:
    # Given an intact log, when verified, then exit 0 with the record count
    result = _run(audited, "verify")
    assert result.exit_code == 0, result.output
    assert "intact: 3 records" in result.output
    # When one record is shown, then it is the stored JSON with its hash
    shown = json.loads(_run(audited, "show", "2").stdout)
    assert shown["id"] == 2 and len(shown["hash"]) == 64
    # When it is replayed with its recorded bundle, then the result is equal
    replayed = _run(audited, "replay", shown["decision_id"])
    assert replayed.exit_code == 0, replayed.output
    assert "equal" in replayed.output and "False" not in replayed.output
    # When a date range is exported, then every decision comes out as one JSON line
    exported = _run(audited, "export", "--from", "2000-01-01", "--to", "2100-01-01")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3]


def test_verify_names_the_first_edited_record(audited: Path, tmp_path: Path) -> None:
    # Given a copy of the log with one byte of record 2 changed behind the triggers' back
    db = tmp_path / "audit.db"
    shutil.copy(audited / "audit.db", db)
    with sqlite3.connect(db) as conn:
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers.fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("UPDATE decisions SET pd = pd + 1e-9 WHERE id = 2")
    # When verified, then exit 1 naming record 2
    result = _run(audited, "verify", "--db", str(db))
    assert result.exit_code == 1
    assert "record 2" in result.output


def test_replay_without_the_archived_bundle_is_a_clear_error(audited: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {"paths": {"bundles": str(tmp_path / "none"), "audit_db": str(audited / "audit.db")}}
        )
    )
    result = runner.invoke(app, ["audit", "replay", "1", "--params", str(params)])
    assert result.exit_code != 0
    assert "not in the archive" in str(result.exception)


@pytest.mark.parametrize("command", ["show", "replay"])
def test_given_an_unknown_record_when_shown_or_replayed_then_exit_2_naming_it(
    audited: Path, command: str
) -> None:
    from tests.cli_helpers import run_main

    code, _, stderr = run_main("audit", command, "999", "--params", str(audited / "params.yaml"))
    assert code == 2 and "Traceback" not in stderr
    assert "no audit record with id 999" in stderr


@pytest.fixture(scope="module")
def rated_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml and an audit log of decisions on three rating dates (see tests.audit.cases)."""
    root = tmp_path_factory.mktemp("rated")
    with open_audit_store(AuditConfig(path=root / "audit.db")) as store:
        store.append_many(rated_records())
    (root / "params.yaml").write_text(
        yaml.safe_dump({"paths": {"audit_db": str(root / "audit.db")}})
    )
    return root


def _exported_ids(root: Path, *args: str) -> list[int]:
    result = _run(root, "export", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def test_given_decisions_when_exported_by_rating_date_then_as_of_not_logging_time(
    rated_log: Path,
) -> None:
    # Given decisions rated on 2024-03-31, 2024-06-30 (twice) and 2024-09-30, all logged today
    today = str(datetime.now(UTC).date())
    # When exported by rating date, then the decisions rated in that period
    assert _exported_ids(rated_log, "--rated-from", "2024-06-01", "--rated-to", "2024-06-30") == [
        2,
        3,
    ]
    # And with a customer, only theirs; a customer alone gives all of theirs
    assert _exported_ids(rated_log, "--rated-from", "2024-06-01", "--customer", "A") == [3, 4]
    assert _exported_ids(rated_log, "--customer", "B") == [2, 5]
    # When exported by logging day (new name and the old --from/--to alias), then all of today
    assert _exported_ids(rated_log, "--logged-from", today, "--logged-to", today) == [1, 2, 3, 4, 5]
    assert _exported_ids(rated_log, "--from", today, "--to", today) == [1, 2, 3, 4, 5]
    assert _exported_ids(rated_log, "--logged-to", "2024-06-30") == []


@pytest.mark.parametrize(
    "args,message",
    [
        ((), "name what to export"),
        (("--rated-from", "2024-07-01", "--rated-to", "2024-06-30"), "--rated-to must not be"),
        (("--from", "2024-07-01", "--to", "2024-06-30"), "--logged-to must not be"),
        (("--rated-from", "30/06/2024"), "not a date"),
    ],
)
def test_given_bad_export_filters_when_exported_then_exit_2_naming_the_option(
    rated_log: Path, args: tuple[str, ...], message: str
) -> None:
    result = runner.invoke(
        app, ["audit", "export", *args, "--params", str(rated_log / "params.yaml")]
    )
    assert result.exit_code == 2
    assert message in result.output
