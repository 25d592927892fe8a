"""Challenger: a logistic-regression scorecard on WOE bins.

Numeric features, ``binning: optbinning`` (default): optimal binning by constraint programming
(`optbinning.OptimalBinning`: CART pre-bins, then the bins maximising information value under a
monotone bad rate, in the spec's risk direction or either direction when it has none, each bin
holding at least ``min_bin_share`` of the rows). ``binning: quantile``: quantile bins, small
bins merged into a neighbour. Either way adjacent bins are then merged until the (smoothed) WOE
is monotone (direction from the spec, else from the data's trend), so the scorecard is monotone
in every numeric feature, and missing values get their own bin.
Categorical features: one bin per code plus a missing bin. WOE and information value are
`features.metrics.woe` and `features.metrics.information_value`, ``ln(good share / bad share)``
with additive smoothing, so a higher WOE means a lower risk and a feature's coefficient is
negative when it ranks risk the right way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from features.metrics import information_value
from features.metrics import woe as weight_of_evidence
from features.spec import FeatureKind, FeatureSpec, RiskDirection
from training.config import ChallengerConfig
from training.errors import TrainingError


@dataclass(frozen=True)
class FeatureBins:
    """WOE bins of one feature: numeric upper edges or categorical codes, and WOE values."""

    name: str
    categorical: bool
    edges: np.ndarray
    """Numeric: inner bin edges (bin i holds ``edges[i-1] < x <= edges[i]``). Categorical: codes."""
    woe: np.ndarray
    """WOE per bin (numeric: ``len(edges) + 1`` bins; categorical: one per code)."""
    woe_missing: float
    """WOE of missing values (and of unseen categorical codes)."""
    iv: float

    def transform(self, x: np.ndarray) -> np.ndarray:
        """WOE of every value."""
        x = np.asarray(x, dtype=np.float64)
        out = np.full(x.shape, self.woe_missing)
        present = ~np.isnan(x)
        if self.categorical and len(self.edges) == 0:
            values = np.full(int(present.sum()), self.woe_missing)
        elif self.categorical:
            pos = np.searchsorted(self.edges, x[present])
            pos = np.clip(pos, 0, len(self.edges) - 1)
            known = self.edges[pos] == x[present]
            values = np.where(known, self.woe[pos], self.woe_missing)
        else:
            values = self.woe[np.searchsorted(self.edges, x[present], side="left")]
        out[present] = values
        return out


def _merge(edges: list[float], n: list[float], bad: list[float], i: int) -> None:
    """Merge bin ``i`` with bin ``i + 1`` in place."""
    n[i] += n.pop(i + 1)
    bad[i] += bad.pop(i + 1)
    edges.pop(i)


def _counts(edges: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and bads per bin of ``edges`` (bin i: ``edges[i-1] < x <= edges[i]``)."""
    idx = np.searchsorted(edges, x, side="left")
    n = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    bad = np.bincount(idx, weights=y, minlength=len(edges) + 1)
    return n, bad


def _monotone(
    edges: list[float],
    n: list[float],
    bad: list[float],
    direction: RiskDirection,
    smoothing: float,
) -> None:
    """Merge adjacent bins in place until the WOE is monotone in the risk direction.

    The test is on the smoothed odds ``(bad + s) / (good + s)`` that order the WOE
    (`features.metrics.woe`), not on the raw bad rate: with rare defaults, additive smoothing
    can reverse two bins whose raw rates are in order, and the scorecard is linear in the WOE.
    Without a known direction, the direction is the trend of the odds over the bins.
    """
    if len(n) < 2:
        return
    odds = (np.asarray(bad) + smoothing) / (np.asarray(n) - np.asarray(bad) + smoothing)
    sign = {RiskDirection.UP: 1.0, RiskDirection.DOWN: -1.0}.get(direction)
    if sign is None:
        trend = np.corrcoef(np.arange(len(odds)), odds)[0, 1] if len(odds) > 2 else np.diff(odds)[0]
        sign = 1.0 if np.nan_to_num(trend) >= 0 else -1.0
    while len(n) > 1:
        odds = (np.asarray(bad) + smoothing) / (np.asarray(n) - np.asarray(bad) + smoothing)
        steps = sign * np.diff(odds)
        if (steps >= 0).all():
            return
        _merge(edges, n, bad, int(np.argmin(steps)))


def _quantile_bins(
    x: np.ndarray, y: np.ndarray, config: ChallengerConfig
) -> tuple[list[float], list[float], list[float]]:
    """Edges and per-bin (count, bad): quantile bins, small ones merged into a neighbour."""
    quantiles = np.quantile(x, np.linspace(0, 1, config.n_bins + 1)[1:-1])
    edges_array = np.unique(quantiles)
    counts, bads = _counts(edges_array, x, y)
    edges, n, bad = list(edges_array), list(counts), list(bads)
    # Empty or small bins carry no stable WOE: fold them into the neighbour with fewer rows.
    min_n = config.min_bin_share * len(x)
    while len(n) > 1 and min(n) < min_n:
        i = int(np.argmin(n))
        j = i - 1 if i == len(n) - 1 or (i > 0 and n[i - 1] <= n[i + 1]) else i
        _merge(edges, n, bad, j)
    return edges, n, bad


_TRENDS = {RiskDirection.UP: "ascending", RiskDirection.DOWN: "descending"}


def _optimal_bins(
    x: np.ndarray, y: np.ndarray, direction: RiskDirection, config: ChallengerConfig
) -> tuple[list[float], list[float], list[float]]:
    """Edges and per-bin (count, bad) from `optbinning.OptimalBinning` (CP solver, seeded).

    optbinning's bin i holds ``splits[i-1] <= x < splits[i]``; each split becomes the largest
    float below it, so the edges keep this module's ``edges[i-1] < x <= edges[i]`` exactly.
    """
    from optbinning import OptimalBinning  # imported here: it takes seconds to import

    trend = _TRENDS.get(direction, "auto_asc_desc") if config.monotone else None
    binning = OptimalBinning(
        dtype="numerical",
        solver="cp",
        max_n_prebins=config.n_bins,
        min_prebin_size=config.min_bin_share,
        min_bin_size=config.min_bin_share,
        monotonic_trend=trend,
    )
    binning.fit(x, y.astype(np.int64))
    splits = np.asarray(binning.splits, dtype=np.float64)
    edges = np.nextafter(splits, -np.inf)
    n, bad = _counts(edges, x, y)
    return list(edges), list(n), list(bad)


def _numeric_bins(
    x: np.ndarray, y: np.ndarray, direction: RiskDirection, config: ChallengerConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges and per-bin (count, bad) of a numeric feature's non-missing values."""
    if config.binning == "optbinning":
        edges, n, bad = _optimal_bins(x, y, direction, config)
    else:
        edges, n, bad = _quantile_bins(x, y, config)
    if config.monotone:
        _monotone(edges, n, bad, direction, config.woe_smoothing)
    return np.asarray(edges, dtype=np.float64), np.asarray(n), np.asarray(bad)


def fit_bins(
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    kind: FeatureKind,
    direction: RiskDirection,
    config: ChallengerConfig,
) -> FeatureBins:
    """Bin one feature on the training rows and compute WOE and information value."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    missing = np.isnan(x)
    xs, ys = x[~missing], y[~missing]
    categorical = kind == FeatureKind.CATEGORICAL
    edges: np.ndarray
    n: np.ndarray
    bad: np.ndarray
    if xs.size == 0:
        edges, n, bad = np.empty(0), np.empty(0), np.empty(0)
    elif categorical:
        edges, codes = np.unique(xs, return_inverse=True)
        n = np.bincount(codes).astype(float)
        bad = np.bincount(codes, weights=ys)
    else:
        edges, n, bad = _numeric_bins(xs, ys, direction, config)
    all_bad = np.append(bad, y[missing].sum())
    all_good = np.append(n - bad, missing.sum() - y[missing].sum())
    woe = weight_of_evidence(all_bad, all_good, config.woe_smoothing)
    iv = information_value(all_bad, all_good, config.woe_smoothing)
    return FeatureBins(
        name=name,
        categorical=categorical,
        edges=edges,
        woe=woe[:-1],
        woe_missing=float(woe[-1]),
        iv=iv,
    )


@dataclass(frozen=True)
class WoeScorecard:
    """Fitted challenger: bins per feature and a logistic regression on the WOE matrix."""

    bins: tuple[FeatureBins, ...]
    model: LogisticRegression
    active: tuple[bool, ...]
    """Features in the regression (a feature whose coefficient took the wrong sign is left out)."""

    def woe_matrix(self, x: np.ndarray) -> np.ndarray:
        """WOE-encode a matrix whose columns follow the spec order (left-out features are 0)."""
        return _woe_matrix(self.bins, x, self.active)

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of each row."""
        return self.model.decision_function(self.woe_matrix(x))

    def predict_pd(self, x: np.ndarray) -> np.ndarray:
        """PD of each row."""
        return self.model.predict_proba(self.woe_matrix(x))[:, 1]

    def information_values(self) -> dict[str, float]:
        """Information value per feature (training window)."""
        return {b.name: b.iv for b in self.bins}


def _woe_matrix(
    bins: tuple[FeatureBins, ...], x: np.ndarray, active: tuple[bool, ...]
) -> np.ndarray:
    return np.column_stack(
        [
            b.transform(x[:, i]) if on else np.zeros(len(x))
            for i, (b, on) in enumerate(zip(bins, active, strict=True))
        ]
    )


def fit_scorecard(
    x: np.ndarray, y: np.ndarray, spec: FeatureSpec, config: ChallengerConfig, seed: int
) -> WoeScorecard:
    """Fit the WOE logistic-regression challenger on the training rows.

    WOE is oriented so that higher means less risky (`features.metrics.woe`); with
    ``config.monotone`` a feature with a known risk direction whose coefficient comes out
    positive (its term would run against that direction) is left out and the regression
    refitted, until no such coefficient is left.

    Raises:
        TrainingError: if the matrix does not match the spec or the labels hold one class.
    """
    if x.shape[1] != len(spec.features):
        raise TrainingError(f"matrix has {x.shape[1]} columns, the spec {len(spec.features)}")
    if np.unique(y).size < 2:
        raise TrainingError("the challenger needs both classes in the training window")
    bins = tuple(
        fit_bins(x[:, i], y, f.name, f.kind, f.risk_direction, config)
        for i, f in enumerate(spec.features)
    )
    active = [True] * len(bins)
    directed = [f.risk_direction in (RiskDirection.UP, RiskDirection.DOWN) for f in spec.features]
    while True:
        model = LogisticRegression(C=config.c, max_iter=config.max_iter, random_state=seed)
        model.fit(_woe_matrix(bins, x, tuple(active)), y)
        wrong = [i for i, c in enumerate(model.coef_[0]) if active[i] and directed[i] and c > 0.0]
        if not config.monotone or not wrong:
            return WoeScorecard(bins=bins, model=model, active=tuple(active))
        for i in wrong:
            active[i] = False
