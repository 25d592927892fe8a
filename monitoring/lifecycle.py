"""A monitoring run and the people's record: statuses and measures in, warnings out.

Before a run, the customers' statuses and the emergency measures covering them are read from
the audit chain (`management`); after it, the run's early warnings can be recorded there
and, where a warning proposes a stricter status, a status-change proposal that a person
confirms (the system never changes a status by itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from management.events import Actor
from management.events import Store as AuditStore
from management.lifecycle import (
    StatusProposal,
    SystemProposal,
    propose_from_warnings,
    status_series,
)
from management.measures import measures_by_customer
from management.warnings import WarningItem, record_warnings
from monitoring.warnings import MEASURE_COLUMNS, no_measures
from rating.lifecycle import CustomerStatus, LifecycleConfig

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
