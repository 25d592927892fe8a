"""Batch decisions on the audit store of both databases: bulk, idempotent, overridable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit import AuditDuplicateDecisionError
from management import Actor
from management.batch_decisions import (
    BATCH_KIND,
    BatchRecordError,
    BatchRun,
    batch_records,
    record_batch,
    record_scores,
)
from management.judgement import (
    OverrideInput,
    RatingRules,
    decide_override,
    history,
    insufficient_customers,
    propose_override,
    rating_at,
)
from management.portfolio import judge_scores
from rating.config import default_rating_config
from rating.model import RatingModel
from serving.batch import score_portfolio
from tests.audit.conftest import backend  # noqa: F401  (fixture: SQLite and PostgreSQL)

AT = datetime.now(UTC) - timedelta(hours=1)
ANN = Actor(name="ann", role="analyst")
BOB = Actor(name="bob", role="approver")


@pytest.fixture(scope="module")
def judged(bundle, portfolio, as_of):
    """The serving portfolio scored and judged (no judgement recorded yet), and its rules."""
    model = RatingModel(bundle)
    config = default_rating_config()
    rules = RatingRules(model.scale, model.policy, config.judgement)
    rated = score_portfolio(portfolio, as_of, model)
    return judge_scores(rated, portfolio, None, rules, as_of), rules


def test_given_batch_ratings_when_recorded_twice_then_written_once_and_overridable(
    backend,  # noqa: F811
    judged,
    portfolio,
    as_of,
):
    rated, rules = judged
    store = backend.open(every=5)
    # Given a batch run recorded in chunks of 5 customers (several transactions)
    first = record_scores(store, rated, portfolio, rules, as_of=as_of, source="raw/", chunk_size=5)
    # Then every customer has one batch decision and the chain (with its checkpoints) verifies
    assert (first.written, first.skipped, first.customers) == (len(rated), 0, len(rated))
    decisions = store.export()
    assert {d.kind for d in decisions} == {BATCH_KIND}
    assert len({d.decision_id for d in decisions}) == len(rated)
    assert store.verify().ok
    # When the same run is recorded again
    again = record_scores(store, rated, portfolio, rules, as_of=as_of, source="raw/", chunk_size=7)
    # Then nothing is written
    assert (again.written, again.skipped, again.run_id) == (0, len(rated), first.run_id)
    assert store.count() == len(rated)
    # And a writer racing with the same ids loses on the unique decision id, writing nothing
    run = BatchRun(first.run_id, "score", as_of, "raw/")
    head = rated.iloc[:3]
    reads = {str(c): ("0" * 64, {"customers": 1}) for c in head["customer_id"]}
    with pytest.raises(AuditDuplicateDecisionError) as raised:
        store.append_many(batch_records(head, run, rules, reads))
    assert len(raised.value.decision_ids) == 3
    assert store.count() == len(rated)
    # When an analyst overrides a batch-rated customer and an approver approves
    current = rating_at(store, rules, "C00002", as_of)
    assert current is not None and current.decision.kind == BATCH_KIND
    names = rules.scale.names
    i = names.index(current.rated.model_grade)
    target = names[i + 1] if i + 2 < len(names) else names[i - 1]
    item = OverrideInput("C00002", as_of, target, "OR01", "recent event not in the data")
    proposal = propose_override(store, rules, ANN, item, at=AT)
    decide_override(store, proposal.proposal_id, BOB, approve=True, comment="confirmed")
    # Then the rating at as_of is the override's final grade, and the history shows both
    rated_now = rating_at(store, rules, "C00002", as_of)
    assert rated_now is not None and rated_now.rated.final_grade == target
    assert [h["type"] for h in history(store, "C00002")] == [
        "rating",
        "override.proposed",
        "override.approved",
    ]
    # And a batch run of another source is a new run: its decisions are written (the latest
    # rating of a date is then the later record)
    other = record_scores(store, rated, portfolio, rules, as_of=as_of, source="copy/")
    assert other.written == len(rated) and other.run_id != first.run_id
    assert store.verify().ok
    store.close()


def test_given_a_batch_rated_customer_without_data_when_queued_then_an_expert_can_rate_it(
    bundle, portfolio, as_of, tmp_path
):
    import pandas as pd

    from audit import AuditConfig, SqlAuditStore
    from features.io import RawTables
    from rating.judgement import EXPERT_RATING_REASON, OverrideKind

    # Given the portfolio plus C09999, onboarded with no statement, facility or transaction
    customers = portfolio.customers
    bare = customers.iloc[[0]].assign(customer_id="C09999")
    tables = RawTables(**{**dict(portfolio.items()), "customers": pd.concat([customers, bare])})
    model = RatingModel(bundle)
    config = default_rating_config()
    rules = RatingRules(model.scale, model.policy, config.judgement)
    rated = judge_scores(score_portfolio(tables, as_of, model), tables, None, rules, as_of)
    with SqlAuditStore(AuditConfig(path=tmp_path / "a.db")) as store:
        # When the batch run is recorded
        record_scores(store, rated, tables, rules, as_of=as_of, source="raw/")
        # Then the analysts' queue holds the batch-rated customer with too little data
        queue = insufficient_customers(store, rules, as_of)
        assert [r.rated.customer_id for r in queue] == ["C09999"]
        assert queue[0].decision.kind == BATCH_KIND and queue[0].rated.provisional
        # And an expert rating proposed and approved on it makes it final
        grade = queue[0].rated.adjusted_grade
        item = OverrideInput(
            "C09999",
            as_of,
            grade,
            EXPERT_RATING_REASON,
            "met management, reviewed the management accounts",
            kind=OverrideKind.EXPERT_RATING,
        )
        proposal = propose_override(store, rules, ANN, item, at=AT)
        decide_override(store, proposal.proposal_id, BOB, approve=True, comment="agreed")
        assert insufficient_customers(store, rules, as_of) == []
        rated_now = rating_at(store, rules, "C09999", as_of)
        assert rated_now is not None and not rated_now.rated.provisional


def test_given_bad_input_when_recording_then_error_names_it(judged, portfolio, as_of, tmp_path):
    from audit import AuditConfig, SqlAuditStore

    rated, rules = judged
    with SqlAuditStore(AuditConfig(path=tmp_path / "a.db")) as store:
        with pytest.raises(BatchRecordError, match="lack column"):
            record_scores(
                store,
                rated.drop(columns=["final_grade"]),
                portfolio,
                rules,
                as_of=as_of,
                source="raw/",
            )
        run = BatchRun("r1", "score", as_of, "raw/")
        with pytest.raises(BatchRecordError, match="chunk_size"):
            record_batch(store, rated, portfolio, run, rules, chunk_size=0)
        assert store.count() == 0
