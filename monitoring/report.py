"""The monitoring report: self-contained HTML (plots embedded as base64 PNG), JSON and CSVs."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring import plots
from monitoring.drift import SCORE_ROW
from monitoring.run import MonitoringRun
from monitoring.sections import Section, management_sections, management_summary
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


def _judgement_html(run: MonitoringRun) -> list[str]:
    found = run.judgement
    parts = ["<h2>Human judgement</h2>"]
    if found is None:
        parts.append(
            "<p class='muted'>no assessments or overrides in the raw folder; "
            f"{run.insufficient_data:,} performing customers below the data-sufficiency "
            "rule</p>"
        )
        return parts
    parts.append(
        f"<p>At {found.as_of}: the rating chain (model grade, qualitative notches, approved "
        f"overrides) for every customer; {found.insufficient:,} customers below the "
        "data-sufficiency rule (provisional tier until an expert rating).</p>"
    )
    parts.append("<h3>Override proposals of the activity window, by status</h3>")
    parts.append(_kv(found.status))
    parts.append("<h3>By grade (overrides in force)</h3>")
    if found.by_grade["overridden"].sum():
        parts.append(_img(plots.judgement_overrides(found.by_grade), "overrides by grade"))
    parts.append(_table(found.by_grade))
    parts.append("<h3>By analyst</h3>")
    parts.append(_table(found.by_analyst))
    parts.append("<h3>Size of the overrides in force, in notches (positive: upgrade)</h3>")
    parts.append(_table(found.size))
    parts.append("<h3>Outcomes and marginal contribution of judgement</h3>")
    if found.outcomes_as_of is None:
        parts.append(
            f"<p class='muted'>no stored run is {run.config.outcomes.horizon_months} months "
            "old yet</p>"
        )
    else:
        parts.append(
            f"<p>Customers performing at {found.outcomes_as_of}, followed for "
            f"{run.config.outcomes.horizon_months} months: AUC and accuracy ratio of the model "
            "grade and of the final grade on the same outcomes; intervals from a paired, "
            "seeded bootstrap of the customers.</p>"
        )
        parts.append(
            _img(
                plots.judgement_discrimination(found.discrimination, found.outcomes),
                "judgement discrimination",
            )
        )
        parts.append(_table(found.discrimination))
        parts.append(_table(found.outcomes))
    if found.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in found.notes) + "</ul>")
    return parts


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


def _section_json(section: Section) -> dict[str, Any]:
    return {
        "title": section.title,
        "text": section.text,
        "tables": {name: _records(frame) for name, frame in section.tables},
    }


def _section_html(section: Section) -> list[str]:
    parts = [f"<h2>{html.escape(section.title)}</h2>", f"<p>{html.escape(section.text)}</p>"]
    for name, frame in section.tables:
        parts.extend([f"<h3>{html.escape(name)}</h3>", _table(frame)])
    return parts


def _cell(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return ""
    if isinstance(value, list):
        return html.escape("; ".join(str(v) for v in value))
    return html.escape(str(value))


def _table(frame: pd.DataFrame, limit: int = MAX_HTML_ROWS) -> str:
    if frame is None or frame.empty:
        return "<p class='muted'>none</p>"
    shown = frame.head(limit)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    more = (
        f"<p class='muted'>{len(frame) - limit:,} more rows in the CSV</p>"
        if len(frame) > limit
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'/>"


def _kv(items: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in items.items()
    )
    return f"<table class='kv'>{rows}</table>"


_STYLE = """
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f2f4f4}.kv th{width:16em}.muted{color:#777}
img{max-width:100%;margin:.5em 0}h2{border-bottom:2px solid #1f4e79;padding-bottom:3px}
"""


def render_html(run: MonitoringRun) -> str:
    """The report as one self-contained HTML page."""
    info = run.info
    parts = [
        f"<h1>riskgrade monitoring — {info.as_of} ({html.escape(info.run_id)})</h1>",
        "<h2>Summary</h2>",
        _kv({k: v for k, v in summary(run).items() if k != "notes"}),
    ]
    if run.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in run.notes) + "</ul>")

    parts.append("<h2>Migration</h2>")
    if run.tier_matrix is None or run.grade_matrix is None:
        parts.append("<p class='muted'>first run: no previous run to compare with</p>")
    else:
        prev = run.previous
        parts.append(
            f"<p>From {prev.as_of if prev else ''} ({html.escape(info.previous_run_id or '')}) "
            f"to {info.as_of}: {run.downgrades:,} downgrades, {run.upgrades:,} upgrades; "
            f"{run.tier_matrix.new:,} new customers.</p>"
        )
        for title, matrix in (("Tiers", run.tier_matrix), ("Grades", run.grade_matrix)):
            parts.append(f"<h3>{title}</h3>")
            parts.append(_img(plots.migration_heatmap(matrix.counts, f"{title}: counts"), title))
            parts.append(_table(matrix.counts.reset_index()))
            shares = matrix.shares.round(3).reset_index()
            parts.append(_table(shares))
        parts.append("<h3>Every move, explained by the SHAP difference</h3>")
        shown = run.moves.drop(columns=["factors"], errors="ignore")
        parts.append(_table(shown))

    parts.append("<h2>Drift</h2>")
    if run.drift.empty:
        parts.append("<p class='muted'>no reference distributions in the bundle</p>")
    else:
        parts.append(
            "<p>PSI against the bundle's training reference (watch ≥ "
            f"{run.config.drift.watch}, alert ≥ {run.config.drift.alert}); psi_noise is the "
            "PSI an unchanged population of this size would show by chance.</p>"
        )
        parts.append(_img(plots.psi_bars(run.drift, run.config.drift), "PSI"))
        score = run.drift[run.drift["feature"] == SCORE_ROW].iloc[0]
        previous = None
        if run.previous_drift is not None and not run.previous_drift.empty:
            rows = run.previous_drift[run.previous_drift["feature"] == SCORE_ROW]
            previous = list(rows["shares"].iloc[0]) if len(rows) else None
        edges = run.score_edges
        parts.append(
            _img(
                plots.score_shift(
                    list(score["reference_shares"]), list(score["shares"]), previous, edges
                ),
                "score distribution",
            )
        )
        parts.append(_table(run.drift.drop(columns=["shares", "reference_shares"])))

    parts.append("<h2>Outcomes</h2>")
    if run.grade_outcomes.empty:
        parts.append(
            f"<p class='muted'>no stored run is {run.config.outcomes.horizon_months} months "
            "old yet</p>"
        )
    else:
        parts.append(_img(plots.default_rate_by_grade(run.grade_outcomes, run.scale), "defaults"))
        parts.append(_img(plots.auc_over_time(run.auc_history), "AUC"))
        parts.append(_table(run.auc_history))
        parts.append(_table(run.grade_outcomes))

    parts.extend(_judgement_html(run))
    parts.append("<h2>Early warnings</h2>")
    parts.append(_kv(action_counts(run.warnings)))
    parts.append(_table(run.warnings))
    for section in management_sections(run):
        parts.extend(_section_html(section))
    parts.append("<h2>Review schedule</h2>")
    parts.append(_table(run.schedule, limit=50))
    body = "\n".join(parts)
    title = f"riskgrade monitoring {info.as_of}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
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
