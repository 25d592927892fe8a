"""A monitoring run and the people's record: statuses and measures in, warnings out.

Before a run, the customers' statuses and the emergency measures covering them are read from
the audit chain (`management`); after it, the run's early warnings can be recorded there
and, where a warning proposes a stricter status, a status-change proposal that a person
confirms (the system never changes a status by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.io import RawTables
from management.batch_decisions import BatchRun, RecordedBatch, record_batch
from management.events import Actor
from management.events import Store as AuditStore
from management.judgement import RatingRules
from management.lifecycle import (
    StatusProposal,
    SystemProposal,
    propose_from_warnings,
    status_series,
)
from management.measures import measures_by_customer
from management.portfolio import judge_scores
from management.warnings import WarningItem, record_warnings
from monitoring.run import MonitoringRun
from monitoring.warnings import MEASURE_COLUMNS, no_measures
from rating.judgement import JudgementConfig
from rating.lifecycle import CustomerStatus, LifecycleConfig
from rating.portfolio import as_model, default_statuses

MONITOR = Actor(name="riskgrade-monitor", role="system")
"""Who records a run's warnings and proposes status changes."""


def management_inputs(
    audit: AuditStore, customers: pd.DataFrame, as_of: date
) -> tuple[pd.Series, pd.DataFrame]:
    """The statuses (customer id -> status) and active measures per customer at ``as_of``.

    Args:
        audit: the audit store holding people's decisions.
        customers: the ``customers`` table (its segment columns match measure scopes).
        as_of: the run date.
    """
    statuses = pd.Series(status_series(audit, as_of), dtype="object")
    segments = [
        (
            str(row.customer_id),
            {"industry": row.industry, "region": row.region, "size_class": row.size_class},
        )
        for row in customers[["customer_id", "industry", "region", "size_class"]].itertuples()
    ]
    covered = measures_by_customer(audit, as_of, segments)
    if not covered:
        return statuses, no_measures()
    measures = pd.DataFrame(
        [(cid, m.measure_id, f"{m.title}: {m.reason}") for cid, m in covered],
        columns=MEASURE_COLUMNS,
    ).astype("string")
    return statuses, measures


@dataclass(frozen=True)
class RecordedRun:
    """What recording a run added to the audit chain."""

    warnings: int
    proposals: list[StatusProposal]


def record_run(
    audit: AuditStore,
    run_id: str,
    as_of: date,
    warnings: pd.DataFrame,
    config: LifecycleConfig,
) -> RecordedRun:
    """Record a run's early warnings and propose the stricter statuses they call for.

    Args:
        audit: the audit store.
        run_id: the monitoring run.
        as_of: its date.
        warnings: its early-warning list (`monitoring.warnings.WARNING_COLUMNS`).
        config: lifecycle rules (exit plan length, pending deadline).
    """
    items = []
    proposals = []
    for row in warnings.itertuples(index=False):
        triggers = tuple(t for t in str(row.triggers).split(";") if t)
        details = tuple(d for d in str(row.details).splitlines() if d)
        target = row.proposed_status if isinstance(row.proposed_status, str) else None
        items.append(
            WarningItem(
                customer_id=str(row.customer_id),
                severity=str(row.severity),
                action=str(row.action),
                triggers=triggers,
                details=details,
                proposed_status=target,
                facts={"grade": str(row.grade), "tier": str(row.tier), "pd": float(row.pd)},
            )
        )
        if target:
            reason = f"early warning of run {run_id} ({row.severity}): " + "; ".join(details)
            proposals.append(
                SystemProposal(
                    str(row.customer_id),
                    CustomerStatus(target),
                    reason[:4000],
                    {"run_id": run_id, "triggers": list(triggers)},
                )
            )
    added = record_warnings(audit, run_id, as_of, items, actor=MONITOR)
    proposed = propose_from_warnings(audit, proposals, config, actor=MONITOR)
    return RecordedRun(warnings=added, proposals=proposed)


def run_scores(
    run: MonitoringRun, raw: RawTables, policy_version: str, *, only: pd.Series | None = None
) -> pd.DataFrame:
    """A run's ratings in the columns batch scoring gives (reasons as codes, no texts).

    Args:
        run: the monitoring run.
        raw: the raw tables it rated (the default type of customers in default).
        policy_version: the bundle's policy version.
        only: these customer ids only (the customers of ``raw`` when it is one range).
    """
    ratings = run.ratings
    if only is not None:
        ratings = ratings[ratings["customer_id"].astype(str).isin(set(only.astype(str)))]
    statuses = default_statuses(raw.defaults, run.info.as_of)
    ids = ratings["customer_id"].astype(str)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "pd": ratings["pd"].astype(float),
            "score": ratings["score"],
            "grade": ratings["grade"].astype(str),
            "model_tier": ratings["model_tier"].astype(str),
            "tier": ratings["tier"].astype(str),
            "in_default": ratings["in_default"].astype(bool),
            "default_date": ratings["default_date"],
            "default_type": [statuses[c].default_type if c in statuses else None for c in ids],
            "hard_rules": ratings["hard_rules"].astype(str),
            "reasons": ratings["reasons"].astype(str),
            "model_version": run.info.model_version,
            "bundle_hash": run.info.bundle_hash,
            "policy_version": policy_version,
        }
    ).reset_index(drop=True)


def record_ratings(
    audit: AuditStore,
    run: MonitoringRun,
    raw: RawTables | Iterable[RawTables],
    bundle_dir: Path,
    judgement: JudgementConfig,
    lifecycle: LifecycleConfig,
    *,
    source: str,
    lang: str = "en",
    progress: Callable[[int, int], None] | None = None,
) -> RecordedBatch:
    """Record a run's ratings as batch decisions (one per customer, idempotent per run).

    Each rating gets the judgement the audit store holds at the run's date (assessments,
    approved overrides, status, measures), as ``riskgrade score`` applies it.

    Args:
        audit: the audit store.
        run: the monitoring run.
        raw: the raw tables it rated, whole or as customer ranges in customer order (each
            range's ratings are judged and recorded with that range's records).
        bundle_dir: the bundle it rated with.
        judgement: questionnaire, override and data-sufficiency settings.
        lifecycle: each status's effect on the policy.
        source: the raw source's label.
        lang: language of the run's texts.
        progress: optional callback ``(customers done, total)``.
    """
    model = as_model(bundle_dir)
    rules = RatingRules(model.scale, model.policy, judgement, lifecycle)
    as_of = run.info.as_of
    batch = BatchRun(run.run_id, "monitor", as_of, source, lang)
    total = len(run.ratings)
    parts = [raw] if isinstance(raw, RawTables) else raw
    written = skipped = done = 0
    for part in parts:
        only = None if isinstance(raw, RawTables) else part.customers["customer_id"]
        scores = run_scores(run, part, model.policy_version, only=only)
        judged = judge_scores(scores, part, audit, rules, as_of)
        offset = done

        def report(n: int, _: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + n, total)

        recorded = record_batch(audit, judged, part, batch, rules, progress=report)
        written, skipped = written + recorded.written, skipped + recorded.skipped
        done += len(judged)
    return RecordedBatch(run.run_id, total, written, skipped)
