"""Shared cases of the audit export filters, run on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from serving.audit import DecisionRecord

RATED: tuple[tuple[str, str | None], ...] = (
    ("A", "2024-03-31"),
    ("B", "2024-06-30"),
    ("A", "2024-06-30"),
    ("A", "2024-09-30"),
    ("B", None),  # a payload without a response (no rating date): never matches a rated filter
)
"""(customer, rating date) of the records ``rated_records`` writes, in order (ids 1..5)."""


def rated_records() -> list[DecisionRecord]:
    """Decisions of two customers on three rating dates, all logged now."""
    records = []
    for i, (customer, as_of) in enumerate(RATED, start=1):
        payload: dict[str, Any] = {"features": {"x": float(i)}}
        if as_of is not None:
            payload["response"] = {"as_of": as_of, "customer_id": customer}
        records.append(
            DecisionRecord(
                decision_id=f"r{i}",
                kind="score",
                caller="scorer-user",
                customer_id=customer,
                model_version="m1",
                bundle_hash="cd" * 32,
                policy_version="p1",
                pd=0.02,
                grade="4",
                tier="medium",
                request_body=b'{"r": %d}' % i,
                payload=payload,
            )
        )
    return records


def check_export_filters(store: Any) -> None:
    """Export by rating date, by logging time and by customer, alone and combined."""

    def ids(**filters: Any) -> list[int]:
        return [r.id for r in store.export(**filters)]

    june, now = date(2024, 6, 30), datetime.now(UTC)
    # rating date: inclusive on both ends, a record without one never matches
    assert ids(rated_from=june, rated_to=june) == [2, 3]
    assert ids(rated_from=june) == [2, 3, 4]
    assert ids(rated_to=date(2024, 6, 29)) == [1]
    # customer alone and with a rating range
    assert ids(customer_id="A") == [1, 3, 4]
    assert ids(customer_id="A", rated_from=june, rated_to=date(2024, 12, 31)) == [3, 4]
    # logging time: every record was written now, none was rated now
    assert ids(start=now - timedelta(hours=1), end=now + timedelta(hours=1)) == [1, 2, 3, 4, 5]
    assert ids(start=now - timedelta(hours=1), rated_from=now.date()) == []
    assert ids(end=now - timedelta(hours=1)) == []
    # an inverted rating range is refused by name
    with pytest.raises(ValueError, match="rated_from"):
        store.export(rated_from=june, rated_to=date(2024, 1, 1))
