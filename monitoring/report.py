"""The monitoring report: self-contained HTML (plots embedded as base64 PNG), JSON and CSVs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.html import (
    Block,
    Heading,
    Section,
    Text,
    figure,
    items,
    key_values,
    render_sections,
    table,
)
from monitoring import plots
from monitoring.drift import SCORE_ROW
from monitoring.run import MonitoringRun
from monitoring.sections import Section as PlainSection
from monitoring.sections import management_sections, management_summary
from monitoring.warnings import action_counts

MAX_HTML_ROWS = 200
"""Longest table shown in the HTML (the CSVs hold every row)."""


def _plain(value: Any) -> Any:
    """A JSON-safe version of a value (NaN -> None, timestamps -> ISO dates)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date().isoformat()
    if value is pd.NaT or value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_plain(r) for r in frame.to_dict(orient="records")]


def _matrix(matrix: Any) -> dict[str, Any] | None:
    if matrix is None:
        return None
    return {
        "labels": [str(c) for c in matrix.counts.columns],
        "counts": matrix.counts.to_numpy().tolist(),
        "shares": _plain(matrix.shares.to_numpy()),
        "downgrades": matrix.downgrades,
        "upgrades": matrix.upgrades,
        "stayed": matrix.stayed,
        "new": matrix.new,
        "exited": matrix.exited,
    }


def summary(run: MonitoringRun) -> dict[str, Any]:
    """Headline figures of a run."""
    flagged = run.flagged_drift()
    overdue = int(run.schedule["overdue"].sum())
    moves = run.moves
    downgrade_groups = (
        moves.loc[moves["direction"] == "downgrade", "main_group"].value_counts().to_dict()
        if len(moves)
        else {}
    )
    return _plain(
        {
            "run_id": run.info.run_id,
            "as_of": run.info.as_of,
            "previous_run_id": run.info.previous_run_id,
            "previous_as_of": run.previous.as_of if run.previous else None,
            "model_version": run.info.model_version,
            "bundle_hash": run.info.bundle_hash,
            "customers": run.info.customers,
            "performing": run.info.performing,
            "in_default": run.info.customers - run.info.performing,
            "tiers": run.ratings["tier"].value_counts().to_dict(),
            "downgrades": run.downgrades,
            "upgrades": run.upgrades,
            "downgrades_by_main_group": downgrade_groups,
            "drift_watch": int((flagged["flag"] == "watch").sum()) if len(flagged) else 0,
            "drift_alert": int((flagged["flag"] == "alert").sum()) if len(flagged) else 0,
            "early_warnings": len(run.warnings),
            "early_warnings_by_action": action_counts(run.warnings),
            "reviews_overdue": overdue,
            "backtested_runs": len(run.auc_history),
            "insufficient_data": run.insufficient_data,
            **_judgement_summary(run),
            **management_summary(run),
            "notes": run.notes,
        }
    )


def _judgement_summary(run: MonitoringRun) -> dict[str, Any]:
    """Headline figures of human judgement (empty without judgement tables)."""
    found = run.judgement
    if found is None:
        return {}
    judged = found.judged
    result: dict[str, Any] = {
        "assessed": int(judged["assessment_id"].notna().sum()),
        "overridden_up": int((judged["direction"] == "up").sum()),
        "overridden_down": int((judged["direction"] == "down").sum()),
        "override_proposals_window": int(found.status.get("proposals", 0)),
        "override_pending_share": found.status.get("proposed_share"),
        "override_expired_share": found.status.get("expired_share"),
    }
    if not found.discrimination.empty:
        diff = found.discrimination.set_index("grade").loc["difference"]
        result["judgement_auc_gain"] = float(diff["auc"])
        result["judgement_auc_gain_ci"] = [float(diff["ci_low"]), float(diff["ci_high"])]
    return result


def _judgement_json(run: MonitoringRun) -> dict[str, Any] | None:
    found = run.judgement
    if found is None:
        return None
    return {
        "as_of": _plain(found.as_of),
        "by_grade": _records(found.by_grade),
        "by_analyst": _records(found.by_analyst),
        "size_in_notches": _records(found.size),
        "status": _plain(found.status),
        "insufficient_data": found.insufficient,
        "outcomes_as_of": _plain(found.outcomes_as_of),
        "outcomes_by_direction": _records(found.outcomes),
        "discrimination": _records(found.discrimination),
        "notes": found.notes,
    }


def _judgement_section(run: MonitoringRun) -> Section:
    found = run.judgement
    if found is None:
        return Section(
            "Human judgement",
            (
                Text(
                    "no assessments or overrides in the raw folder; "
                    f"{run.insufficient_data:,} performing customers below the "
                    "data-sufficiency rule",
                    muted=True,
                ),
            ),
        )
    blocks: list[Block] = [
        Text(
            f"At {found.as_of}: the rating chain (model grade, qualitative notches, approved "
            f"overrides) for every customer; {found.insufficient:,} customers below the "
            "data-sufficiency rule (provisional tier until an expert rating)."
        ),
        Heading("Override proposals of the activity window, by status"),
        key_values(found.status),
        Heading("By grade (overrides in force)"),
    ]
    if found.by_grade["overridden"].sum():
        blocks.append(figure(plots.judgement_overrides(found.by_grade), "overrides by grade"))
    blocks += [
        _table(found.by_grade),
        Heading("By analyst"),
        _table(found.by_analyst),
        Heading("Size of the overrides in force, in notches (positive: upgrade)"),
        _table(found.size),
        Heading("Outcomes and marginal contribution of judgement"),
    ]
    horizon = run.config.outcomes.horizon_months
    if found.outcomes_as_of is None:
        blocks.append(Text(f"no stored run is {horizon} months old yet", muted=True))
    else:
        blocks += [
            Text(
                f"Customers performing at {found.outcomes_as_of}, followed for {horizon} "
                "months: AUC and accuracy ratio of the model grade and of the final grade on "
                "the same outcomes; intervals from a paired, seeded bootstrap of the customers."
            ),
            figure(
                plots.judgement_discrimination(found.discrimination, found.outcomes),
                "judgement discrimination",
            ),
            _table(found.discrimination),
            _table(found.outcomes),
        ]
    if found.notes:
        blocks.append(items(found.notes))
    return Section("Human judgement", tuple(blocks))


def to_json(run: MonitoringRun) -> dict[str, Any]:
    """The whole report as JSON-safe data (the review schedule is summarised; CSV has it all)."""
    schedule = run.schedule
    by_tier = (
        schedule.groupby("tier")
        .agg(customers=("customer_id", "size"), overdue=("overdue", "sum"))
        .reset_index()
    )
    return {
        "summary": summary(run),
        "tier_migration": _matrix(run.tier_matrix),
        "grade_migration": _matrix(run.grade_matrix),
        "moves": _records(run.moves),
        "drift": _records(run.drift),
        "outcomes_by_grade": _records(run.grade_outcomes),
        "auc_over_time": _records(run.auc_history),
        "early_warnings": _records(run.warnings),
        "human_judgement": _judgement_json(run),
        "sections": [_section_json(s) for s in management_sections(run)],
        "review_schedule": {
            "by_tier": _records(by_tier),
            "next_30_days": int(
                (
                    (schedule["next_review"] >= pd.Timestamp(run.info.as_of))
                    & (
                        schedule["next_review"]
                        <= pd.Timestamp(run.info.as_of) + pd.Timedelta(30, "D")
                    )
                ).sum()
            ),
            "overdue": int(schedule["overdue"].sum()),
        },
    }


def _table(frame: pd.DataFrame | None, limit: int = MAX_HTML_ROWS) -> Block:
    return table(frame, limit=limit)


def _summary_section(run: MonitoringRun) -> Section:
    blocks: list[Block] = [key_values({k: v for k, v in summary(run).items() if k != "notes"})]
    if run.notes:
        blocks.append(items(run.notes))
    return Section("Summary", tuple(blocks))


def _migration_section(run: MonitoringRun) -> Section:
    info = run.info
    if run.tier_matrix is None or run.grade_matrix is None:
        return Section(
            "Migration", (Text("first run: no previous run to compare with", muted=True),)
        )
    prev = run.previous
    blocks: list[Block] = [
        Text(
            f"From {prev.as_of if prev else ''} ({info.previous_run_id or ''}) "
            f"to {info.as_of}: {run.downgrades:,} downgrades, {run.upgrades:,} upgrades; "
            f"{run.tier_matrix.new:,} new customers."
        )
    ]
    for title, matrix in (("Tiers", run.tier_matrix), ("Grades", run.grade_matrix)):
        blocks += [
            Heading(title),
            figure(plots.migration_heatmap(matrix.counts, f"{title}: counts"), title),
            _table(matrix.counts.reset_index()),
            _table(matrix.shares.round(3).reset_index()),
        ]
    blocks += [
        Heading("Every move, explained by the SHAP difference"),
        _table(run.moves.drop(columns=["factors"], errors="ignore")),
    ]
    return Section("Migration", tuple(blocks))


def _drift_section(run: MonitoringRun) -> Section:
    if run.drift.empty:
        return Section("Drift", (Text("no reference distributions in the bundle", muted=True),))
    score = run.drift[run.drift["feature"] == SCORE_ROW].iloc[0]
    previous = None
    if run.previous_drift is not None and not run.previous_drift.empty:
        rows = run.previous_drift[run.previous_drift["feature"] == SCORE_ROW]
        previous = list(rows["shares"].iloc[0]) if len(rows) else None
    shift = plots.score_shift(
        list(score["reference_shares"]), list(score["shares"]), previous, run.score_edges
    )
    return Section(
        "Drift",
        (
            Text(
                "PSI against the bundle's training reference (watch ≥ "
                f"{run.config.drift.watch}, alert ≥ {run.config.drift.alert}); psi_noise is "
                "the PSI an unchanged population of this size would show by chance."
            ),
            figure(plots.psi_bars(run.drift, run.config.drift), "PSI"),
            figure(shift, "score distribution"),
            _table(run.drift.drop(columns=["shares", "reference_shares"])),
        ),
    )


def _outcomes_section(run: MonitoringRun) -> Section:
    if run.grade_outcomes.empty:
        horizon = run.config.outcomes.horizon_months
        note = Text(f"no stored run is {horizon} months old yet", muted=True)
        return Section("Outcomes", (note,))
    return Section(
        "Outcomes",
        (
            figure(plots.default_rate_by_grade(run.grade_outcomes, run.scale), "defaults"),
            figure(plots.auc_over_time(run.auc_history), "AUC"),
            _table(run.auc_history),
            _table(run.grade_outcomes),
        ),
    )


def _warnings_section(run: MonitoringRun) -> Section:
    return Section(
        "Early warnings", (key_values(action_counts(run.warnings)), _table(run.warnings))
    )


def _schedule_section(run: MonitoringRun) -> Section:
    return Section("Review schedule", (_table(run.schedule, limit=50),))


SECTIONS: tuple[Callable[[MonitoringRun], Section], ...] = (
    _summary_section,
    _migration_section,
    _drift_section,
    _outcomes_section,
    _judgement_section,
    _warnings_section,
    _schedule_section,
)
"""The HTML report's sections, in page order: each builds one `features.html.Section` of a run.

A new section is one function ``(run) -> Section`` (blocks: `features.html.Text`, ``Heading``,
``table(frame)``, ``key_values(dict)``, ``figure(png, alt)``, ``items(texts)``) added here."""


def _section_json(section: PlainSection) -> dict[str, Any]:
    return {
        "title": section.title,
        "text": section.text,
        "tables": {name: _records(frame) for name, frame in section.tables},
    }


def _plain_section(section: PlainSection) -> Section:
    """A management section (`monitoring.sections`: plain tables) as a report section."""
    blocks: list[Block] = [Text(section.text)]
    for name, frame in section.tables:
        blocks += [Heading(name), _table(frame)]
    return Section(section.title, tuple(blocks))


def render_html(run: MonitoringRun) -> str:
    """The report as one self-contained HTML page (templates of `features.html`)."""
    info = run.info
    return render_sections(
        f"riskgrade monitoring {info.as_of}",
        [
            *(build(run) for build in SECTIONS),
            *(_plain_section(s) for s in management_sections(run)),
        ],
        heading=f"riskgrade monitoring — {info.as_of} ({info.run_id})",
    )


def write_report(run: MonitoringRun, out_dir: Path | str) -> dict[str, Path]:
    """Write ``report.html``, ``report.json`` and CSVs of moves, drift, warnings and schedule.

    Returns:
        Name -> path of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / "report.html",
        "json": out / "report.json",
        "moves": out / "migrations.csv",
        "drift": out / "drift.csv",
        "warnings": out / "early_warnings.csv",
        "schedule": out / "review_schedule.csv",
    }
    paths["html"].write_text(render_html(run), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(to_json(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    moves = run.moves.copy()
    if "factors" in moves:
        moves["factors"] = moves["factors"].map(lambda f: json.dumps(f, ensure_ascii=False))
    moves.to_csv(paths["moves"], index=False)
    drift = run.drift.copy()
    for name in ("shares", "reference_shares"):
        if name in drift:
            drift[name] = drift[name].map(json.dumps)
    drift.to_csv(paths["drift"], index=False)
    run.warnings.to_csv(paths["warnings"], index=False)
    run.schedule.to_csv(paths["schedule"], index=False)
    paths["covenants"] = out / "covenants.csv"
    paths["segments"] = out / "segments.csv"
    run.covenants.to_csv(paths["covenants"], index=False)
    run.segments.to_csv(paths["segments"], index=False)
    if run.judgement is not None:
        paths["judgement"] = out / "judgement.csv"
        paths["judgement_by_analyst"] = out / "judgement_by_analyst.csv"
        run.judgement.judged.to_csv(paths["judgement"], index=False)
        run.judgement.by_analyst.to_csv(paths["judgement_by_analyst"], index=False)
    return paths
