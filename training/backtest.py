"""Back-testing of a model's predictions: the two questions a validator asks, kept apart.

*Discrimination and rank order* are judged on the out-of-time test window: AUC, the rank order
of the grades (adjacent grades compared with a significance test, thin grades pooled), grade
concentration and the PSI of the PD between training and test.

*Calibration level* is judged against the long-run anchor over every window, with the cycle
shown: per year the observed default rate against the mean PD; the long-run ratio of the two with
a confidence interval from the year-to-year variation (so a test window in a downturn does not
fail a model anchored through the cycle); and per grade a Jeffreys test over the pooled windows,
whose red count is read through a Basel-style traffic light. A per-grade test whose sample lacks
power is ``not assessable``, never red.

Everything here is a pure function of the *evaluation frame*: one row per labelled row of the
run with its label, the model's PD, the challenger's PD, its window and its period (snapshot
date, or missing for a random split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom, norm
from scipy.stats import t as student_t

from features.metrics import psi
from rating.scale import MasterScale
from training.config import ValidationConfig
from training.errors import TrainingError
from training.split import Split
from training.validate import (
    auc_difference_p,
    binary_metrics,
    grade_metrics,
    grade_table,
    rank_order_table,
)

WINDOWS = ("train", "calibration", "test")
PD_HORIZON_MONTHS = 12
"""The PD is a one-year PD: the label is a default within 12 months of the snapshot."""
FRAME_COLUMNS = ("y", "pd", "challenger_pd", "window", "period")

Metrics = dict[str, float | bool | str]


@dataclass(frozen=True)
class Backtest:
    """Validation metrics of one set of predictions and the tables behind them."""

    metrics: Metrics
    grades: pd.DataFrame
    """Per grade on the test window (rank order; point-in-time Jeffreys lights for information)."""
    challenger_grades: pd.DataFrame
    rank_order: pd.DataFrame
    """Adjacent (pooled) grade groups on the test window and their inversion tests."""
    cycle: pd.DataFrame
    """Per year over every window: rows, defaults, observed default rate, mean PD, ratio."""
    cycle_grades: pd.DataFrame
    """Per grade over every window: the through-the-cycle Jeffreys test (the gate's table)."""


def evaluation_frame(
    y: np.ndarray,
    pd_: np.ndarray,
    challenger_pd: np.ndarray,
    split: Split,
    periods: Sequence[object] | np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """One row per row of the windows: label, PDs, window name and period.

    Args:
        y: 0/1 labels of every row.
        pd_: the model's PD of every row.
        challenger_pd: the challenger's PD of every row.
        split: the windows' row positions.
        periods: snapshot date of every row, or ``None`` (random split: one period).

    Raises:
        TrainingError: if the arrays differ in length or a period is not a date.
    """
    n = len(y)
    if len(pd_) != n or len(challenger_pd) != n:
        raise TrainingError(f"labels ({n}) and PDs ({len(pd_)}, {len(challenger_pd)}) differ")
    window = np.full(n, "", dtype=object)
    for name in WINDOWS:
        window[getattr(split, name)] = name
    if periods is None:
        dates = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    else:
        try:
            dates = pd.Series(pd.to_datetime(np.asarray(periods)))
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"periods must be dates: {exc}") from exc
        if len(dates) != n:
            raise TrainingError(f"periods ({len(dates)}) and labels ({n}) differ in length")
    frame = pd.DataFrame(
        {
            "y": np.asarray(y, dtype=np.float64),
            "pd": np.asarray(pd_, dtype=np.float64),
            "challenger_pd": np.asarray(challenger_pd, dtype=np.float64),
            "window": window,
            "period": dates.to_numpy(),
        }
    )
    return frame[frame["window"] != ""].reset_index(drop=True)


def label_overlap(dates: Sequence[object] | np.ndarray | pd.Series) -> float:
    """Rows that share one default event in a snapshot dataset: label horizon / snapshot spacing.

    Quarterly snapshots with a 12-month label count a default in up to four rows, so pooled
    tests divide counts by 4; yearly (or sparser) snapshots give 1.
    """
    distinct = np.sort(pd.to_datetime(pd.Series(np.asarray(dates))).dropna().unique())
    if len(distinct) < 2:
        return 1.0
    spacing_days = float(np.median(np.diff(distinct).astype("timedelta64[D]").astype(float)))
    spacing_months = spacing_days / (365.25 / 12)
    return float(max(1.0, round(PD_HORIZON_MONTHS / max(spacing_months, 1e-9))))


def cycle_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per calendar year of the snapshots (one row ``all`` without dates): the cycle."""
    period = frame["period"]
    key = (
        period.dt.year.astype("Int64").astype(str)
        if period.notna().all()
        else pd.Series("all", index=frame.index)
    )
    grouped = frame.assign(year=key).groupby("year", sort=True)
    table = grouped.agg(
        rows=("y", "size"),
        defaults=("y", "sum"),
        default_rate=("y", "mean"),
        mean_pd=("pd", "mean"),
        windows=("window", lambda w: ",".join(n for n in WINDOWS if n in set(w))),
    ).reset_index()
    table["defaults"] = table["defaults"].astype(np.int64)
    table["ratio"] = table["default_rate"] / table["mean_pd"]
    return table[["year", "windows", "rows", "defaults", "default_rate", "mean_pd", "ratio"]]


def level_test(cycle: pd.DataFrame, confidence: float, overlap: float = 1.0) -> Metrics:
    """Long-run default rate against long-run mean PD, with a confidence interval of their ratio.

    The long-run values are the averages of the yearly values. With three years or more the
    interval of the (log) ratio comes from the year-to-year spread of the yearly ratios
    (Student t), which holds the cycle as well as sampling noise; it is never narrower than the
    binomial interval of the pooled defaults (counted ``defaults / overlap``).

    Returns:
        ``cycle.years``, ``cycle.long_run_default_rate``, ``cycle.long_run_pd``,
        ``cycle.level_ratio`` and its interval ``cycle.level_low`` / ``cycle.level_high``.
    """
    years = len(cycle)
    rates = cycle["default_rate"].to_numpy(dtype=np.float64)
    pds = cycle["mean_pd"].to_numpy(dtype=np.float64)
    long_run_rate, long_run_pd = float(rates.mean()), float(pds.mean())
    ratio = long_run_rate / long_run_pd if long_run_pd > 0 else float("nan")
    effective_defaults = float(cycle["defaults"].sum()) / overlap
    pooled_rate = float(cycle["defaults"].sum() / max(cycle["rows"].sum(), 1))
    se_log = math.sqrt((1.0 - pooled_rate) / (effective_defaults + 0.5))
    quantile = float(norm.ppf((1.0 + confidence) / 2.0))
    if years >= 3:
        smoothed = (cycle["defaults"] + 0.5) / (cycle["rows"] + 1.0)
        spread = float(np.std(np.log(smoothed.to_numpy() / pds), ddof=1))
        se_log = max(se_log, spread / math.sqrt(years))
        quantile = float(student_t.ppf((1.0 + confidence) / 2.0, years - 1))
    half = quantile * se_log
    return {
        "cycle.years": float(years),
        "cycle.long_run_default_rate": long_run_rate,
        "cycle.long_run_pd": long_run_pd,
        "cycle.level_ratio": ratio,
        "cycle.level_low": ratio * math.exp(-half),
        "cycle.level_high": ratio * math.exp(half),
    }


def exception_zone(red: int, tests: int, config: ValidationConfig) -> tuple[str, int]:
    """Basel-style traffic light on the number of red grades among ``tests`` assessable grades.

    Under a correct model each assessable grade is red with probability at most
    ``config.jeffreys_red``, so the count is binomial. As in the Basel back-testing zones, a
    count is yellow when the probability of that many or fewer reaches 95% and red when it
    reaches ``config.red_zone_confidence``; no red grade is always green.

    Returns:
        The zone of ``red`` and the largest count outside the red zone.
    """
    if tests <= 0:
        return "green", 0
    cumulative = binom.cdf(np.arange(tests + 1), tests, config.jeffreys_red)
    red_from = int(np.argmax(cumulative >= config.red_zone_confidence))
    red_from = max(red_from, 1)
    allowed = red_from - 1
    if red == 0 or red > tests:
        zone = "green" if red == 0 else "red"
    elif red >= red_from:
        zone = "red"
    else:
        zone = "yellow" if cumulative[red] >= 0.95 else "green"
    return zone, allowed


def _prefixed(prefix: str, values: dict[str, float | bool]) -> Metrics:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def validate_predictions(
    frame: pd.DataFrame, scale: MasterScale, config: ValidationConfig, overlap: float = 1.0
) -> Backtest:
    """Every validation metric of a run's predictions (model and challenger).

    Args:
        frame: the evaluation frame (:func:`evaluation_frame`).
        scale: master scale.
        config: validation settings.
        overlap: rows per default event (:func:`label_overlap`).

    Returns:
        Flat dotted metrics (``test.*``, ``grades.*``, ``stability.*``, ``cycle.*``,
        ``challenger.*``) and the tables of the report.

    Raises:
        TrainingError: if the frame lacks a column or a window.
    """
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise TrainingError(f"evaluation frame lacks column(s) {missing}")
    rows = {name: frame["window"].to_numpy() == name for name in WINDOWS}
    empty = [name for name, mask in rows.items() if not mask.any()]
    if empty:
        raise TrainingError(f"evaluation frame has no rows in window(s) {empty}")
    y, model, challenger = (
        frame[c].to_numpy(dtype=np.float64) for c in ("y", "pd", "challenger_pd")
    )
    test, train = rows["test"], rows["train"]
    metrics: Metrics = {}
    for name in WINDOWS:
        mask = rows[name]
        metrics.update(_prefixed(name, binary_metrics(y[mask], model[mask], config.ece_bins)))
    metrics.update(
        _prefixed("challenger.test", binary_metrics(y[test], challenger[test], config.ece_bins))
    )
    metrics["challenger.test.auc_diff_p"] = auc_difference_p(
        y[test], model[test], challenger[test], overlap
    )
    grades = grade_table(y[test], model[test], scale, config, overlap)
    rank_order = rank_order_table(grades, config, overlap)
    challenger_grades = grade_table(y[test], challenger[test], scale, config, overlap)
    metrics.update(_prefixed("grades", grade_metrics(grades, rank_order)))
    metrics.update(
        _prefixed(
            "challenger.grades",
            grade_metrics(challenger_grades, rank_order_table(challenger_grades, config, overlap)),
        )
    )
    metrics["stability.psi_score"] = psi(model[train], model[test], config.psi_bins)
    metrics["challenger.stability.psi_score"] = psi(
        challenger[train], challenger[test], config.psi_bins
    )

    cycle = cycle_table(frame)
    metrics.update(level_test(cycle, config.level_confidence, overlap))
    cycle_grades = grade_table(y, model, scale, config, overlap)
    lights = cycle_grades["traffic_light"]
    red = int((lights == "red").sum())
    assessable = int(lights.isin(["green", "yellow", "red"]).sum())
    zone, allowed = exception_zone(red, assessable, config)
    metrics.update(
        {
            "cycle.overlap": float(overlap),
            "cycle.grades.red_count": float(red),
            "cycle.grades.yellow_count": float((lights == "yellow").sum()),
            "cycle.grades.assessable": float(assessable),
            "cycle.grades.not_assessable": float((lights == "not assessable").sum()),
            "cycle.grades.red_allowed": float(allowed),
            "cycle.grades.zone": zone,
        }
    )
    return Backtest(
        metrics=metrics,
        grades=grades,
        challenger_grades=challenger_grades,
        rank_order=rank_order,
        cycle=cycle,
        cycle_grades=cycle_grades,
    )


def scaled_pds(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The evaluation frame with every model PD multiplied by ``factor`` (capped at 1).

    A negative control: the ranking is unchanged, only the level moves, so a validation must
    fail the calibration level and nothing that judges discrimination.
    """
    return frame.assign(pd=np.minimum(factor * frame["pd"].to_numpy(dtype=np.float64), 1.0))


def shuffled_grades(frame: pd.DataFrame, scale: MasterScale, seed: int) -> pd.DataFrame:
    """The evaluation frame with the model's grades permuted (seeded).

    A negative control: each row keeps its relative place within its band (log scale) but moves
    to the band of another grade, so a validation must fail the rank order.
    """
    lower = np.log([g.lower for g in scale.grades])
    upper = np.log([g.upper for g in scale.grades])
    pd_ = frame["pd"].to_numpy(dtype=np.float64)
    index = scale.grade_index(pd_)
    position = (np.log(scale.floor_pd(pd_)) - lower[index]) / (upper[index] - lower[index])
    target = np.random.default_rng(seed).permutation(len(scale.grades))[index]
    moved = lower[target] + np.clip(position, 0.0, 0.99) * (upper[target] - lower[target])
    return frame.assign(pd=np.exp(moved))
