"""Univariate feature quality on a built dataset: IV, AUC, missing share and PSI over time.

* Information value: quantile bins of the non-missing values (``bins``, ties merged) plus one
  bin for missing values; categorical and flag features bin by level. Weight of evidence
  (`features.metrics.woe`, ``ln(good share / bad share)``) and IV
  (`features.metrics.information_value`) use additive smoothing (``0.5`` per bin) so empty cells
  stay finite.
* AUC of the raw feature against the label on non-missing rows (``auc``), the direction-aware
  one (``auc_directional``: ``auc`` for risk direction up, ``1 - auc`` for down, the larger of
  the two when the direction is unknown) and ``auc_max = max(auc, 1 - auc)``.
* PSI (`features.metrics`) between the first and the last snapshot, on deciles of the first
  plus a missing bin.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from features.errors import RiskgradeError
from features.html import Section, figure, render_sections, table
from features.metrics import auc, information_value, psi_of_shares, quantile_edges
from features.spec import FeatureKind, FeatureSpec, RiskDirection

_SMOOTHING = 0.5


class QualityError(RiskgradeError, ValueError):
    """The dataset cannot be assessed (missing label or snapshot column, no feature of the spec)."""


def _bin_codes(
    values: pd.Series, kind: FeatureKind, bins: int, edges: np.ndarray | None = None
) -> np.ndarray:
    """Integer bin per row: -1 for missing, else the level or quantile bin."""
    array = values.to_numpy(dtype="float64")
    codes = np.full(array.shape, -1, dtype=np.int64)
    present = ~np.isnan(array)
    if kind != FeatureKind.NUMERIC:
        _, codes[present] = np.unique(array[present], return_inverse=True)
        return codes
    if edges is None:
        edges = quantile_edges(array[present], bins)
    codes[present] = np.searchsorted(edges, array[present], side="right")
    return codes


def code_information_value(codes: np.ndarray, label: np.ndarray) -> float:
    """IV (`features.metrics.information_value`) of a binned feature, one bin per code."""
    levels, inverse = np.unique(codes, return_inverse=True)
    bad = np.bincount(inverse, weights=label, minlength=levels.size)
    good = np.bincount(inverse, minlength=levels.size) - bad
    return information_value(bad, good, _SMOOTHING)


def code_psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI (`features.metrics.psi_of_shares`) between two arrays of bin codes."""
    levels = np.union1d(expected, actual)
    e = np.array([(expected == level).mean() for level in levels])
    a = np.array([(actual == level).mean() for level in levels])
    return psi_of_shares(e, a)


def _present_auc(values: pd.Series, label: pd.Series) -> float:
    """AUC on the rows where the feature is present."""
    present = values.notna().to_numpy()
    return auc(label.to_numpy(dtype="float64")[present], values.to_numpy(dtype="float64")[present])


def feature_quality(
    dataset: pd.DataFrame,
    spec: FeatureSpec,
    label: str = "default_12m",
    snapshot: str = "snapshot_date",
    bins: int = 10,
) -> pd.DataFrame:
    """Quality table with one row per spec feature present in ``dataset``.

    Returns:
        Columns feature, group, risk_direction, iv, auc, auc_directional, auc_max,
        missing_share, psi_first_last (index: position in the spec).

    Raises:
        QualityError: if the label or snapshot column is missing, or no spec feature is present.
    """
    for column in (label, snapshot):
        if column not in dataset.columns:
            raise QualityError(f"dataset has no '{column}' column")
    features = [f for f in spec.features if f.name in dataset.columns]
    if not features:
        raise QualityError("dataset holds none of the feature spec's features")
    y = dataset[label].to_numpy(dtype="float64")
    first = dataset[snapshot] == dataset[snapshot].min()
    last = dataset[snapshot] == dataset[snapshot].max()
    rows = []
    for feature in features:
        values = dataset[feature.name].astype("float64")
        area = _present_auc(values, dataset[label])
        directional = {
            RiskDirection.UP: area,
            RiskDirection.DOWN: 1.0 - area,
        }.get(feature.risk_direction, max(area, 1.0 - area))
        reference = values[first].to_numpy()
        edges = quantile_edges(reference, bins)
        rows.append(
            {
                "feature": feature.name,
                "group": str(feature.group),
                "risk_direction": str(feature.risk_direction),
                "iv": code_information_value(_bin_codes(values, feature.kind, bins), y),
                "auc": area,
                "auc_directional": directional,
                "auc_max": max(area, 1.0 - area),
                "missing_share": float(values.isna().mean()),
                "psi_first_last": code_psi(
                    _bin_codes(values[first], feature.kind, bins, edges),
                    _bin_codes(values[last], feature.kind, bins, edges),
                ),
            }
        )
    return pd.DataFrame(rows)


def _bar_chart(table: pd.DataFrame, column: str, title: str, threshold: float | None) -> bytes:
    """A horizontal bar chart of one column, as PNG bytes."""
    ordered = table.sort_values(column, na_position="first")
    figure, axes = plt.subplots(figsize=(8, max(3.0, 0.22 * len(ordered))))
    axes.barh(ordered["feature"], ordered[column].fillna(0.0), color="#4472c4")
    if threshold is not None:
        axes.axvline(threshold, color="#c00000", linestyle="--", linewidth=1)
    axes.set_title(title)
    axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def render_quality_report(quality: pd.DataFrame, out_path: Path | str) -> Path:
    """Write a self-contained HTML report (plots embedded as base64, no external resources).

    Returns:
        The path written.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    charts = [
        ("Information value", "iv", "Information value", 0.02),
        ("Direction-aware AUC", "auc_directional", "Direction-aware AUC", 0.5),
        ("PSI first vs last snapshot", "psi_first_last", "PSI", 0.25),
    ]
    sections = [
        Section(title, (figure(_bar_chart(quality, column, label, line), title),))
        for title, column, label, line in charts
    ]
    sections.append(Section("Table", (table(quality),)))
    page = render_sections("Feature quality", sections)
    out_path.write_text(page, encoding="utf-8")
    return out_path
