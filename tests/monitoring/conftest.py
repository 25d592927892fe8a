"""A small seeded scenario: a portfolio, the same portfolio hit by an industry shock from
2023-01-01, and a real bundle trained (training.train_dataset) on the unshocked portfolio's
year-end snapshots 2020-2023 (reference window 2020-12..2021-12)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.build import DatasetConfig, build_dataset
from features.io import RawTables
from features.synthetic import GeneratorConfig, generate_tables
from tests.conftest import built_once
from training.config import LgbmConfig, RegistryConfig, SplitConfig, TrainConfig
from training.pipeline import train_dataset

CUSTOMERS = 500
END = date(2024, 12, 31)
SHOCK_DATE = date(2023, 1, 1)
HIT = ("manufacturing", "wholesale_retail", "construction")
REFERENCE_DATE = date(2021, 12, 31)
BEFORE, AFTER, LATER = date(2022, 12, 31), date(2023, 12, 31), date(2024, 12, 31)


@dataclass(frozen=True)
class Scenario:
    base: RawTables
    shocked: RawTables
    bundle_dir: Path


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    common = {"customers": CUSTOMERS, "seed": 7, "end": END}
    base, _ = generate_tables(GeneratorConfig(**common))
    shocked, _ = generate_tables(
        GeneratorConfig(**common, shock_date=SHOCK_DATE, shock_size=1.5, shock_industries=HIT)
    )

    def train(out: Path) -> None:
        dataset = build_dataset(
            base,
            DatasetConfig(first_snapshot=date(2020, 12, 31), last_snapshot=date(2023, 12, 31)),
        )
        dataset = dataset[pd.to_datetime(dataset["snapshot_date"]).dt.month == 12]
        config = TrainConfig(
            registry=RegistryConfig(enabled=False),
            show_progress=False,
            split=SplitConfig(test_snapshots=1, calibration_snapshots=1),
            lgbm=LgbmConfig(num_boost_round=200, learning_rate=0.08, early_stopping_rounds=30),
        )
        assert train_dataset(dataset, config, out).bundle_dir == out / "bundle"

    # The model is trained once per run (shared by the xdist workers); treat it as read-only.
    out = built_once(tmp_path_factory, "monitoring-model", train)
    return Scenario(base=base, shocked=shocked, bundle_dir=out / "bundle")
