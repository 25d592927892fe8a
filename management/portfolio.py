"""The rating chain on a whole portfolio: batch scores with data sufficiency and judgement.

``riskgrade score`` rates every customer with the model (`serving.batch.score_portfolio`);
`judge_portfolio` then applies, per customer, its data sufficiency at ``as_of`` and the
assessment and approved override valid then, read once from the audit store, through the same
chain (`rating.chain.rate_customer`) as ``/score``. Rows with nothing to apply keep the model's
answer; ``tier`` and the ``policy_*`` columns become the final grade's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from audit import AuditStore, StoredEvent
from features.io import RawTables
from management.events import iter_events
from management.judgement import (
    ASSESSMENT_RECORDED,
    OVERRIDE_KINDS,
    RatingRules,
    apply_judgement,
)
from management.lifecycle import CHANGED as STATUS_CHANGED
from management.lifecycle import KIND as STATUS_KIND
from management.measures import active_measures
from management.proposals import ProposalStatus
from rating.chain import ModelDecision
from rating.lifecycle import Measure
from rating.output import JUDGEMENT_COLUMNS, POLICY_PREFIX
from rating.policy import CreditPolicy, HardRuleHit
from rating.sufficiency import SUFFICIENCY_COLUMNS, data_sufficiency, sufficiency_from_row


def judgement_events(store: AuditStore) -> dict[str, list[StoredEvent]]:
    """Every assessment, override/expert-rating and status event, by customer, in chain order."""
    kinds = [ASSESSMENT_RECORDED, STATUS_CHANGED] + [
        f"{kind}.{action}"
        for kind in (*OVERRIDE_KINDS, STATUS_KIND)
        for action in ("proposed", *(s.value for s in ProposalStatus if s.value != "pending"))
    ]
    found: list[StoredEvent] = [e for kind in kinds for e in iter_events(store, kind=kind)]
    by_customer: dict[str, list[StoredEvent]] = {}
    for event in sorted(found, key=lambda e: e.id):
        by_customer.setdefault(event.subject, []).append(event)
    return by_customer


def judge_scores(
    rated: pd.DataFrame,
    raw: RawTables,
    store: AuditStore | None,
    rules: RatingRules,
    as_of: date,
    *,
    events: Mapping[str, Sequence[StoredEvent]] | None = None,
    measures: Sequence[Measure] | None = None,
) -> pd.DataFrame:
    """Batch scores of ``raw`` with data sufficiency and the judgement of ``store`` applied.

    Args:
        rated: `serving.batch.score_portfolio` of ``raw`` at ``as_of``.
        raw: the raw tables (statements, facilities, transactions judge data sufficiency).
        store: the audit store holding people's judgement (None: no judgement recorded).
        rules: the bundle's scale and policy, and the judgement settings.
        as_of: the rating date.
        events: `judgement_events` of ``store``, when already read (a portfolio judged
            chunk by chunk reads them once).
        measures: `management.measures.active_measures` of ``store`` at ``as_of``, likewise.

    Raises:
        AuditError: if the store cannot be read.
    """
    sufficiency = data_sufficiency(
        rated["customer_id"].astype(str),
        raw.financial_statements,
        raw.credit_facilities,
        raw.transactions,
        as_of,
        rules.judgement.data_sufficiency,
    )
    if events is None:
        events = judgement_events(store) if store is not None else {}
    if measures is None:
        measures = active_measures(store, as_of) if store is not None else []
    segments = raw.customers.set_index("customer_id")[["industry", "region", "size_class"]]
    return judge_portfolio(
        rated,
        sufficiency,
        events,
        rules,
        as_of,
        measures=measures,
        segments={str(k): {c: str(v) for c, v in row.items()} for k, row in segments.iterrows()}
        if measures
        else {},
    )


def judge_portfolio(
    rated: pd.DataFrame,
    sufficiency: pd.DataFrame,
    events: Mapping[str, Sequence[StoredEvent]],
    rules: RatingRules,
    as_of: date,
    *,
    measures: Sequence[Measure] = (),
    segments: Mapping[str, Mapping[str, str | None]] | None = None,
) -> pd.DataFrame:
    """The batch scores with the rating chain applied at ``as_of``.

    Args:
        rated: one row per customer (`rating.output.SCORE_COLUMNS`).
        sufficiency: `rating.sufficiency.data_sufficiency` of those customers at ``as_of``.
        events: each customer's management events (`judgement_events`).
        rules: scale, policy and judgement settings.
        as_of: the rating date (judgement valid then applies).
        measures: emergency measures (those active at ``as_of`` covering a customer apply).
        segments: customer id -> its ``industry``, ``region`` and ``size_class``.

    Returns:
        ``rated`` with `rating.output.JUDGEMENT_COLUMNS` after ``grade``; ``tier`` and
        ``policy_*`` of the final grade.
    """
    out = rated.copy()
    # one dict per customer, read once (a label lookup per row cost most of the judging)
    suff = sufficiency[list(SUFFICIENCY_COLUMNS)].set_index("customer_id").to_dict("index")
    config = rules.judgement.data_sufficiency
    n = len(out)
    insufficient = [False] * n
    provisional = [False] * n
    reasons = [""] * n
    model_grade = out["grade"].astype(str).tolist()
    notches = [0] * n
    assessment_id: list[str | None] = [None] * n
    override_id: list[str | None] = [None] * n
    final = list(model_grade)
    tiers = out["tier"].astype(str).tolist()
    statuses = ["normal"] * n
    applied_measures = [""] * n
    policies: list[dict[str, Any] | None] = [None] * n
    segments = segments or {}
    covered = {
        cid
        for cid, segment in segments.items()
        if any(m.active_at(as_of) and m.scope.covers(cid, segment) for m in measures)
    } | {cid for m in measures for cid in m.scope.customer_ids}
    for i, row in enumerate(out.itertuples(index=False)):
        cid = str(row.customer_id)
        found = suff.get(cid)
        state = sufficiency_from_row(found, config) if found is not None else None
        customer_events = events.get(cid, ())
        if (state is None or state.sufficient) and not customer_events and cid not in covered:
            continue
        hard = [c for c in str(row.hard_rules or "").split(";") if c]
        decision = ModelDecision(
            customer_id=cid,
            pd=float(row.pd),
            model_grade=str(row.grade),
            hard_rules=tuple(HardRuleHit(code=c, flag=c, text_en=c, text_zh=c) for c in hard),
            in_default=bool(row.in_default),
            **({"sufficiency": state} if state is not None else {}),
        )
        result, assessment, override = apply_judgement(
            decision,
            rules,
            as_of,
            customer_events,
            measures=measures,
            segment=segments.get(cid),
        )
        statuses[i], applied_measures[i] = result.status, ";".join(result.measures)
        policies[i] = result.policy.model_dump()
        insufficient[i], provisional[i] = result.insufficient_data, result.provisional
        reasons[i] = ";".join(r.code for r in (state.reasons if state else ()))
        model_grade[i], final[i], tiers[i] = (
            result.model_grade,
            result.final_grade,
            result.tier.value,
        )
        notches[i] = result.qualitative_notches
        assessment_id[i] = assessment.assessment.assessment_id if assessment else None
        override_id[i] = override.proposal_id if override else None
    position = list(out.columns).index("grade") + 1
    values = {
        "insufficient_data": insufficient,
        "provisional": provisional,
        "sufficiency_reasons": reasons,
        "model_grade": model_grade,
        "qualitative_notches": notches,
        "assessment_id": assessment_id,
        "override_id": override_id,
        "final_grade": final,
        "status": statuses,
        "measures": applied_measures,
    }
    dtypes = {"string": "string", "bool": "bool", "int64": "int64"}
    for offset, column in enumerate(JUDGEMENT_COLUMNS):
        series = pd.Series(values[column.name], index=out.index, dtype=dtypes[column.dtype])
        out.insert(position + offset, column.name, series)
    out["tier"] = tiers
    by_tier = {t: rules.policy.policy_of_tier(t).model_dump() for t in set(tiers)}
    rows = [p if p is not None else by_tier[t] for p, t in zip(policies, tiers, strict=True)]
    for field in CreditPolicy.model_fields:
        out[POLICY_PREFIX + field] = [p[field] for p in rows]
    return out
