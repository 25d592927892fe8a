"""The generic four-eyes mechanism on the audit chain, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from management import (
    Actor,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Proposal,
    ProposalStatus,
    decide,
    expire_due,
    get_proposal,
    list_proposals,
    propose,
)
from rating.judgement import Role

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANN = Actor(name="ann", role="analyst")
BOB = Actor(name="bob", role="approver")
SUE = Actor(name="sue", role="senior_approver")


def _proposal(**update: object) -> Proposal:
    values: dict[str, object] = {
        "kind": "override",
        "subject": "C001",
        "payload": {"proposed_grade": "3"},
        "required_role": Role.APPROVER,
        "comment": "parent guarantee signed last week",
    }
    return Proposal(**{**values, **update})  # type: ignore[arg-type]


def test_given_a_proposal_when_another_approver_approves_then_approved_on_the_chain(backend):
    # Given ann's proposal
    store = backend.open()
    proposed = propose(store, _proposal(), ANN, at=T0, proposal_id="p1")
    assert proposed.status is ProposalStatus.PENDING and proposed.proposer == "ann"
    # When bob approves it
    decided = decide(store, "p1", BOB, approve=True, comment="checked the deed", at=T0)
    # Then it is approved by bob, and both events are in a valid chain with who and why
    assert (decided.status, decided.decided_by, decided.decision_comment) == (
        ProposalStatus.APPROVED,
        "bob",
        "checked the deed",
    )
    assert get_proposal(store, "p1") == decided
    kinds = [(e.kind, e.actor, e.subject) for e in reversed(store.search_events().events)]
    assert kinds == [("override.proposed", "ann", "C001"), ("override.approved", "bob", "C001")]
    assert store.event("decision:p1").reason == "checked the deed"
    assert store.verify().ok
    store.close()


def test_given_a_proposal_when_its_proposer_decides_then_four_eyes_and_nothing_recorded(backend):
    store = backend.open()
    propose(store, _proposal(), BOB, at=T0, proposal_id="p1")
    for approve in (True, False):
        with pytest.raises(ForbiddenError) as caught:
            decide(
                store,
                "p1",
                Actor(name="BOB", role="senior_approver"),
                approve=approve,
                comment="mine",
            )
        assert caught.value.code == "four_eyes"
    assert store.search_events().total == 1
    assert get_proposal(store, "p1").status is ProposalStatus.PENDING
    store.close()


def test_given_roles_when_deciding_then_rank_and_required_role_apply(backend):
    # Given a proposal needing a senior approver
    store = backend.open()
    propose(store, _proposal(required_role=Role.SENIOR_APPROVER), ANN, at=T0, proposal_id="p1")
    # When an analyst or a plain approver decides, they are refused with the rule's code
    with pytest.raises(ForbiddenError, match="analyst") as analyst:
        decide(store, "p1", Actor(name="al", role="analyst"), approve=True, comment="ok")
    with pytest.raises(ForbiddenError) as approver:
        decide(store, "p1", BOB, approve=False, comment="no")
    with pytest.raises(ForbiddenError) as scorer:
        decide(store, "p1", Actor(name="sc", role="scorer"), approve=True, comment="ok")
    assert (analyst.value.code, approver.value.code, scorer.value.code) == (
        "not_an_approver",
        "needs_senior_approver",
        "not_an_approver",
    )
    # Then a senior approver may, and the role is recorded
    done = decide(store, "p1", SUE, approve=False, comment="not convinced")
    assert (done.status, done.decider_role) == (ProposalStatus.REJECTED, "senior_approver")
    store.close()


def test_given_a_decided_proposal_when_decided_again_then_conflict_naming_the_first(backend):
    store = backend.open()
    propose(store, _proposal(), ANN, at=T0, proposal_id="p1")
    decide(store, "p1", BOB, approve=False, comment="weak case", at=T0)
    with pytest.raises(ConflictError, match="rejected \\(by bob") as caught:
        decide(store, "p1", SUE, approve=True, comment="override it")
    assert caught.value.code == "already_decided"
    assert store.search_events().total == 2
    store.close()


def test_given_two_approvers_at_once_when_deciding_then_exactly_one_wins(backend):
    # Given one proposal and four approvers, each with its own connection, released together
    store = backend.open()
    propose(store, _proposal(), ANN, at=T0, proposal_id="p1")
    deciders = [Actor(name=f"appr{n}", role="approver") for n in range(4)]
    stores = [backend.open() for _ in deciders]
    barrier = threading.Barrier(len(deciders))
    won: list[str] = []
    lost: list[str] = []

    def decider(n: int) -> None:
        barrier.wait()
        try:
            decide(stores[n], "p1", deciders[n], approve=n % 2 == 0, comment=f"by {n}")
            won.append(deciders[n].name)
        except ConflictError as error:
            assert error.code == "already_decided"
            lost.append(deciders[n].name)

    threads = [threading.Thread(target=decider, args=(n,)) for n in range(len(deciders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one decision is recorded, by the winner, and the others were told
    assert len(won) == 1 and len(lost) == 3
    final = get_proposal(store, "p1")
    assert final.decided_by == won[0]
    decisions = [e for e in store.search_events().events if e.event_id == "decision:p1"]
    assert len(decisions) == 1 and store.verify().ok
    for other in stores:
        other.close()
    store.close()


def test_given_an_expired_proposal_when_decided_then_expiry_recorded_and_conflict(backend):
    # Given a proposal that expired a day ago
    store = backend.open()
    now = datetime.now(UTC)
    propose(
        store,
        _proposal(expires_at=now - timedelta(days=1)),
        ANN,
        at=now - timedelta(days=31),
        proposal_id="p1",
    )
    assert get_proposal(store, "p1").status is ProposalStatus.EXPIRED
    # When an approver tries to approve it
    with pytest.raises(ConflictError, match="expired") as caught:
        decide(store, "p1", BOB, approve=True, comment="late")
    # Then the expiry is the recorded decision, by the system, and stays so
    assert caught.value.code == "expired"
    expiry = store.event("decision:p1")
    assert (expiry.kind, expiry.actor, expiry.role) == ("override.expired", "riskgrade", "system")
    with pytest.raises(ConflictError) as again:
        decide(store, "p1", BOB, approve=True, comment="late")
    assert again.value.code == "already_decided"
    store.close()


def test_given_proposals_when_listed_and_swept_then_status_filters_and_expiry(backend):
    # Given a pending, an approved, an overdue one, and a proposal of another kind
    store = backend.open()
    now = datetime.now(UTC)
    propose(store, _proposal(), ANN, proposal_id="p1")
    propose(store, _proposal(subject="C002"), ANN, proposal_id="p2")
    decide(store, "p2", BOB, approve=True, comment="fine")
    propose(
        store,
        _proposal(expires_at=now - timedelta(hours=1)),
        ANN,
        at=now - timedelta(days=2),
        proposal_id="p3",
    )
    propose(store, _proposal(kind="measure", subject="SEG1"), ANN, proposal_id="m1")
    # When listed
    everything = list_proposals(store, "override")
    pending = list_proposals(store, "override", status=ProposalStatus.PENDING)
    of_c2 = list_proposals(store, "override", subject="C002")
    # Then each filter applies, oldest first, and other kinds stay apart
    assert [p.proposal_id for p in everything] == ["p1", "p2", "p3"]
    assert [p.status.value for p in everything] == ["pending", "approved", "expired"]
    assert [p.proposal_id for p in pending] == ["p1"]
    assert [p.proposal_id for p in of_c2] == ["p2"]
    with pytest.raises(NotFoundError):
        get_proposal(store, "m1", kind="override")
    # And the sweep records the one overdue expiry, once
    assert [p.proposal_id for p in expire_due(store, "override")] == ["p3"]
    assert expire_due(store, "override") == []
    assert store.event("decision:p3").kind == "override.expired"
    store.close()


def test_given_unknown_ids_when_read_then_not_found(backend):
    store = backend.open()
    propose(store, _proposal(), ANN, proposal_id="p1")
    for bad in ("nope", "../x", "", "p1 "):
        with pytest.raises(NotFoundError):
            get_proposal(store, bad)
    store.close()
