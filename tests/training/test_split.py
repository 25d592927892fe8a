import numpy as np
import pandas as pd
import pytest

from training.config import SplitConfig
from training.errors import SplitError
from training.split import out_of_time_split, random_split


def test_out_of_time_windows_are_disjoint_and_ordered(dataset):
    # Given a dataset with 10 quarterly snapshots
    dates = dataset["snapshot_date"]
    # When it is split with 3 test and 2 calibration snapshots
    split = out_of_time_split(dates, SplitConfig(test_snapshots=3, calibration_snapshots=2))
    # Then the windows cover every row once and follow each other in time
    all_rows = np.concatenate([split.train, split.calibration, split.test])
    assert len(all_rows) == len(dataset) == len(np.unique(all_rows))
    d = pd.to_datetime(dates).to_numpy()
    assert d[split.train].max() < d[split.calibration].min()
    assert d[split.calibration].max() < d[split.test].min()
    assert len(np.unique(d[split.test])) == 3
    assert len(np.unique(d[split.calibration])) == 2


def test_embargo_drops_training_snapshots_near_the_held_out_window(dataset):
    # Given a 12-month embargo
    split = out_of_time_split(
        dataset["snapshot_date"],
        SplitConfig(test_snapshots=2, calibration_snapshots=2, embargo_months=12),
    )
    # Then the last training snapshot lies at least 12 months before the first calibration one
    d = pd.to_datetime(dataset["snapshot_date"]).to_numpy()
    gap = pd.Timestamp(d[split.calibration].min()) - pd.Timestamp(d[split.train].max())
    assert gap >= pd.Timedelta(days=365)
    assert len(split.train) + len(split.calibration) + len(split.test) < len(dataset)


def test_too_few_snapshots_is_a_clear_error():
    dates = pd.Series(pd.to_datetime(["2020-03-31", "2020-06-30", "2020-09-30"]))
    with pytest.raises(SplitError, match="needs at least 7 snapshots"):
        out_of_time_split(dates, SplitConfig())


def test_random_split_is_stratified_and_seeded():
    y = (np.random.default_rng(0).random(1000) < 0.1).astype(int)
    a = random_split(y, SplitConfig(), seed=3)
    b = random_split(y, SplitConfig(), seed=3)
    assert np.array_equal(a.test, b.test)
    for rows in (a.train, a.calibration, a.test):
        assert abs(y[rows].mean() - y.mean()) < 0.01
