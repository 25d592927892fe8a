from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.build import (
    DatasetConfig,
    DatasetError,
    build_dataset,
    content_hash,
    snapshot_dates,
    write_dataset,
)
from features.catalog import FEATURE_SPEC
from tests.features.raw_builders import make_raw, ts


def _raw():
    return make_raw(
        customers=[
            {"customer_id": "a", "onboarding_date": ts("2023-01-01")},
            {"customer_id": "b", "onboarding_date": ts("2022-01-01")},
            {"customer_id": "c", "onboarding_date": ts("2023-10-01")},
            {"customer_id": "d", "onboarding_date": ts("2022-03-01")},
        ],
        # the extract reaches 2025-04-01, so snapshots up to 2024-03-31 have full label windows
        transactions=[
            {"txn_id": "t1", "customer_id": "b", "ts": ts("2022-02-01"), "amount": 10.0},
            {"txn_id": "t2", "customer_id": "b", "ts": ts("2025-04-01"), "amount": 10.0},
        ],
        defaults=[
            {"customer_id": "a", "default_date": ts("2024-02-15")},
            {"customer_id": "d", "default_date": ts("2024-03-31")},  # exactly s + 12m of 2023-03-31
        ],
    )


CONFIG = DatasetConfig(first_snapshot=date(2023, 3, 31), last_snapshot=date(2024, 3, 31))


def _rows(dataset: pd.DataFrame, snapshot: str) -> dict[str, tuple[int, int]]:
    part = dataset[dataset["snapshot_date"] == pd.Timestamp(snapshot)]
    return {r.customer_id: (int(r.default_12m), int(r.short_history)) for r in part.itertuples()}


def test_rows_labels_exclusions_and_short_history() -> None:
    # Given four customers, two defaulting, when the dataset is built quarterly
    progress: list[tuple[int, int]] = []
    dataset = build_dataset(_raw(), CONFIG, progress=lambda d, t: progress.append((d, t)))
    # Then the columns are keys, features in spec order, flag and label
    assert list(dataset.columns) == [
        "customer_id",
        "snapshot_date",
        *FEATURE_SPEC.names,
        "short_history",
        "default_12m",
    ]
    # a and d default within (s, s + 12m] (boundary included); c is not onboarded yet
    assert _rows(dataset, "2023-03-31") == {"a": (1, 1), "b": (0, 0), "d": (1, 0)}
    # c joins with a short history (a too: 11 months); a defaults within 12 months
    assert _rows(dataset, "2023-12-31") == {"a": (1, 1), "b": (0, 0), "c": (0, 1), "d": (1, 0)}
    # customers already in default (default_date <= snapshot) are excluded
    assert _rows(dataset, "2024-03-31") == {"b": (0, 0), "c": (0, 1)}
    assert progress == [(i, 5) for i in range(1, 6)]


def test_default_snapshot_range_keeps_label_window_complete() -> None:
    # Given no explicit range: from 12 months after the first activity to extract - 12 months
    dates = snapshot_dates(_raw(), DatasetConfig())
    assert dates[0] == date(2023, 3, 31)
    assert dates[-1] == date(2024, 3, 31)
    monthly = snapshot_dates(_raw(), DatasetConfig(frequency="monthly"))
    assert monthly[:2] == [date(2023, 2, 28), date(2023, 3, 31)]


def test_incomplete_label_window_is_refused() -> None:
    config = DatasetConfig(first_snapshot=date(2023, 3, 31), last_snapshot=date(2024, 6, 30))
    with pytest.raises(DatasetError, match="last_snapshot 2024-06-30 \\+ 12 months"):
        build_dataset(_raw(), config)


def test_inverted_range_is_refused() -> None:
    with pytest.raises(ValueError, match="first_snapshot 2024-03-31 is after last_snapshot"):
        DatasetConfig(first_snapshot=date(2024, 3, 31), last_snapshot=date(2023, 3, 31))


def test_write_dataset_and_card(tmp_path: Path) -> None:
    # Given a built dataset, when it is written twice
    dataset = build_dataset(_raw(), CONFIG)
    card = write_dataset(dataset, tmp_path / "one")
    write_dataset(build_dataset(_raw(), CONFIG), tmp_path / "two")
    # Then the parquet round-trips, the card summarises it and the hash is reproducible
    back = pd.read_parquet(tmp_path / "one" / "dataset.parquet")
    pd.testing.assert_frame_equal(back, dataset)
    on_disk = json.loads((tmp_path / "one" / "card.json").read_text())
    assert on_disk == json.loads(json.dumps(card))
    assert on_disk["rows"] == len(dataset) == 15
    assert on_disk["snapshots"][0] == {
        "snapshot_date": "2023-03-31",
        "rows": 3,
        "default_rate": 2 / 3,
    }
    assert on_disk["missing_share"]["debt_ratio"] == 1.0
    assert on_disk["content_sha256"] == content_hash(dataset)
    two = json.loads((tmp_path / "two" / "card.json").read_text())
    assert two["content_sha256"] == on_disk["content_sha256"]
    assert "| 2023-03-31 | 3 | 0.6667 |" in (tmp_path / "one" / "card.md").read_text()


def test_content_hash_changes_with_content() -> None:
    dataset = build_dataset(_raw(), CONFIG)
    changed = dataset.copy()
    changed.loc[0, "default_12m"] = 1 - changed.loc[0, "default_12m"]
    assert content_hash(changed) != content_hash(dataset)
