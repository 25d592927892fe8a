"""The sample portfolio passes every default gate; its model with PDs doubled or grades shuffled
fails the gate that asks the right question (the 20k and 100k cases are in
benchmarks/bench_sample_quality.py)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_dataset
from features.catalog import FEATURE_SPEC
from features.io import read_raw
from features.synthetic import GeneratorConfig, generate
from rating.scale import MasterScale
from training.backtest import label_overlap, validate_predictions
from training.config import RegistryConfig, TrainConfig
from training.evaluate import Evaluation, fit_and_evaluate
from training.gates import evaluate_gates
from training.pipeline import train_table
from training.split import out_of_time_split

from .test_backtest import doubled, shuffled

CONFIG = TrainConfig(registry=RegistryConfig(enabled=False), show_progress=False)


def _sample_model(customers: int, seed: int, root: Path) -> Evaluation:
    generate(GeneratorConfig(customers=customers, seed=seed), root / "raw")
    frame = build_dataset(read_raw(root / "raw"))
    spec = FEATURE_SPEC.select([f.name for f in FEATURE_SPEC.features if not f.protected])
    x = np.ascontiguousarray(frame[spec.names].to_numpy(dtype=np.float64, na_value=np.nan))
    y = frame[CONFIG.target].to_numpy(dtype=np.int64)
    dates = pd.to_datetime(frame[CONFIG.time_col])
    split = out_of_time_split(dates, CONFIG.split)
    return fit_and_evaluate(
        x, y, spec, split, CONFIG, MasterScale(), periods=dates, overlap=label_overlap(dates)
    )


@pytest.fixture(scope="module")
def seed_31(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    return _sample_model(5000, 31, tmp_path_factory.mktemp("sample_5000_31"))


@pytest.mark.slow
def test_sample_portfolio_5000_seed_31_passes_every_default_gate(seed_31):
    # Given the sample portfolio whose grade 1 holds a single test customer and whose test
    # window defaults above the long-run anchor (grades_monotone failed on it)
    failed = [g.describe() for g in seed_31.gates if not g.passed]
    # Then every default gate passes
    assert failed == []
    assert seed_31.metrics["test.default_rate"] > seed_31.metrics["cycle.long_run_pd"]


@pytest.mark.slow
def test_sample_portfolio_1200_passes_every_default_gate(tmp_path):
    # Given 1,200 customers (seed 0), where a test-window grade went red against its band
    evaluation = _sample_model(1200, 0, tmp_path)
    # Then every default gate passes
    assert [g.describe() for g in evaluation.gates if not g.passed] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transform", "gate", "kept"),
    [
        (doubled, "calibration_level", {"min_auc", "grades_monotone"}),
        (shuffled, "grades_monotone", set()),
    ],
)
def test_the_sample_model_transformed_fails_the_right_gate(seed_31, transform, gate, kept):
    # Given the sample model's validated predictions with PDs doubled / grades shuffled
    overlap = float(seed_31.metrics["cycle.overlap"])
    backtest = validate_predictions(
        transform(seed_31.frame), MasterScale(), CONFIG.validation, overlap
    )
    gates = evaluate_gates({**seed_31.metrics, **backtest.metrics}, CONFIG.gates)
    failed = {g.name for g in gates if not g.passed}
    # Then the gate asking the right question fails by name, and the others it leaves pass
    assert gate in failed
    assert not failed & kept


POLISH = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "polish_bankruptcy"


@pytest.mark.slow
@pytest.mark.skipif(not (POLISH / "1year.arff").is_file(), reason="public Polish data not present")
def test_public_polish_table_passes_every_default_gate(tmp_path):
    # Given the public Polish bankruptcy table (year 1), trained as an own table (random split)
    result = train_table(POLISH / "1year.arff", "bankruptcy", config=CONFIG, out_dir=tmp_path)
    # Then every default gate passes (grade 2 above grade 3 by 2 of 269 failed grades_monotone)
    assert [g.describe() for g in result.gates if not g.passed] == []
    assert result.metrics["cycle.years"] == 1.0
