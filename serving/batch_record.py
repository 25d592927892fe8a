"""Replay of decisions that recorded a read: the customer's records read again, checked, decided.

Two kinds of decision keep, as their request, what a request by customer id carries
(``customer_id``, ``as_of``, ``lang``) and what was read (``read``: the source's label, the
as-of bounds, rows per table and ``records_sha256``, the SHA-256 of the customer's records,
``features.digest``):

- a batch decision (`management.batch_decisions`), read from the run's source (its label is
  where to read again, unless ``raw`` names a copy);
- a service decision by customer id (``serving.by_id``), read from the service's store
  (``read.store_setting``: ``RISKGRADE_RAW_URL``); its label has no credentials, so replay
  needs the store named again (``--raw URL`` or the setting).

`ReadingRescorer` wraps the service's `Engine` for `audit.replay`: for such a request it reads
the customer's records within the recorded bounds again, refuses when their digest differs
from the recorded one (`RecordsChangedError`: the store changed since, the replay would not
test the model), and decides the customer from the tables read, as the service does; any other
request (a body, including a by-id decision recorded as its expanded body by earlier versions)
goes to the engine as is.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from features.asof import read_bounds
from features.digest import record_digests
from features.errors import RiskgradeError
from features.io import RawDataError
from features.source import open_raw_source
from serving.by_id import ByIdRequest, customer_reads, decidable
from serving.engine import Engine
from serving.schemas import ScoreRequest


class BatchReplayError(RiskgradeError, ValueError):
    """A decision that recorded a read cannot be replayed (no store, unreadable, invalid)."""


class RecordsChangedError(BatchReplayError):
    """The customer's records within the recorded bounds differ from those decided on."""

    exit_code = 1
    """As replay exits for a result that differs."""


def is_batch_request(request: dict[str, Any]) -> bool:
    """Whether a stored request recorded a read (a batch decision, or one by customer id)."""
    return isinstance(request.get("read"), dict) and "customer" not in request


class ReadingRescorer:
    """An `audit.Rescorer` that also replays the decisions that recorded a read."""

    def __init__(self, engine: Engine, raw: str | None = None, store: str | None = None) -> None:
        """Wrap ``engine``.

        Args:
            engine: the recorded bundle's engine.
            raw: the source to read instead of the recorded one (``--raw``: a copy, or the
                service's store).
            store: the service's raw store (``RISKGRADE_RAW_URL``), for decisions by id
                when ``raw`` is not given.
        """
        self.engine = engine
        self.raw = raw
        self.store = store

    def _location(self, read: dict[str, Any]) -> str:
        if self.raw is not None:
            return self.raw
        if read.get("store_setting") is None:  # a batch decision: its source's label
            return str(read["source"])
        if self.store is None:
            raise BatchReplayError(
                f"replay of a decision by customer id needs its raw store ({read['source']}): "
                f"pass --raw URL or set {read['store_setting']}"
            )
        return self.store

    def rescore(self, request: dict[str, Any]) -> dict[str, Any]:
        """Re-score a stored request (those that recorded a read after reading them again).

        Raises:
            BatchReplayError: if no store is named, the store cannot be read, the recorded
                bounds are not this version's, or the records read break the contract.
            RecordsChangedError: if the customer's records within the recorded bounds
                differ from those decided on.
            ScoringError: if the request no longer validates or scores.
        """
        if not is_batch_request(request):
            return self.engine.rescore(request)
        read = request["read"]
        customer_id = str(request["customer_id"])
        as_of = date.fromisoformat(str(request["as_of"]))
        bounds = read_bounds(as_of)
        if read.get("bounds", bounds) != bounds:
            raise BatchReplayError(
                f"the read of customer {customer_id} recorded bounds {read['bounds']}; this "
                f"version reads {bounds} at {as_of}: replay with the version that decided"
            )
        try:
            source = open_raw_source(self._location(read))
            tables = source.read_customers_at([customer_id], as_of)
        except RawDataError as error:
            raise BatchReplayError(
                f"cannot read the records of customer {customer_id} again: {error}"
            ) from error
        digest, rows = record_digests(tables, [customer_id])[customer_id]
        if digest != read.get("records_sha256"):
            then = read.get("rows")
            if read.get("store_setting") is None:
                raise RecordsChangedError(
                    f"the records of customer {customer_id} known at {as_of} in {source.label} "
                    f"differ from those the batch run rated (rows now {rows}, then {then}); "
                    "replay needs the source as it was (--raw a copy)"
                )
            raise RecordsChangedError(
                f"the raw store's records of customer {customer_id} within the recorded bounds "
                f"(as_of {as_of}) changed since the decision: rows per table then {then}, "
                f"now {rows}"
            )
        found = customer_reads(source.label, as_of, [customer_id], tables)[customer_id]
        if isinstance(found, Exception):
            raise BatchReplayError(str(found))
        fields = {k: v for k, v in request.items() if k in ("customer_id", "as_of", "lang")}
        item = ByIdRequest.model_validate(fields)
        return self.engine.rescore_request(decidable(item, found, ScoreRequest, None))
