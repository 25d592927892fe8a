"""Self-contained HTML validation report in the spirit of SR 11-7 (images base64, no CDN).

Rendered from ``training/templates/validation_report.html.j2`` on the shared base page and
macros of `features.html`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from features.html import Table, figure, key_values, render, table
from training.backtest import Backtest
from training.gates import GateResult

SHAP_DEPENDENCE_PREFIX = "shap_dependence_"
"""Plot names of the SHAP dependence plots (one per top feature) start with this."""


def _frame(frame: pd.DataFrame, row_class: str | None = None) -> Table:
    """A table block that is a table even when the frame is empty (headers only)."""
    block = table(frame, row_class=row_class)
    return (
        block
        if isinstance(block, Table)
        else Table(columns=tuple(map(str, frame.columns)), rows=())
    )


def _cycle(backtest: Backtest, metrics: Mapping[str, object]) -> dict[str, Table]:
    low, high = metrics.get("cycle.level_low"), metrics.get("cycle.level_high")
    level = {
        "years": metrics.get("cycle.years"),
        "long-run default rate (mean of yearly rates)": metrics.get("cycle.long_run_default_rate"),
        "long-run mean PD": metrics.get("cycle.long_run_pd"),
        "ratio": metrics.get("cycle.level_ratio"),
        "interval of the ratio": f"{low:.4g} - {high:.4g}"
        if isinstance(low, float) and isinstance(high, float)
        else f"{low} - {high}",
        "rows per default event (overlap)": metrics.get("cycle.overlap"),
    }
    zone = {
        "assessable grades": metrics.get("cycle.grades.assessable"),
        "not assessable (grey)": metrics.get("cycle.grades.not_assessable"),
        "red grades": metrics.get("cycle.grades.red_count"),
        "red grades allowed (outside the red zone)": metrics.get("cycle.grades.red_allowed"),
        "traffic light of the red count": metrics.get("cycle.grades.zone"),
    }
    return {
        "level": key_values(level),
        "years": _frame(backtest.cycle),
        "grades": _frame(backtest.cycle_grades, row_class="traffic_light"),
        "zone": key_values(zone),
    }


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
    shap_rows: int = 0,
) -> str:
    """Render the validation report as one HTML string.

    Sections: data, method, discrimination on the test window, rank order by grade (test
    window), calibration over the cycle (every window: per year, long-run level, per grade with
    not-assessable grades in grey), stability, challenger comparison, explanations (SHAP
    waterfall of one decision, beeswarm of the test rows, dependence of the top features),
    fairness (when protected columns were given), gates, limitations.

    Args:
        title: page title.
        data: data lineage and sizes (shown as names and values).
        method: model, calibration, challenger and split (names and values).
        metrics: the run's metrics (``test.*``, ``isotonic.test.*``, ``challenger.test.*``,
            ``stability.*``, ``grades.*``, ``cycle.*``).
        grades: grade table of the test window (``traffic_light`` column colours the rows).
        challenger_grades: the challenger's grade table.
        gates: gate results in display order.
        plots: PNG per plot name (``roc``, ``ks``, ``grades``, ``cycle``, ``cycle_grades``,
            ``calibration``, ``shap_waterfall``, ``shap`` (beeswarm), ``shap_dependence_<f>``,
            ``importance``); missing ones are left out.
        limitations: plain-text limitations.
        fairness: fairness table, when protected columns were given.
        backtest: the every-window backtest (rank order and calibration over the cycle).
        shap_rows: number of test rows the SHAP plots were drawn from.
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
    stability = {
        "PSI of the PD, train vs test (model)": metrics.get("stability.psi_score"),
        "PSI of the PD, train vs test (challenger)": metrics.get("challenger.stability.psi_score"),
        "largest grade share": metrics.get("grades.max_share"),
        "HHI of grade shares": metrics.get("grades.hhi"),
    }
    return render(
        "validation_report.html.j2",
        package="training",
        title=title,
        data=key_values(data),
        method=key_values(method),
        comparison=_frame(comparison),
        grades=_frame(grades, row_class="traffic_light"),
        rank_order=_frame(backtest.rank_order) if backtest is not None else None,
        cycle=_cycle(backtest, metrics) if backtest is not None else None,
        stability=key_values(stability),
        challenger_grades=_frame(challenger_grades, row_class="traffic_light"),
        fairness=_frame(fairness) if fairness is not None and not fairness.empty else None,
        gates=gates,
        limitations=limitations,
        plots={name: figure(png, name) for name, png in plots.items()},
        dependence=[n for n in plots if n.startswith(SHAP_DEPENDENCE_PREFIX)],
        shap_rows=shap_rows,
    )
