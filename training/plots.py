"""Validation plots as PNG bytes (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


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


def beeswarm_plot(
    contribs: np.ndarray, x: np.ndarray, names: list[str], top: int = 15, seed: int = 0
) -> bytes:
    """SHAP beeswarm from ``pred_contrib``: one row per feature, colour = value rank."""
    values = contribs[:, : len(names)]
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:top][::-1]
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.5))
    for row, j in enumerate(order):
        column = x[:, j]
        ranks = pd.Series(column).rank(pct=True).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, size=len(column))
        ax.scatter(
            values[:, j],
            row + jitter,
            c=np.nan_to_num(ranks, nan=0.5),
            cmap="coolwarm",
            s=4,
            alpha=0.6,
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(np.arange(len(order)), [names[j] for j in order])
    ax.set(xlabel="SHAP value (raw log-odds)", title="SHAP summary (test; red = high value)")
    return _png(fig)


def importance_plot(importance: dict[str, float], top: int = 20) -> bytes:
    """Gain importance bar chart."""
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(items) + 1.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1565c0")
    ax.set(xlabel="total gain", title="Feature importance (gain)")
    return _png(fig)
