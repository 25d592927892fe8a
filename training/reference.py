"""Reference distributions for drift monitoring, computed on the training window."""

from __future__ import annotations

import numpy as np

from features.spec import FeatureKind, FeatureSpec
from rating.scale import MasterScale


def _numeric_reference(x: np.ndarray, n_bins: int) -> dict[str, object]:
    present = x[~np.isnan(x)]
    edges = (
        np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1]))
        if present.size
        else np.empty(0)
    )
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "shares": [float(c) / len(x) for c in counts],
        "missing_share": float(np.isnan(x).mean()),
    }


def _categorical_reference(x: np.ndarray, categories: tuple[str, ...]) -> dict[str, object]:
    present = x[~np.isnan(x)].astype(np.int64)
    counts = np.bincount(present, minlength=len(categories)) if present.size else np.zeros(0)
    return {
        "kind": "categorical",
        "categories": list(categories) or [str(i) for i in range(len(counts))],
        "shares": [float(c) / len(x) for c in counts],
        "missing_share": float(np.isnan(x).mean()),
    }


def reference_distributions(
    x: np.ndarray, pd_: np.ndarray, spec: FeatureSpec, scale: MasterScale, n_bins: int = 10
) -> dict[str, object]:
    """Per-feature bin edges and shares, plus the PD and grade distribution of the training rows.

    Numeric bins: ``edges`` are inner quantile edges, bin ``i`` holds
    ``edges[i-1] <= x < edges[i]`` (``np.searchsorted(..., side="right")``); shares are over all
    rows, so ``sum(shares) + missing_share == 1``.
    """
    features: dict[str, object] = {}
    for i, feature in enumerate(spec.features):
        column = np.asarray(x[:, i], dtype=np.float64)
        features[feature.name] = (
            _categorical_reference(column, feature.categories)
            if feature.kind == FeatureKind.CATEGORICAL
            else _numeric_reference(column, n_bins)
        )
    grade_counts = np.bincount(scale.grade_index(pd_), minlength=scale.n_grades)
    return {
        "window": "train",
        "rows": len(pd_),
        "binning": "quantile edges, side=right",
        "features": features,
        "score": _numeric_reference(np.asarray(pd_, dtype=np.float64), n_bins),
        "grades": {
            g.name: float(c) / len(pd_) for g, c in zip(scale.grades, grade_counts, strict=True)
        },
    }
