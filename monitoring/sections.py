"""Report sections of the management loop: covenants, early warnings by severity, segments.

Each builder returns a `Section` (a title, a short text and named tables), free of any markup,
so the HTML report (or a template) renders it and the JSON report stores it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.covenants import Covenant
from monitoring.run import MonitoringRun
from monitoring.segments import DIMENSIONS
from monitoring.warnings import severity_counts


@dataclass(frozen=True)
class Section:
    """A report section: its title, a one-paragraph text and its tables in order."""

    title: str
    text: str
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


def covenant_counts(checks: pd.DataFrame) -> pd.DataFrame:
    """Per covenant: terms in force, breaches, and the breach share."""
    if checks.empty:
        return pd.DataFrame(columns=["covenant", "in_force", "breached", "share"])
    grouped = checks.groupby("covenant", sort=True)["breached"]
    table = pd.DataFrame({"in_force": grouped.size(), "breached": grouped.sum().astype(int)})
    table["share"] = table["breached"] / table["in_force"]
    return table.reset_index()


def covenant_section(run: MonitoringRun) -> Section:
    """Covenants in force at the run date and every breach with its threshold and value."""
    checks = run.covenants
    if checks.empty:
        return Section("Covenants", "no contract terms in force at the run date")
    breached = checks[checks["breached"]]
    reports = int((breached["covenant"] == Covenant.REPORTING_MONTHS.value).sum())
    text = (
        f"{len(checks):,} covenants in force for {checks['customer_id'].nunique():,} customers "
        f"at {run.info.as_of}; {len(breached) - reports:,} ratio breaches and {reports:,} "
        "financial reports past due. A breach new since the previous run is an early warning."
    )
    return Section(
        "Covenants",
        text,
        [("by covenant", covenant_counts(checks)), ("breaches", breached.reset_index(drop=True))],
    )


def severity_section(run: MonitoringRun) -> Section:
    """Early warnings by severity and the status transitions they propose."""
    warnings = run.warnings
    counts = severity_counts(warnings)
    by_severity = pd.DataFrame({"severity": list(counts), "customers": list(counts.values())})
    proposals = (
        warnings["proposed_status"].dropna().value_counts().rename_axis("proposed_status")
        if len(warnings)
        else pd.Series(dtype=int)
    )
    text = (
        f"{len(warnings):,} customers listed, one row each, most severe first; "
        f"{int(proposals.sum()):,} status transitions proposed (a person confirms each)."
    )
    return Section(
        "Early warnings by severity",
        text,
        [
            ("by severity", by_severity),
            ("proposed status transitions", proposals.rename("customers").reset_index()),
        ],
    )


def segment_section(run: MonitoringRun) -> Section:
    """Customers, tiers, statuses, migration and warnings by industry, region and size class."""
    segments = run.segments
    text = (
        "Per segment: customers, in default, customers per tier and per status (normal when "
        "no status is recorded), tier downgrades and upgrades since the previous run, early "
        "warnings (of which high or critical)."
    )
    tables = [
        (dimension, segments[segments["dimension"] == dimension].drop(columns="dimension"))
        for dimension in DIMENSIONS
    ]
    return Section("By segment", text, tables)


def management_sections(run: MonitoringRun) -> list[Section]:
    """The sections this module adds to the report, in order."""
    return [severity_section(run), covenant_section(run), segment_section(run)]


def management_summary(run: MonitoringRun) -> dict[str, Any]:
    """Headline figures of the sections (merged into the report summary)."""
    checks = run.covenants
    breached = checks[checks["breached"]] if len(checks) else checks
    return {
        "early_warnings_by_severity": severity_counts(run.warnings),
        "status_proposals": int(run.warnings["proposed_status"].notna().sum()),
        "covenants_in_force": len(checks),
        "covenants_breached": len(breached),
    }
