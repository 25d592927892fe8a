"""Customer status, reviews, contacts, terms and measures on the audit chain (SQLite and PG)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from features.covenants import CovenantConfig
from management import Actor, ConflictError, ForbiddenError
from management.crm import (
    ContactInput,
    ImportRejectedError,
    ReviewInput,
    TermsInput,
    contacts,
    import_csv,
    record_contact,
    record_review,
    record_terms,
    reviews_frame,
    terms_frame,
)
from management.errors import InvalidInputError
from management.lifecycle import (
    decide_status_change,
    pending_status_changes,
    propose_status_change,
    status_at,
    statuses_at,
)
from management.measures import (
    MeasureInput,
    active_measures,
    decide_measure,
    list_measures,
    propose_measure,
)
from rating.lifecycle import CustomerStatus, LifecycleConfig, MeasureEffect, MeasureScope
from rating.policy import Tier

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANN = Actor(name="ann", role="analyst")
BOB = Actor(name="bob", role="approver")
SUE = Actor(name="sue", role="senior_approver")
ADA = Actor(name="ada", role="admin")
SYSTEM = Actor(name="monitor", role="system")
CONFIG = LifecycleConfig()
WHY = "covenant breach confirmed at the site visit"
S = CustomerStatus


def test_watch_takes_effect_at_once_and_suspension_waits_for_a_second_person(backend):
    store = backend.open()
    # Given ann puts C1 on watch: no four eyes, effective when recorded
    watch = propose_status_change(store, ANN, "C1", S.WATCH, WHY, CONFIG, at=T0)
    assert watch.state == "effective"
    assert status_at(store, "C1", T0, CONFIG).status is S.WATCH
    # When ann proposes suspension, then it waits; ann may not approve her own
    later = T0 + timedelta(hours=1)
    suspension = propose_status_change(store, ANN, "C1", S.SUSPENDED, WHY, CONFIG, at=later)
    assert (suspension.state, suspension.required_role) == ("pending", "approver")
    assert status_at(store, "C1", later, CONFIG).status is S.WATCH
    with pytest.raises(ForbiddenError) as refused:
        decide_status_change(
            store, suspension.change_id, ANN, approve=True, comment="ok", config=CONFIG, at=later
        )
    assert refused.value.code == "four_eyes"
    # and a second proposal while one is pending is refused
    with pytest.raises(ConflictError, match="pending"):
        propose_status_change(store, ANN, "C1", S.RESTRICTED, WHY, CONFIG, at=later)
    # When bob approves, then C1 is suspended from then on, and the chain verifies
    decided_at = later + timedelta(hours=1)
    decide_status_change(
        store,
        suspension.change_id,
        BOB,
        approve=True,
        comment="agreed after the call",
        config=CONFIG,
        at=decided_at,
    )
    now = status_at(store, "C1", decided_at, CONFIG)
    assert (now.status, now.change and now.change.confirmed_by) == (S.SUSPENDED, "bob")
    assert status_at(store, "C1", later, CONFIG).status is S.WATCH  # point in time
    assert statuses_at(store, decided_at)["C1"].status_to is S.SUSPENDED
    stricter = now.stricter(CONFIG)
    assert stricter is not None and not stricter.effect.new_credit_allowed
    assert store.verify().ok
    store.close()


def test_a_warning_proposes_and_a_person_confirms(backend):
    store = backend.open()
    # Given the monitor proposes watch for C2
    proposal = propose_status_change(
        store,
        SYSTEM,
        "C2",
        S.WATCH,
        "grade fell 2 notches; covenant breach",
        CONFIG,
        source="early_warning",
        evidence={"triggers": ["grade_drop", "covenant_breach"]},
        at=T0,
    )
    assert proposal.state == "pending"
    assert [p.proposal_id for p in pending_status_changes(store, now=T0)] == [proposal.change_id]
    # When an analyst confirms it, then C2 is on watch
    decide_status_change(
        store, proposal.change_id, ANN, approve=True, comment="agreed", config=CONFIG, at=T0
    )
    assert status_at(store, "C2", T0, CONFIG).status is S.WATCH
    store.close()


def test_inadmissible_changes_are_refused_with_the_rule(backend):
    store = backend.open()
    with pytest.raises(ConflictError) as same:
        propose_status_change(store, ANN, "C3", S.NORMAL, WHY, CONFIG, at=T0)
    assert same.value.code == "same_status"
    with pytest.raises(InvalidInputError) as plan:
        propose_status_change(store, ANN, "C3", S.EXITING, WHY, CONFIG, at=T0)
    assert plan.value.code == "exit_plan_required"
    assert store.count() == 0 and not list(store.search_events().events)
    store.close()


def test_two_approvers_at_once_exactly_one_wins(backend):
    store = backend.open()
    proposal = propose_status_change(
        store, ANN, "C4", S.EXITING, WHY, CONFIG, exit_by=date(2026, 9, 30), at=T0
    )
    deciders = [Actor(name=f"approver{i}", role="approver") for i in range(4)]
    wins: list[str] = []
    losses: list[str] = []
    barrier = threading.Barrier(len(deciders))

    def decide(actor: Actor) -> None:
        barrier.wait()
        try:
            decide_status_change(
                store,
                proposal.change_id,
                actor,
                approve=True,
                comment="ok",
                config=CONFIG,
                at=T0 + timedelta(hours=1),
            )
            wins.append(actor.name)
        except ConflictError as error:
            losses.append(error.code)

    threads = [threading.Thread(target=decide, args=(a,)) for a in deciders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # (a loser that read the proposal before the winner committed may see the new status)
    assert len(wins) == 1 and len(losses) == 3
    assert set(losses) <= {"already_decided", "status_changed_meanwhile"}
    assert status_at(store, "C4", T0 + timedelta(hours=2), CONFIG).status is S.EXITING
    store.close()


def test_reviews_contacts_and_terms_read_back_as_raw_tables(backend, tmp_path: Path):
    store = backend.open()
    review = ReviewInput(
        customer_id="C5",
        review_date=date(2026, 2, 1),
        outcome="watch",
        notes="margins falling",
        next_review_date=date(2026, 5, 1),
    )
    record_review(store, ANN, review, at=T0)
    with pytest.raises(ConflictError):
        record_review(store, BOB, review, at=T0)
    record_contact(
        store,
        ANN,
        ContactInput(customer_id="C5", date=date(2026, 2, 2), channel="visit", summary="site"),
        at=T0,
    )
    with pytest.raises(InvalidInputError) as future:
        record_contact(
            store,
            ANN,
            ContactInput(customer_id="C5", date=date(2027, 1, 1), channel="call", summary="x"),
            at=T0,
        )
    assert future.value.code == "future_date"
    config = CovenantConfig()
    record_terms(
        store,
        ANN,
        "C5",
        TermsInput(effective_date=date(2025, 1, 1), template="high"),
        config,
        at=T0,
    )
    record_terms(
        store,
        ANN,
        "C5",
        TermsInput(effective_date=date(2026, 1, 1), covenants={"max_debt_ratio": 0.7}),
        config,
        at=T0,
    )
    reviews = reviews_frame(store)
    assert reviews.to_dict("records") == [
        {
            "customer_id": "C5",
            "review_date": datetime(2026, 2, 1),
            "outcome": "watch",
            "next_review_date": datetime(2026, 5, 1),
        }
    ]
    terms = terms_frame(store)
    first = terms[terms["effective_date"] == "2025-01-01"]
    assert set(first["covenant"]) == set(config.templates["high"].terms())
    assert (first["expiry_date"] == "2026-01-01").all()  # replaced by the later terms
    assert terms[terms["effective_date"] == "2026-01-01"]["threshold"].tolist() == [0.7]
    assert [c["channel"] for c in contacts(store, "C5")] == ["visit"]
    with pytest.raises(InvalidInputError, match=r"covenants\.max_debt_ratio"):
        record_terms(
            store,
            ANN,
            "C5",
            TermsInput(effective_date=date(2026, 2, 1), covenants={"max_debt_ratio": -1}),
            config,
            at=T0,
        )
    store.close()


def test_csv_import_is_all_or_nothing_with_every_problem(backend, tmp_path: Path):
    store = backend.open()
    bad = tmp_path / "reviews.csv"
    bad.write_text(
        "customer_id,review_date,outcome,notes,next_review_date\n"
        "C1,2026-01-05,satisfactory,fine,2026-07-05\n"
        "C2,2026-01-05,great,,2026-07-05\n"
        "C9,2027-01-05,watch,,2027-07-05\n"
        "C1,2026-01-05,watch,,2026-01-01\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejectedError) as rejected:
        import_csv(store, ANN, bad, "reviews", known_customers={"C1", "C2"}, at=T0)
    where = {(p.line, p.column) for p in rejected.value.problems}
    assert {(3, "outcome"), (4, "review_date"), (4, "customer_id")} <= where
    assert any(p.line == 5 for p in rejected.value.problems)
    assert not list(store.search_events().events)  # nothing written
    good = tmp_path / "contacts.csv"
    good.write_text(
        "customer_id,date,channel,summary\nC1,2026-01-05,call,rang the CFO\n"
        "C2,2026-01-06,letter,reminder sent\n",
        encoding="utf-8",
    )
    assert len(import_csv(store, ANN, good, "contacts", at=T0)) == 2
    store.close()


def test_measure_acts_once_a_senior_approves_and_ends_by_itself(backend):
    store = backend.open()
    measure = MeasureInput(
        title="Property developers: freeze",
        scope=MeasureScope(industries=("real_estate",)),
        effect=MeasureEffect(min_tier=Tier.HIGH, suspend_new_credit=True),
        reason="sector-wide payment stress after the rate rise",
        starts_on=date(2026, 3, 1),
        expires_on=date(2026, 6, 1),
    )
    view = propose_measure(store, ADA, measure, pending_days=7, at=T0)
    assert view.status == "proposed" and active_measures(store, date(2026, 3, 3)) == []
    # an approver (not senior) may not activate it
    with pytest.raises(ForbiddenError) as refused:
        decide_measure(store, view.measure.measure_id, BOB, approve=True, comment="ok", at=T0)
    assert refused.value.code == "needs_senior_approver"
    decide_measure(store, view.measure.measure_id, SUE, approve=True, comment="go", at=T0)
    assert [m.measure_id for m in active_measures(store, date(2026, 3, 3))] == [
        view.measure.measure_id
    ]
    assert active_measures(store, date(2026, 6, 1)) == []
    after = datetime(2026, 6, 2, tzinfo=UTC)
    assert [v.status for v in list_measures(store, now=after)] == ["expired"]
    store.close()


def test_monitoring_proposals_are_recorded_once_and_never_loosen(backend):
    from management.lifecycle import SystemProposal, propose_from_warnings, status_series
    from management.measures import measures_by_customer

    store = backend.open()
    propose_status_change(store, ANN, "C7", S.RESTRICTED, WHY, CONFIG, at=T0)
    items = [
        SystemProposal("C6", S.WATCH, "grade fell 2 notches", {"triggers": ["grade_drop"]}),
        SystemProposal("C7", S.WATCH, "overdue review", {"triggers": ["review_overdue"]}),
    ]
    # When the monitor proposes watch for C6 and C7 (C7 is restricted already)
    first = propose_from_warnings(store, items, CONFIG, actor=SYSTEM, at=T0)
    # Then only C6's is recorded, pending, and a second run adds nothing
    assert [(p.customer_id, p.state) for p in first] == [("C6", "pending")]
    assert propose_from_warnings(store, items, CONFIG, actor=SYSTEM, at=T0) == []
    assert status_series(store, T0) == {"C7": "restricted"}
    # And measures resolve to the customers they cover
    measure = MeasureInput(
        title="North freeze",
        scope=MeasureScope(regions=("north",)),
        effect=MeasureEffect(max_credit_limit_factor=0.5),
        reason="regional flood damage to collateral",
        starts_on=date(2026, 3, 1),
        expires_on=date(2026, 6, 1),
    )
    view = propose_measure(store, ADA, measure, pending_days=7, at=T0)
    decide_measure(store, view.measure.measure_id, SUE, approve=True, comment="go", at=T0)
    segments = [("C6", {"region": "north"}), ("C7", {"region": "south"})]
    covered = measures_by_customer(store, date(2026, 3, 3), segments)
    assert [(cid, m.measure_id) for cid, m in covered] == [("C6", view.measure.measure_id)]
    store.close()


def test_a_runs_warnings_are_recorded_once_per_customer(backend):
    from management.warnings import WarningItem, record_warnings, warnings_of

    store = backend.open()
    items = [
        WarningItem(
            "C8",
            "medium",
            "restrict",
            ("covenant_breach",),
            ("max_debt_ratio: 0.93 above 0.85",),
            "restricted",
            {"grade": "6", "tier": "high"},
        )
    ]
    assert record_warnings(store, "run-1", date(2026, 2, 28), items, actor=SYSTEM, at=T0) == 1
    # recording the run again adds nothing; another run adds its own
    assert record_warnings(store, "run-1", date(2026, 2, 28), items, actor=SYSTEM, at=T0) == 0
    assert record_warnings(store, "run-2", date(2026, 3, 31), items, actor=SYSTEM, at=T0) == 1
    found = warnings_of(store, "C8")
    assert [w["run_id"] for w in found] == ["run-2", "run-1"]
    assert found[0]["details"] == ["max_debt_ratio: 0.93 above 0.85"]
    assert found[0]["grade"] == "6"
    store.close()
