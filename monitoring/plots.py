"""Monitoring charts as PNG bytes (object-oriented matplotlib: no pyplot global state)."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from monitoring.config import DriftConfig
from rating.scale import MasterScale


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def migration_heatmap(
    counts: pd.DataFrame, title: str, *, rows: str = "previous", columns: str = "current"
) -> bytes:
    """Heatmap of row shares with the counts written in the cells.

    The axes are titled ``rows`` (y) and ``columns`` (x).
    """
    values = counts.to_numpy(dtype=np.float64)
    totals = values.sum(axis=1, keepdims=True)
    shares = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    size = max(3.5, 0.55 * len(counts) + 1.5)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if values[i, j]:
                colour = "white" if shares[i, j] > 0.6 else "black"
                ax.text(j, i, f"{int(values[i, j])}", ha="center", va="center", fontsize=8,
                        color=colour)  # fmt: skip
    ax.set_xticks(range(len(counts.columns)), [str(c) for c in counts.columns])
    ax.set_yticks(range(len(counts.index)), [str(c) for c in counts.index])
    ax.set_xlabel(columns)
    ax.set_ylabel(rows)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=f"share of {rows} row")
    return _png(fig)


def psi_bars(drift: pd.DataFrame, config: DriftConfig, top: int = 25) -> bytes:
    """Horizontal PSI bars (score and the top features) with the watch and alert lines."""
    rows = drift[np.isfinite(drift["psi"].astype(float))].head(top + 1)
    fig = Figure(figsize=(8.0, 1.0 + 0.28 * max(len(rows), 1)))
    ax = fig.add_subplot()
    colours = [
        "#c0392b" if f == "alert" else "#e67e22" if f == "watch" else "#7f8c8d"
        for f in rows["flag"]
    ]
    positions = np.arange(len(rows))
    ax.barh(positions, rows["psi"].astype(float), color=colours)
    ax.set_yticks(positions, [str(n) for n in rows["feature"]], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(config.watch, color="#e67e22", linestyle="--", linewidth=1, label="watch")
    ax.axvline(config.alert, color="#c0392b", linestyle="--", linewidth=1, label="alert")
    n = int(rows["n"].iloc[0]) if len(rows) else 0
    ax.set_xlabel(f"PSI against the training reference (n = {n:,})")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def score_shift(
    reference: list[float], current: list[float], previous: list[float] | None, edges: list[float]
) -> bytes:
    """Shares of the PD in the reference bins: reference, previous run and current run."""
    labels = [f"<{edges[0]:.2%}"] if edges else ["all"]
    labels += [f"{lo:.2%}-{hi:.2%}" for lo, hi in itertools.pairwise(edges)]
    if edges:
        labels.append(f">={edges[-1]:.2%}")
    k = len(labels)
    fig = Figure(figsize=(8.0, 3.6))
    ax = fig.add_subplot()
    x = np.arange(k)
    series = [("reference", reference[:k], "#95a5a6")]
    if previous:
        series.append(("previous run", previous[:k], "#5dade2"))
    series.append(("current run", current[:k], "#1f4e79"))
    width = 0.8 / len(series)
    for i, (name, shares, colour) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, shares, width, label=name, color=colour)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of customers")
    ax.set_xlabel("PD bin (reference deciles)")
    ax.legend(fontsize=8)
    return _png(fig)


def default_rate_by_grade(outcomes: pd.DataFrame, scale: MasterScale) -> bytes:
    """Realised default rate per grade for every back-tested run, over the PD bands."""
    fig = Figure(figsize=(8.0, 3.8))
    ax = fig.add_subplot()
    names = [g.name for g in scale.grades]
    x = np.arange(len(names))
    ax.fill_between(
        x,
        [g.lower for g in scale.grades],
        [min(g.upper, 1.0) for g in scale.grades],
        color="#d5dbdb",
        step="mid",
        label="PD band",
    )
    for run_id, rows in outcomes.groupby("run_id", sort=True):
        rows = rows.set_index("grade").reindex(names)
        as_of = pd.Timestamp(rows["as_of"].dropna().iloc[0]).date()
        ax.plot(x, rows["default_rate"], marker="o", label=f"{as_of} ({run_id})")
    ax.set_yscale("symlog", linthresh=0.001)
    ax.set_xticks(x, names)
    ax.set_xlabel("grade at the run date")
    ax.set_ylabel("realised 12-month default rate")
    ax.legend(fontsize=7)
    return _png(fig)


def auc_over_time(history: pd.DataFrame) -> bytes:
    """AUC of the PD per back-tested run."""
    fig = Figure(figsize=(6.0, 3.0))
    ax = fig.add_subplot()
    ax.plot(pd.to_datetime(history["as_of"]), history["auc"], marker="o")
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("AUC")
    ax.set_xlabel("run date")
    return _png(fig)


def judgement_overrides(by_grade: pd.DataFrame) -> bytes:
    """Overrides in force per grade: upgrades above the axis, downgrades below, and the rate."""
    fig = Figure(figsize=(7.0, 3.2))
    ax = fig.add_subplot()
    x = np.arange(len(by_grade))
    ax.bar(x, by_grade["up"], color="#27ae60", label="overridden up")
    ax.bar(x, -by_grade["down"], color="#c0392b", label="overridden down")
    ax.axhline(0, color="#555", linewidth=0.8)
    ax.set_xticks(x, [str(g) for g in by_grade["grade"]])
    ax.set_xlabel("model-plus-qualitative grade")
    ax.set_ylabel("customers")
    rate = ax.twinx()
    rate.plot(x, by_grade["override_rate"], color="#1f4e79", marker="o", label="override rate")
    rate.set_ylabel("override rate")
    rate.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def judgement_discrimination(table: pd.DataFrame, outcomes: pd.DataFrame) -> bytes:
    """AUC of the model and final grades with confidence intervals; default rate by direction."""
    fig = Figure(figsize=(9.0, 3.2))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    rows = table[table["grade"].isin(["model", "final"])]
    x = np.arange(len(rows))
    low = (rows["auc"] - rows["ci_low"]).clip(lower=0)
    high = (rows["ci_high"] - rows["auc"]).clip(lower=0)
    left.bar(x, rows["auc"], yerr=[low, high], capsize=6, color=["#95a5a6", "#1f4e79"])
    left.set_xticks(x, [f"{g} grade" for g in rows["grade"]])
    left.set_ylim(0.5, 1.0)
    left.set_ylabel("AUC (95% CI)")
    diff = table[table["grade"] == "difference"]
    if len(diff):
        d = diff.iloc[0]
        left.set_title(
            f"final - model: {d['auc']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
            fontsize=9,
        )
    if len(outcomes):
        xs = np.arange(len(outcomes))
        width = 0.27
        right.bar(xs - width, outcomes["default_rate"], width, label="realised", color="#2c3e50")
        right.bar(xs, outcomes["mean_model_pd"], width, label="model PD", color="#95a5a6")
        right.bar(xs + width, outcomes["mean_final_pd"], width, label="final PD", color="#5dade2")
        right.set_xticks(xs, [f"{d} (n={int(n)})" for d, n in zip(
            outcomes["direction"], outcomes["customers"], strict=True)])  # fmt: skip
        right.set_ylabel("12-month default rate")
        right.set_xlabel("override direction")
        right.legend(fontsize=7)
    return _png(fig)
