"""``riskgrade reviews|contacts import``, ``status list``, ``measures list`` end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from audit import AuditConfig, SqlAuditStore
from features.io import write_raw
from management import Actor
from management.crm import reviews_frame
from management.lifecycle import decide_status_change, propose_status_change
from management.measures import MeasureInput, decide_measure, propose_measure
from rating.lifecycle import CustomerStatus, LifecycleConfig, MeasureEffect, MeasureScope
from rating.policy import Tier
from tests.cli_helpers import run_main
from tests.serving.factory import make_portfolio

ANN = Actor(name="ann", role="analyst")
BOB = Actor(name="bob", role="approver")
ADA = Actor(name="ada", role="admin")
SUE = Actor(name="sue", role="senior_approver")
CONFIG = LifecycleConfig()
WHY = "covenant breach confirmed at the site visit"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_raw(make_portfolio(6, seed=5), tmp_path / "raw")
    paths = {"raw": str(tmp_path / "raw"), "audit_db": str(tmp_path / "audit.db")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"paths": paths}))
    return tmp_path


def _params(home: Path) -> tuple[str, str]:
    return ("--params", str(home / "params.yaml"))


def _events(home: Path) -> int:
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        return store.search_events().total


def _text(output: str) -> str:
    return " ".join(output.split())


def test_given_clean_files_when_imported_then_every_row_recorded_by_the_person(home):
    # Given two reviews and one contact of customers in the raw folder
    (home / "reviews.csv").write_text(
        "customer_id,review_date,outcome,notes,next_review_date\n"
        "C00001,2024-05-02,satisfactory,annual review,2025-05-02\n"
        "C00002,2024-05-03,watch,weaker margins,2024-11-03\n",
        encoding="utf-8",
    )
    (home / "contacts.csv").write_text(
        "customer_id,date,channel,summary\nC00003,2024-05-04,call,rang the CFO\n",
        encoding="utf-8",
    )
    raw = ("--raw", str(home / "raw"))
    # When imported
    code, out, err = run_main(
        "reviews", "import", str(home / "reviews.csv"), "--by", "ann", *raw, *_params(home)
    )
    assert code == 0, err
    assert "recorded 2 reviews" in _text(out) and "by ann" in _text(out)
    code, out, err = run_main(
        "contacts", "import", str(home / "contacts.csv"), "--by", "ann", *_params(home)
    )
    assert code == 0, err
    assert "recorded 1 contacts" in _text(out)
    # Then every row is an event by ann, and reviews read back as the raw reviews table
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        events = store.search_events().events
        assert sorted(e.kind for e in events) == [
            "contact.recorded",
            "review.recorded",
            "review.recorded",
        ]
        assert {e.actor for e in events} == {"ann"}
        reviews = reviews_frame(store)
    assert sorted(reviews["customer_id"]) == ["C00001", "C00002"]
    assert sorted(reviews["outcome"]) == ["satisfactory", "watch"]


def test_given_a_bad_file_when_imported_then_every_problem_tabled_and_nothing_written(home):
    # Given a good row, a bad outcome, a customer not in the raw folder with a future date,
    # a next review before the review, and a second review of a customer the same day
    future = (date.today() + timedelta(days=3)).isoformat()
    (home / "bad.csv").write_text(
        "customer_id,review_date,outcome,notes,next_review_date\n"
        "C00001,2024-05-02,satisfactory,fine,2025-05-02\n"
        "C00002,2024-05-02,great,,2025-05-02\n"
        f"NOPE,{future},watch,,2099-01-01\n"
        "C00003,2024-05-02,watch,,2024-01-01\n"
        "C00001,2024-05-02,watch,,2024-11-02\n",
        encoding="utf-8",
    )
    # When imported with the raw folder's customers
    code, out, err = run_main(
        "reviews",
        "import",
        str(home / "bad.csv"),
        "--by",
        "ann",
        "--raw",
        str(home / "raw"),
        *_params(home),
    )
    # Then exit 2 with one error line and a table of every problem: line, column, problem
    text = _text(err)
    assert code == 2 and "Traceback" not in err, err
    assert "5 problem(s)" in text and "nothing was written" in text
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {home / 'bad.csv'}: 5 problem(s); nothing was written"
    ]
    assert "│ 3 │ outcome │ Input should be" in text
    assert "│ 4 │ review_date │" in text and "is after today" in text
    assert "│ 4 │ customer_id │ unknown customer 'NOPE'" in text
    assert "│ 5 │ row │" in text and "next_review_date 2024-01-01 must be after" in text
    assert "│ 6 │ review_date │ second review that day" in text
    assert "recorded" not in _text(out)
    # And nothing is written
    assert _events(home) == 0


def test_given_a_missing_file_or_no_name_when_imported_then_exit_2_in_one_line(home):
    code, _, err = run_main(
        "contacts", "import", str(home / "none.csv"), "--by", "ann", *_params(home)
    )
    assert code == 2 and "Traceback" not in err and "none.csv" in _text(err)
    assert not (home / "audit.db").exists()
    (home / "c.csv").write_text("customer_id,date,channel,summary\nC00001,2024-05-04,call,x\n")
    code, _, err = run_main("contacts", "import", str(home / "c.csv"), *_params(home))
    assert code == 2 and "--by" in _text(err)
    code, _, err = run_main("contacts", "import", str(home / "c.csv"), "--by", " ", *_params(home))
    assert code == 2 and "name the person who recorded them" in _text(err)
    assert not (home / "audit.db").exists()


def test_given_a_confirmed_suspension_when_statuses_listed_then_shown_with_the_confirmer(home):
    # Given C00001 on watch (no four eyes) and C00002 suspended after bob confirmed ann's
    # proposal, and C00003's suspension still waiting
    at = datetime.now(UTC) - timedelta(hours=2)
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        propose_status_change(store, ANN, "C00001", CustomerStatus.WATCH, WHY, CONFIG, at=at)
        suspension = propose_status_change(
            store, ANN, "C00002", CustomerStatus.SUSPENDED, WHY, CONFIG, at=at
        )
        decide_status_change(
            store, suspension.change_id, BOB, approve=True, comment="agreed", config=CONFIG
        )
        waiting = propose_status_change(
            store, ANN, "C00003", CustomerStatus.SUSPENDED, WHY, CONFIG, at=at
        )
    # When statuses are listed
    code, out, err = run_main("status", "list", *_params(home))
    # Then the suspended and the watched customer show, with who confirmed the suspension
    assert code == 0, err
    text = _text(out)
    assert "C00002 suspended" in text and "bob" in text
    assert "C00001 watch" in text and "C00003" not in text
    assert "2 customer(s) not normal" in text
    # And as of a day before, nobody is listed
    before = (at - timedelta(days=1)).date().isoformat()
    code, out, err = run_main("status", "list", "--as-of", before, *_params(home))
    assert code == 0, err
    assert "0 customer(s) not normal" in _text(out) and "C00002" not in _text(out)
    # And the pending list shows C00003's suspension, its proposer and the role it needs
    code, out, err = run_main("status", "list", "--pending", *_params(home))
    assert code == 0, err
    text = _text(out)
    assert f"{waiting.change_id[:8]} C00003 normal suspended ann" in text
    assert "approver" in text and "1 pending change(s)" in text
    assert suspension.change_id[:8] not in text
    # And a bad date or --pending with --as-of is a usage error
    code, _, err = run_main("status", "list", "--as-of", "31/12/2024", *_params(home))
    assert code == 2 and "is not a date" in _text(err)
    code, _, err = run_main("status", "list", "--pending", "--as-of", before, *_params(home))
    assert code == 2 and "leave out --as-of" in _text(err)


def test_given_an_approved_measure_when_listed_then_active_with_scope_effect_and_people(home):
    # Given one measure approved by a senior approver and one still proposed
    today = date.today()
    with SqlAuditStore(AuditConfig(path=home / "audit.db")) as store:
        freeze = propose_measure(
            store,
            ADA,
            MeasureInput(
                title="Developers freeze",
                scope=MeasureScope(industries=("real_estate",)),
                effect=MeasureEffect(min_tier=Tier.HIGH, suspend_new_credit=True),
                reason="sector-wide payment stress after the rate rise",
                starts_on=today - timedelta(days=1),
                expires_on=today + timedelta(days=90),
            ),
            pending_days=7,
        )
        decide_measure(store, freeze.measure.measure_id, SUE, approve=True, comment="go")
        cap = propose_measure(
            store,
            ADA,
            MeasureInput(
                title="Port cap",
                scope=MeasureScope(customer_ids=("C00004",)),
                effect=MeasureEffect(max_credit_limit_factor=0.5),
                reason="port closure cuts the customer's sales",
                starts_on=today,
                expires_on=today + timedelta(days=30),
            ),
            pending_days=7,
        )
    # When the active measures are listed
    code, out, err = run_main("measures", "list", "--status", "active", *_params(home))
    # Then the approved one shows with its scope, effect, proposer and approver
    assert code == 0, err
    text = _text(out)
    assert freeze.measure.measure_id in text and cap.measure.measure_id not in text
    for part in ("Developers freeze", "active", "industries real_estate", "tier ≥ high", "sue"):
        assert part in text, part
    assert f"{freeze.measure.measure_id} active {today - timedelta(days=1)} ada" in text
    assert f"Developers freeze {today + timedelta(days=90)} sue" in text
    assert "1 measure(s)" in text
    # And all of them include the proposed one, without an approver
    code, out, err = run_main("measures", "list", *_params(home))
    assert code == 0, err
    text = _text(out)
    assert f"{cap.measure.measure_id} proposed {today} ada customers C00004" in text
    assert "limit × 0.5" in text and "2 measure(s)" in text
    # And an unknown status is a usage error
    code, _, err = run_main("measures", "list", "--status", "live", *_params(home))
    assert code == 2 and "Traceback" not in err
