"""Train / calibration / test splits: out-of-time by snapshot date, or stratified random."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from training.config import SplitConfig
from training.errors import SplitError


@dataclass(frozen=True)
class Split:
    """Row positions of the three windows (disjoint, sorted) plus a readable description."""

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    kind: str
    """``"out_of_time"`` or ``"random"``."""
    windows: dict[str, str]
    """Per window: first and last snapshot (out of time) or the row share (random)."""


def out_of_time_split(dates: pd.Series, config: SplitConfig) -> Split:
    """Split rows by snapshot date: train on the oldest, calibrate next, test on the newest.

    Args:
        dates: snapshot date of every row (datetime-like, no missing values).
        config: window sizes in snapshots and the embargo in months.

    Returns:
        Positional row indices per window; windows are ordered in time and disjoint.

    Raises:
        SplitError: if dates are missing or there are too few snapshots for the windows.
    """
    values = pd.to_datetime(dates.reset_index(drop=True))
    if values.isna().any():
        raise SplitError(f"{int(values.isna().sum())} row(s) have no snapshot date")
    snapshots = np.sort(values.unique())
    needed = config.test_snapshots + config.calibration_snapshots + 1
    if len(snapshots) < needed:
        raise SplitError(
            f"out-of-time split needs at least {needed} snapshots "
            f"({config.test_snapshots} test + {config.calibration_snapshots} calibration + 1 "
            f"train), the data has {len(snapshots)}"
        )
    test_dates = snapshots[-config.test_snapshots :]
    cal_dates = snapshots[-needed + 1 : -config.test_snapshots]
    first_held_out = pd.Timestamp(cal_dates[0])
    train_end = first_held_out - pd.DateOffset(months=config.embargo_months)
    train_dates = snapshots[: -needed + 1]
    if config.embargo_months:
        train_dates = train_dates[train_dates <= np.datetime64(train_end)]
        if len(train_dates) == 0:
            raise SplitError(
                f"an embargo of {config.embargo_months} months before {first_held_out.date()} "
                "leaves no training snapshot"
            )
    as_array = values.to_numpy()

    def rows(window: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(as_array, window))

    def label(window: np.ndarray) -> str:
        return f"{pd.Timestamp(window[0]).date()}..{pd.Timestamp(window[-1]).date()}"

    return Split(
        train=rows(train_dates),
        calibration=rows(cal_dates),
        test=rows(test_dates),
        kind="out_of_time",
        windows={
            "train": label(train_dates),
            "calibration": label(cal_dates),
            "test": label(test_dates),
        },
    )


def random_split(y: np.ndarray, config: SplitConfig, seed: int) -> Split:
    """Stratified random split into train, calibration and test windows (seeded).

    Raises:
        SplitError: if a window would hold no positive or no negative row.
    """
    positions = np.arange(len(y))
    held_share = config.calibration_share + config.test_share
    try:
        train, held = train_test_split(
            positions, test_size=held_share, stratify=y, random_state=seed
        )
        cal, test = train_test_split(
            held,
            test_size=config.test_share / held_share,
            stratify=y[held],
            random_state=seed + 1,
        )
    except ValueError as exc:
        raise SplitError(f"stratified split impossible: {exc}") from exc
    return Split(
        train=np.sort(train),
        calibration=np.sort(cal),
        test=np.sort(test),
        kind="random",
        windows={
            "train": f"{1 - held_share:.0%} of rows",
            "calibration": f"{config.calibration_share:.0%} of rows",
            "test": f"{config.test_share:.0%} of rows",
        },
    )
