"""Validation plots as PNG bytes (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from rating.calibration import PlattCalibration

if TYPE_CHECKING:
    import shap


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def roc_plot(y: np.ndarray, scores: dict[str, np.ndarray]) -> bytes:
    """ROC curves of several scores on the same rows."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    return _png(fig)


def ks_plot(y: np.ndarray, pd_: np.ndarray) -> bytes:
    """Cumulative PD distributions of defaults and non-defaults, with the KS gap marked."""
    grid = np.quantile(pd_, np.linspace(0, 1, 201))
    bad = np.searchsorted(np.sort(pd_[y == 1]), grid, side="right") / max((y == 1).sum(), 1)
    good = np.searchsorted(np.sort(pd_[y == 0]), grid, side="right") / max((y == 0).sum(), 1)
    at = int(np.argmax(np.abs(good - bad)))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, good, label="non-defaults")
    ax.plot(grid, bad, label="defaults")
    ax.vlines(
        grid[at], bad[at], good[at], color="black", label=f"KS = {abs(good[at] - bad[at]):.3f}"
    )
    ax.set(xscale="log", xlabel="PD", ylabel="cumulative share", title="KS (test)")
    ax.legend()
    return _png(fig)


def calibration_plot(y: np.ndarray, pds: dict[str, np.ndarray], n_bins: int = 10) -> bytes:
    """Mean PD against observed default rate per equal-frequency bin, one line per PD."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, pd_ in pds.items():
        order = np.argsort(pd_, kind="stable")
        chunks = [c for c in np.array_split(order, n_bins) if c.size]
        mean_pd = np.array([pd_[c].mean() for c in chunks])
        observed = np.array([y[c].mean() for c in chunks])
        ax.plot(mean_pd, observed, marker="o", label=name)
        top = max(top, mean_pd.max(), observed.max())
    ax.plot([0, top], [0, top], color="grey", linestyle=":")
    ax.set(xlabel="mean predicted PD", ylabel="observed default rate", title="Calibration (test)")
    ax.legend()
    return _png(fig)


def grade_plot(table: pd.DataFrame, title: str = "Default rate by grade (test)") -> bytes:
    """Observed default rate per grade against the grade's PD band (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(table))
    lower = table["pd_lower"].to_numpy()
    upper = np.minimum(table["pd_upper"].to_numpy(), 1.0)
    ax.bar(x, upper - lower, bottom=lower, color="#d9e6f2", width=0.6, label="PD band")
    colours = {
        "green": "#2e7d32",
        "yellow": "#f9a825",
        "red": "#c62828",
        "empty": "#9e9e9e",
        "not assessable": "#9e9e9e",
    }
    observed = table["observed_dr"].to_numpy()
    ax.scatter(
        x,
        np.where(observed > 0, observed, np.nan),
        c=[colours[t] for t in table["traffic_light"]],
        zorder=3,
        label="observed default rate",
    )
    ax.set_xticks(
        x,
        [
            f"{g}\n{lab}\nn={n}"
            for g, lab, n in zip(table["grade"], table["label"], table["customers"], strict=True)
        ],
    )
    ax.set(yscale="log", ylabel="default rate", title=title)
    ax.legend(loc="upper left")
    return _png(fig)


def cycle_plot(cycle: pd.DataFrame) -> bytes:
    """Observed default rate and mean PD per year over every window, with their long-run means."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(cycle))
    observed = cycle["default_rate"].to_numpy()
    predicted = cycle["mean_pd"].to_numpy()
    ax.plot(x, observed, marker="o", color="#c62828", label="observed default rate")
    ax.plot(x, predicted, marker="s", color="#1565c0", label="mean PD")
    ax.axhline(observed.mean(), color="#c62828", linestyle=":", label="long-run default rate")
    ax.axhline(predicted.mean(), color="#1565c0", linestyle=":", label="long-run mean PD")
    ax.set_xticks(x, [f"{y}\n{w}" for y, w in zip(cycle["year"], cycle["windows"], strict=True)])
    ax.set(ylabel="12-month default rate", title="Calibration over the cycle (all windows)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize="small")
    return _png(fig)


def shap_explanation(
    contribs: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    calibration: PlattCalibration | None = None,
) -> shap.Explanation:
    """A ``shap.Explanation`` of LightGBM ``pred_contrib`` output.

    Args:
        contribs: ``(n, n_features + 1)`` raw-margin SHAP values, the base value last (the
            model's own ``booster.predict(x, pred_contrib=True)``).
        x: ``(n, n_features)`` feature values of the same rows.
        names: feature names in column order.
        calibration: when given, values and base are scaled into calibrated log-odds
            (`rating.calibration.PlattCalibration.scale_contributions`, as the rating's
            explanations are); otherwise they stay in raw margin.

    Returns:
        Values ``contribs[:, :-1]``, base values ``contribs[:, -1]`` (scaled when calibrated):
        each row's values plus its base are the row's (calibrated) log-odds.

    Raises:
        ValueError: if the shapes of ``contribs``, ``x`` and ``names`` disagree.
    """
    import shap  # imported here: shap takes seconds to import and only plots need it

    values = np.asarray(contribs, dtype=np.float64)
    data = np.asarray(x, dtype=np.float64)
    if values.ndim != 2 or data.ndim != 2 or values.shape != (len(data), len(names) + 1):
        raise ValueError(
            f"contributions {values.shape} must be (rows, features + 1) for {data.shape} "
            f"rows of {len(names)} features"
        )
    if calibration is not None:
        values = calibration.scale_contributions(values)
    return shap.Explanation(
        values=values[:, :-1],
        base_values=values[:, -1],
        data=data,
        feature_names=list(names),
    )


def _shap_png(draw: Callable[[], object]) -> bytes:
    """Run a ``shap.plots`` call on a fresh pyplot figure and return it as PNG."""
    plt.close("all")
    plt.figure()
    draw()
    return _png(plt.gcf())


def shap_waterfall_plot(explanation: shap.Explanation, row: int, max_display: int = 12) -> bytes:
    """``shap.plots.waterfall`` of one row: from the base value to that row's log-odds."""
    import shap

    return _shap_png(
        lambda: shap.plots.waterfall(explanation[row], max_display=max_display, show=False)
    )


def shap_beeswarm_plot(explanation: shap.Explanation, max_display: int = 15) -> bytes:
    """``shap.plots.beeswarm`` of every row (colour = feature value)."""
    import shap

    return _shap_png(lambda: shap.plots.beeswarm(explanation, max_display=max_display, show=False))


def top_features(explanation: shap.Explanation, top: int) -> list[str]:
    """Names of the ``top`` features by mean absolute SHAP value (ties in column order)."""
    strength = np.abs(np.asarray(explanation.values)).mean(axis=0)
    order = np.argsort(-strength, kind="stable")[:top]
    return [str(explanation.feature_names[j]) for j in order]


def shap_dependence_plot(explanation: shap.Explanation, feature: str) -> bytes:
    """``shap.plots.scatter`` of one feature's SHAP values against its values.

    Colour is the feature shap finds interacting most with it.
    """
    import shap

    column = explanation[:, feature]
    return _shap_png(lambda: shap.plots.scatter(column, color=explanation, show=False))


def importance_plot(importance: dict[str, float], top: int = 20) -> bytes:
    """Gain importance bar chart."""
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(items) + 1.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1565c0")
    ax.set(xlabel="total gain", title="Feature importance (gain)")
    return _png(fig)
