"""Population stability (PSI) of the score and every feature against the bundle's reference.

The reference (``reference.json``, written by training on the training window) holds per
feature either quantile ``edges`` (numeric: bin ``i`` holds ``edges[i-1] <= x < edges[i]``,
``np.searchsorted(edges, x, side="right")``) or category ``shares`` (categorical codes), plus
the ``missing_share``; shares are over all rows so ``sum(shares) + missing_share == 1``. The
current values are binned the same way and the missing values form one more bin, so a change
in the missing share counts in the PSI and is also reported on its own.

``PSI = sum((a - e) * ln(a / e))`` over the bins, with shares floored at ``epsilon``
(`features.metrics.psi_of_shares`). Small
samples inflate PSI: an unchanged population of ``n`` customers scores about
``(bins - 1) * (1/n + 1/n_reference)`` by chance alone; that figure is shown as ``psi_noise``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.metrics import psi_of_shares
from features.spec import FeatureSpec
from monitoring.config import DriftConfig

SCORE_ROW = "score (PD)"
"""Name of the drift row of the model's PD."""

DRIFT_COLUMNS = [
    "feature",
    "group",
    "kind",
    "n",
    "reference_rows",
    "psi",
    "psi_noise",
    "flag",
    "missing_share",
    "reference_missing_share",
    "missing_delta",
    "shares",
    "reference_shares",
]


def bin_counts(values: np.ndarray, reference: Mapping[str, Any]) -> np.ndarray:
    """Counts of ``values`` in the reference bins, the missing count last (as floats).

    Raises:
        ValueError: if the reference entry has an unknown kind.
    """
    x = np.asarray(values, dtype=np.float64)
    missing = np.isnan(x)
    present = x[~missing]
    kind = reference.get("kind")
    if kind == "numeric":
        edges = np.asarray(reference["edges"], dtype=np.float64)
        counts = np.bincount(
            np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1
        )
    elif kind == "categorical":
        n_levels = len(reference["shares"])
        codes = present.astype(np.int64)
        # Codes outside the reference levels (a category added later) share one extra bin.
        unknown = (codes < 0) | (codes >= n_levels)
        counts = np.bincount(codes[~unknown], minlength=n_levels)
        counts = np.append(counts, int(unknown.sum()))
    else:
        raise ValueError(f"reference entry has unknown kind {kind!r}")
    return np.append(counts, int(missing.sum())).astype(np.float64)


def bin_shares(values: np.ndarray, reference: Mapping[str, Any]) -> np.ndarray:
    """Shares of ``values`` in the reference bins, the missing share last.

    Raises:
        ValueError: if the reference entry has an unknown kind.
    """
    counts = bin_counts(values, reference)
    n = len(values)
    return counts / n if n else counts


def reference_shares(reference: Mapping[str, Any]) -> np.ndarray:
    """Reference shares in the layout of `bin_shares` (bins, [unknown category], missing)."""
    shares = list(reference["shares"])
    if reference.get("kind") == "categorical":
        shares.append(0.0)
    return np.asarray([*shares, reference.get("missing_share", 0.0)], dtype=np.float64)


def _flag(value: float, config: DriftConfig) -> str:
    if not math.isfinite(value):
        return "no reference"
    if value >= config.alert:
        return "alert"
    if value >= config.watch:
        return "watch"
    return "ok"


def _row(
    name: str,
    group: str,
    kind: str,
    tally: _Bins,
    reference: Mapping[str, Any] | None,
    reference_rows: int,
    config: DriftConfig,
) -> dict[str, Any]:
    n = tally.n
    missing = tally.missing / n if n else math.nan
    if reference is None or n == 0 or tally.counts is None:
        return {
            "feature": name,
            "group": group,
            "kind": kind,
            "n": n,
            "reference_rows": reference_rows,
            "psi": math.nan,
            "psi_noise": math.nan,
            "flag": "no reference" if reference is None else "no data",
            "missing_share": missing,
            "reference_missing_share": math.nan,
            "missing_delta": math.nan,
            "shares": [],
            "reference_shares": [],
        }
    actual = tally.counts / n
    expected = reference_shares(reference)
    value = psi_of_shares(expected, actual, config.epsilon)
    used_bins = int(np.count_nonzero((expected > 0) | (actual > 0)))
    inverse = 1.0 / n + (1.0 / reference_rows if reference_rows > 0 else 0.0)
    ref_missing = float(reference.get("missing_share", 0.0))
    return {
        "feature": name,
        "group": group,
        "kind": kind,
        "n": n,
        "reference_rows": reference_rows,
        "psi": value,
        "psi_noise": max(used_bins - 1, 0) * inverse,
        "flag": _flag(value, config) if n else "no data",
        "missing_share": missing,
        "reference_missing_share": ref_missing,
        "missing_delta": missing - ref_missing,
        "shares": [float(s) for s in actual],
        "reference_shares": [float(s) for s in expected],
    }


class _Bins:
    """Values seen so far of one column: their number, missing count and reference bin counts."""

    def __init__(self, reference: Mapping[str, Any] | None) -> None:
        self.reference = reference
        self.n = 0
        self.missing = 0
        self.counts: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        x = np.asarray(values, dtype=np.float64)
        self.n += len(x)
        self.missing += int(np.isnan(x).sum())
        if self.reference is None:
            return
        counts = bin_counts(x, self.reference)
        self.counts = counts if self.counts is None else self.counts + counts


def has_reference(reference: Mapping[str, Any]) -> bool:
    """Whether a bundle reference holds feature distributions (training writes them)."""
    return isinstance(reference.get("features"), Mapping) and isinstance(
        reference.get("score"), Mapping
    )


class DriftTally:
    """Drift of a portfolio rated in parts: each part's values binned, the counts summed.

    The bins are the reference's, so the counts of the parts add up to those of the whole
    portfolio and :meth:`table` equals :func:`drift_table` of all the rows at once.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        spec: FeatureSpec,
        reference: Mapping[str, Any],
        config: DriftConfig | None = None,
    ) -> None:
        """Start with no rows.

        Raises:
            ValueError: if the reference has no feature distributions.
        """
        if not has_reference(reference):
            raise ValueError("the bundle's reference holds no 'features'/'score' distributions")
        self.names = list(feature_names)
        self.spec, self.reference = spec, reference
        self.config = config or DriftConfig()
        features: Mapping[str, Any] = reference["features"]
        self.score = _Bins(reference["score"])
        self.columns = [_Bins(features.get(name)) for name in self.names]

    def add(self, features: np.ndarray, pd_: np.ndarray) -> None:
        """Count the next customers: their model input (spec order) and model PDs.

        Raises:
            ValueError: if the matrix does not match the names.
        """
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.names):
            raise ValueError(
                f"features must be (n, {len(self.names)}) for the names given, got {matrix.shape}"
            )
        self.score.add(np.asarray(pd_, dtype=np.float64))
        for j, column in enumerate(self.columns):
            column.add(matrix[:, j])

    def table(self) -> pd.DataFrame:
        """The drift rows of every customer counted (see :func:`drift_table`)."""
        rows_ref = int(self.reference.get("rows", 0))
        score = _row(
            SCORE_ROW, "score", "numeric", self.score, self.reference["score"], rows_ref,
            self.config,
        )  # fmt: skip
        rows = []
        for name, column in zip(self.names, self.columns, strict=True):
            definition = self.spec.by_name(name)
            rows.append(
                _row(
                    name,
                    definition.group.value,
                    definition.kind.value,
                    column,
                    column.reference,
                    rows_ref,
                    self.config,
                )
            )
        rows.sort(key=lambda r: -r["psi"] if math.isfinite(r["psi"]) else math.inf)
        return pd.DataFrame([score, *rows], columns=DRIFT_COLUMNS)


def drift_table(
    features: np.ndarray,
    feature_names: Sequence[str],
    pd_: np.ndarray,
    spec: FeatureSpec,
    reference: Mapping[str, Any],
    config: DriftConfig | None = None,
) -> pd.DataFrame:
    """PSI and missing shares of the score and every feature against the reference.

    Args:
        features: ``(n, n_features)`` model input of the performing customers (spec order).
        feature_names: column names of ``features``.
        pd_: ``(n,)`` model PDs of the same customers.
        spec: the model's feature spec (groups and kinds).
        reference: the bundle's reference distributions.
        config: PSI thresholds.

    Returns:
        One row per feature, the score row first, then features by decreasing PSI; columns
        ``DRIFT_COLUMNS`` (``shares``/``reference_shares`` are lists: bins, then missing).

    Raises:
        ValueError: if the matrix does not match the names or the reference has no features.
    """
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise ValueError(
            f"features must be (n, {len(feature_names)}) for the names given, got {matrix.shape}"
        )
    tally = DriftTally(feature_names, spec, reference, config)
    tally.add(matrix, pd_)
    return tally.table()
