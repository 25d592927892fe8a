"""The rating chain on the service's answers: data sufficiency and human judgement at ``as_of``.

``/score``, ``/score_batch`` and ``/explain`` decide with the model (`serving.engine`); before
the decisions are recorded, `judge_decisions` adds what people decided about each customer
(assessment and approved override valid at its ``as_of``, read from the audit store) and the
customer's data sufficiency (from the request's raw records), through the same pure chain
(`rating.chain.rate_customer`) that ``GET /customers/{id}/rating`` uses. The recorded
decision holds the judged response; its ``grade`` and ``tier`` columns stay the model's, which
audit replay reproduces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date

from audit import AuditStore, StoredEvent
from management.events import iter_events
from management.judgement import RatingRules, judged_response
from management.measures import active_measures
from rating.judgement import DataSufficiencyConfig
from rating.lifecycle import Measure
from rating.sufficiency import SUFFICIENT, Sufficiency, record_sufficiency
from serving.engine import Decision, stored_records
from serving.schemas import ScoreRequest


def request_sufficiency(request: ScoreRequest, config: DataSufficiencyConfig) -> Sufficiency:
    """Data sufficiency of a raw-record request at its ``as_of`` (`rating.sufficiency` rule).

    A ``feature_vector`` request carries no records to judge: it counts as sufficient.
    """
    if request.customer is None:
        return SUFFICIENT
    if (stored := stored_records(request)) is not None:  # by id: the frames read
        frames = stored.frames
        return record_sufficiency(
            frames.financial_statements.get_column("published_date").to_list(),
            frames.credit_facilities.get_column("opened").to_list(),
            frames.transactions.get_column("ts").to_list(),
            request.as_of,
            config,
        )
    return record_sufficiency(
        [s.published_date for s in request.statements],
        [f.opened for f in request.facilities],
        [t["ts"] for t in request.transactions],
        request.as_of,
        config,
    )


def request_segment(request: ScoreRequest) -> dict[str, str]:
    """The customer's segment in a raw-record request (empty for a feature vector)."""
    if request.customer is None:
        return {}
    c = request.customer
    return {"industry": c.industry, "region": c.region, "size_class": str(c.size_class)}


def judge_decisions(
    decisions: Sequence[Decision],
    requests: Sequence[ScoreRequest],
    audit: AuditStore,
    rules: RatingRules,
) -> list[Decision]:
    """The decisions with the rating chain applied to their responses and audit records.

    Reads each distinct customer's management events once.

    Raises:
        AuditError: if the audit store cannot be read.
    """
    events: dict[str, list[StoredEvent]] = {}
    measures: dict[date, list[Measure]] = {}
    judged = []
    for decision, request in zip(decisions, requests, strict=True):
        cid = decision.record.customer_id
        if cid not in events:
            events[cid] = list(iter_events(audit, subject=cid))
        if request.as_of not in measures:
            measures[request.as_of] = active_measures(audit, request.as_of)
        sufficiency = request_sufficiency(request, rules.judgement.data_sufficiency)
        segment = request_segment(request)
        response = judged_response(
            decision.response,
            rules,
            events[cid],
            sufficiency,
            measures=measures[request.as_of],
            segment=segment,
        )
        payload = dict(decision.record.payload)
        payload["response"] = {k: v for k, v in response.items() if k != "chart"}
        if segment:
            payload["segment"] = segment
        record = decision.record.model_copy(update={"payload": payload})
        judged.append(dataclasses.replace(decision, response=response, record=record))
    return judged
