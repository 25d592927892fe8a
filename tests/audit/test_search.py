"""Search, facets and check_record on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from audit import AuditQuery, DecisionRecord


def record(i: int, customer: str, tier: str, version: str = "v1") -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{i}",
        kind="score",
        caller="scorer-user",
        customer_id=customer,
        model_version=version,
        bundle_hash="b" * 64,
        policy_version="p1",
        pd=0.01 * (i + 1),
        grade=str(i % 8 + 1),
        tier=tier,
        request_body=b'{"i": %d}' % i,
        payload={"features": {"x": float(i)}, "response": {"as_of": "2024-06-30"}},
    )


@pytest.fixture
def store(backend):
    with backend.open(every=3, key=b"k") as s:
        rows = [("A", "low"), ("B", "high"), ("A", "medium"), ("C", "low"), ("A", "low")]
        for i, (customer, tier) in enumerate(rows):
            s.append(record(i, customer, tier, "v1" if i < 3 else "v2"))
        yield s


def test_given_records_when_searching_without_filters_then_newest_first_with_total(store):
    page = store.search()
    assert page.total == 5 and [r.id for r in page.records] == [5, 4, 3, 2, 1]


def test_given_filters_when_searching_then_all_must_match(store):
    by_customer = store.search(AuditQuery(customer_id="A"))
    assert [r.id for r in by_customer.records] == [5, 3, 1]
    assert [r.id for r in store.search(AuditQuery(customer_id="A", tier="low")).records] == [5, 1]
    assert [r.id for r in store.search(AuditQuery(model_version="v2")).records] == [5, 4]
    assert store.search(AuditQuery(customer_id="Z")).total == 0


def test_given_a_time_range_when_searching_then_start_inclusive_end_exclusive(store):
    third = store.show(3)
    at = datetime.fromisoformat(third.created_at)
    assert store.search(AuditQuery(start=at)).total == 3
    assert store.search(AuditQuery(end=at)).total == 2
    naive_future = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    assert store.search(AuditQuery(start=naive_future)).total == 0


def test_given_a_page_when_searching_then_limit_and_offset_apply_after_filters(store):
    page = store.search(AuditQuery(limit=2, offset=1))
    assert page.total == 5 and [r.id for r in page.records] == [4, 3]


def test_given_an_inverted_range_when_building_a_query_then_refused():
    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="after"):
        AuditQuery(start=now, end=now - timedelta(days=1))


def test_given_records_when_asking_facets_then_distinct_sorted_values(store):
    assert store.facets() == {"tiers": ["high", "low", "medium"], "model_versions": ["v1", "v2"]}


def test_given_an_intact_log_when_checking_records_then_each_hash_and_link_verify(store):
    for record_id in range(1, 6):
        check = store.check_record(record_id)
        assert check.ok and check.problem is None
    assert store.check_record("d0").id == 1


def test_given_search_when_called_then_existing_behaviour_is_unchanged(store):
    assert [r.id for r in store.export()] == [1, 2, 3, 4, 5]
    assert store.verify().ok
