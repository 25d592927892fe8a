"""Same inputs, same features: bit for bit, run after run (scores depend on it)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from features.catalog import compute_features
from features.io import read_raw


def test_features_are_bit_identical_across_runs(sample_raw_dir: Path) -> None:
    # Given one portfolio, when the features are computed several times
    raw = read_raw(sample_raw_dir)
    runs = [compute_features(raw, date(2024, 6, 30)) for _ in range(3)]
    # Then every run gives exactly the same values (no order-dependent float sums)
    first = runs[0].iloc[:, 2:].to_numpy(dtype=float)
    for other in runs[1:]:
        assert np.array_equal(first, other.iloc[:, 2:].to_numpy(dtype=float), equal_nan=True)
