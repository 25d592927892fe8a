"""Replay of batch decisions: the customer's records read again, checked, and re-scored.

A batch decision (`management.batch_decisions`) keeps, as its request, what a request by
customer id carries (``customer_id``, ``as_of``, ``lang``) and what the run read (``read``:
the source, the as-of bounds, rows per table and the SHA-256 of the customer's records).
`ReadingRescorer` wraps the service's `Engine` for `audit.replay`: for such a request it reads
the customer's records known at ``as_of`` from the source again, refuses when their digest
differs from the recorded one (the source changed: the replay would not test the model), and
re-scores the ``/score`` body built from them; any other request goes to the engine as is.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from features.digest import record_digests
from features.errors import RiskgradeError
from features.io import RawTables
from features.source import open_raw_source
from serving.batch import request_example
from serving.engine import Engine


class BatchReplayError(RiskgradeError, ValueError):
    """A batch decision cannot be replayed (source unreadable, or its records changed)."""


def is_batch_request(request: dict[str, Any]) -> bool:
    """Whether a stored request is a batch decision's (by id, with what the run read)."""
    return isinstance(request.get("read"), dict) and "customer" not in request


class ReadingRescorer:
    """An `audit.Rescorer` that also replays batch decisions from their raw source."""

    def __init__(self, engine: Engine, raw: str | None = None) -> None:
        """Wrap ``engine``; ``raw`` replaces the source a batch decision recorded (a copy)."""
        self.engine = engine
        self.raw = raw

    def rescore(self, request: dict[str, Any]) -> dict[str, Any]:
        """Re-score a stored request (batch ones after reading and checking their records).

        Raises:
            BatchReplayError: if the source cannot be read or the customer's records there
                differ from those the batch run rated.
            ScoringError: if the request no longer validates or scores.
        """
        if not is_batch_request(request):
            return self.engine.rescore(request)
        read = request["read"]
        customer_id = str(request["customer_id"])
        as_of = date.fromisoformat(str(request["as_of"]))
        location = self.raw or str(read["source"])
        source = open_raw_source(location)
        tables = source.read_customers_at([customer_id], as_of)
        digest, rows = record_digests(tables, [customer_id])[customer_id]
        if digest != read.get("records_sha256"):
            raise BatchReplayError(
                f"the records of customer {customer_id} known at {as_of} in {source.label} "
                f"differ from those the batch run rated (rows now {rows}, then "
                f"{read.get('rows')}); replay needs the source as it was (--raw a copy)"
            )
        if not rows["customers"]:
            raise BatchReplayError(f"customer {customer_id} is not in {source.label} at {as_of}")
        body = request_example(
            RawTables.from_mapping(tables), customer_id, as_of, lang=str(request.get("lang", "en"))
        )
        return self.engine.rescore(body)
