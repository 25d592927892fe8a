"""Self-contained HTML validation report in the spirit of SR 11-7 (images base64, no CDN)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

import pandas as pd

from training.backtest import Backtest
from training.gates import GateResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f4f8}
.pass{color:#2e7d32;font-weight:bold}.fail{color:#c62828;font-weight:bold}
.green{background:#e8f5e9}.yellow{background:#fff8e1}.red{background:#ffebee}
.not-assessable,.empty{background:#eeeeee;color:#666}
.note{color:#555;font-size:0.9em}
img{max-width:100%;margin:0.5em 0}
"""


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame, row_class: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        css = f' class="{html.escape(str(row[row_class]).replace(" ", "-"))}"' if row_class else ""
        cells = "".join(f"<td>{_fmt(v)}</td>" for v in row.to_numpy())
        rows.append(f"<tr{css}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _kv(items: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in items.items()
    )
    return f"<table>{rows}</table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cycle_section(backtest: Backtest, metrics: Mapping[str, object]) -> list[str]:
    level = {
        "years": metrics.get("cycle.years"),
        "long-run default rate (mean of yearly rates)": metrics.get("cycle.long_run_default_rate"),
        "long-run mean PD": metrics.get("cycle.long_run_pd"),
        "ratio": metrics.get("cycle.level_ratio"),
        "interval of the ratio": f"{_fmt(metrics.get('cycle.level_low'))} - "
        f"{_fmt(metrics.get('cycle.level_high'))}",
        "rows per default event (overlap)": metrics.get("cycle.overlap"),
    }
    zone = {
        "assessable grades": metrics.get("cycle.grades.assessable"),
        "not assessable (grey)": metrics.get("cycle.grades.not_assessable"),
        "red grades": metrics.get("cycle.grades.red_count"),
        "red grades allowed (outside the red zone)": metrics.get("cycle.grades.red_allowed"),
        "traffic light of the red count": metrics.get("cycle.grades.zone"),
    }
    return [
        "<h2>4b. Calibration over the cycle (every window)</h2>",
        "<p>Gate <code>calibration_level</code>: the long-run default rate against the long-run "
        "mean PD; the interval comes from the year-to-year spread, so a downturn in the test "
        "window does not fail a model anchored through the cycle.</p>",
        _kv(level),
        _table(backtest.cycle),
        "<p>Gate <code>max_red_grades</code>: Jeffreys test per grade over every window, "
        "one-sided against the band's upper PD, on effective counts (rows / overlap). A grade "
        "whose test has too little power to detect a doubling of its upper PD is "
        "<em>not assessable</em> (grey), never red. The red count is read through a "
        "Basel-style traffic light (binomial zones).</p>",
        _table(backtest.cycle_grades, row_class="traffic_light"),
        _kv(zone),
    ]


def render_report(
    *,
    title: str,
    data: Mapping[str, object],
    method: Mapping[str, object],
    metrics: Mapping[str, object],
    grades: pd.DataFrame,
    challenger_grades: pd.DataFrame,
    gates: list[GateResult],
    plots: Mapping[str, bytes],
    limitations: list[str],
    fairness: pd.DataFrame | None = None,
    backtest: Backtest | None = None,
) -> str:
    """Render the validation report as one HTML string.

    Sections: data, method, discrimination on the test window, rank order by grade (test
    window), calibration over the cycle (every window: per year, long-run level, per grade with
    not-assessable grades in grey), stability, challenger comparison, fairness (when protected
    columns were given), gates, limitations.
    """
    perf_keys = ["auc", "gini", "ks", "brier", "log_loss", "ece", "default_rate", "mean_pd", "rows"]
    comparison = pd.DataFrame(
        {
            "metric": perf_keys,
            "model (Platt)": [metrics.get(f"test.{k}") for k in perf_keys],
            "isotonic": [metrics.get(f"isotonic.test.{k}") for k in perf_keys],
            "challenger (WOE LR)": [metrics.get(f"challenger.test.{k}") for k in perf_keys],
        }
    )
    gate_rows = "".join(
        f"<tr><th>{html.escape(g.name)}</th><td>{_fmt(g.value)}</td><td>{_fmt(g.threshold)}</td>"
        f'<td class="{"pass" if g.passed else "fail"}">{"PASS" if g.passed else "FAIL"}</td>'
        f'<td class="note">{html.escape(g.note)}</td></tr>'
        for g in gates
    )
    stability = {
        "PSI of the PD, train vs test (model)": metrics.get("stability.psi_score"),
        "PSI of the PD, train vs test (challenger)": metrics.get("challenger.stability.psi_score"),
        "largest grade share": metrics.get("grades.max_share"),
        "HHI of grade shares": metrics.get("grades.hhi"),
    }
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>1. Data</h2>",
        _kv(data),
        "<h2>2. Method</h2>",
        _kv(method),
        "<h2>3. Discrimination on the test window</h2>",
        _table(comparison),
        *(_img(plots[k], k) for k in ("roc", "ks") if k in plots),
        "<h2>4. Rank order by grade (test window)</h2>",
        "<p>Gate <code>grades_monotone</code>: adjacent grades (thinner than the minimum pooled "
        "with worse neighbours) are compared with a one-sided Fisher exact test; only a "
        "significant inversion fails. The Jeffreys lights of this table are point-in-time, for "
        "information: the test window is one phase of the cycle.</p>",
        _table(grades, row_class="traffic_light"),
        *([_table(backtest.rank_order)] if backtest is not None else []),
        *(_img(plots[k], k) for k in ("grades",) if k in plots),
        *(_cycle_section(backtest, metrics) if backtest is not None else []),
        *(_img(plots[k], k) for k in ("cycle", "cycle_grades", "calibration") if k in plots),
        "<h2>5. Stability and concentration</h2>",
        _kv(stability),
        "<h2>6. Challenger comparison</h2>",
        "<p>Logistic-regression scorecard on WOE bins, trained on the same window.</p>",
        _table(challenger_grades, row_class="traffic_light"),
        "<h2>7. Explanations</h2>",
        *(_img(plots[k], k) for k in ("shap", "importance") if k in plots),
    ]
    if fairness is not None and not fairness.empty:
        sections += [
            "<h2>8. Fairness (protected attributes, not used by the model)</h2>",
            _table(fairness),
        ]
    sections += [
        "<h2>Gates</h2>",
        "<table><tr><th>gate</th><th>value</th><th>threshold</th><th>result</th><th>how</th>"
        f"</tr>{gate_rows}"
        "</table>",
        "<h2>Limitations</h2>",
        "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in limitations) + "</ul>",
    ]
    body = "\n".join(sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
