"""Self-contained HTML validation report in the spirit of SR 11-7 (images base64, no CDN)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

import pandas as pd

from training.gates import GateResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f4f8}
.pass{color:#2e7d32;font-weight:bold}.fail{color:#c62828;font-weight:bold}
.green{background:#e8f5e9}.yellow{background:#fff8e1}.red{background:#ffebee}
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
        css = f' class="{html.escape(str(row[row_class]))}"' if row_class else ""
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
) -> str:
    """Render the validation report as one HTML string.

    Sections: data, method, performance, calibration by grade, stability, challenger
    comparison, fairness (when protected columns were given), gates, limitations.
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
        f'<td class="{"pass" if g.passed else "fail"}">{"PASS" if g.passed else "FAIL"}</td></tr>'
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
        "<h2>3. Performance on the test window</h2>",
        _table(comparison),
        *(_img(plots[k], k) for k in ("roc", "ks") if k in plots),
        "<h2>4. Calibration by grade</h2>",
        "<p>Jeffreys test, one-sided against the band's upper PD "
        "(red p &lt; 0.01, yellow p &lt; 0.05).</p>",
        _table(grades, row_class="traffic_light"),
        *(_img(plots[k], k) for k in ("grades", "calibration") if k in plots),
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
        f"<table><tr><th>gate</th><th>value</th><th>threshold</th><th>result</th></tr>{gate_rows}"
        "</table>",
        "<h2>Limitations</h2>",
        "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in limitations) + "</ul>",
    ]
    body = "\n".join(sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
