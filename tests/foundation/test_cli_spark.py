"""``--engine spark`` through the command line: training set, and training from its files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.build import DatasetConfig, build_dataset, read_dataset
from features.io import RawDataError
from features.validate import load_raw
from riskgrade.cli import app

pytest.importorskip("pyspark")
pytestmark = pytest.mark.spark

runner = CliRunner(env={"COLUMNS": "200", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})


def _params(root: Path, **features: object) -> str:
    params = {
        "paths": {"reports": str(root / "reports"), "bundles": str(root / "bundles")},
        "features": features,
        "train": {
            "gates": {"min_auc": 0.5, "max_red_grades": 9, "max_ece": 0.5},
            "family": {"choice": "lgbm"},  # the subject is the Spark-written input, not the CV
            "show_progress": False,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return str(root / "params.yaml")


def test_spark_training_set_equals_the_polars_one(
    spark, sample_raw_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Given two snapshots of the sample portfolio
    window = {"first_snapshot": date(2024, 9, 30), "last_snapshot": date(2024, 12, 31)}
    params = _params(tmp_path, **window)
    # When the training set is built on Spark (partitioned by snapshot)
    out = tmp_path / "dataset"
    args = ["features", "build", "--engine", "spark", "--raw", str(sample_raw_dir)]
    result = runner.invoke(app, [*args, "--out", str(out), "--params", params])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert sorted(p.name for p in out.iterdir()) == [
        "snapshot_date=2024-09-30",
        "snapshot_date=2024-12-31",
    ]
    # Then it reads back as the polars training set: same rows, labels, types and values
    got = read_dataset(out)
    expected = build_dataset(load_raw(sample_raw_dir), DatasetConfig(**window))
    assert list(got.columns) == list(expected.columns)
    assert (got.dtypes == expected.dtypes).all()
    for column in ("customer_id", "snapshot_date", "short_history", "default_12m"):
        assert got[column].tolist() == expected[column].tolist(), column
    features = expected.columns[2:-2]
    np.testing.assert_allclose(got[features], expected[features], rtol=1e-9, atol=1e-9)


def test_train_reads_a_spark_written_partitioned_dataset(
    spark, sample_raw_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Given a whole training set written by Spark's partitioned writer (as the build writes it)
    from features.spark.engine import write_partitioned

    dataset = build_dataset(load_raw(sample_raw_dir))
    frame = spark.createDataFrame(dataset.assign(snapshot_date=dataset["snapshot_date"].dt.date))
    parts = [
        (f"snapshot_date={day.isoformat()}", frame.filter(frame.snapshot_date == day))
        for day in sorted(set(dataset["snapshot_date"].dt.date))
    ]
    out = tmp_path / "dataset"
    write_partitioned(((name, part.drop("snapshot_date")) for name, part in parts), out)
    assert read_dataset(out).equals(dataset)
    # When riskgrade train reads that folder
    params = _params(tmp_path)
    args = ["train", "--dataset", str(out), "--no-mlflow", "--params", params]
    result = runner.invoke(app, args)
    # Then a model is trained from it
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["test.auc"] > 0.5
    assert metrics.get("data.rows", len(dataset)) == len(dataset)


def test_spark_engine_names_a_missing_raw_table(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "raw").mkdir()
    args = ["features", "at", "--engine", "spark", "--raw", str(tmp_path / "raw")]
    result = runner.invoke(app, [*args, "--as-of", "2024-06-30", "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, RawDataError)
    assert "customers.parquet" in str(result.exception)
    assert not (tmp_path / "o").exists()


def test_features_at_on_spark_writes_one_as_of_partition(
    spark, sample_raw_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    args = ["features", "at", "--engine", "spark", "--raw", str(sample_raw_dir)]
    out = tmp_path / "features"
    result = runner.invoke(app, [*args, "--as-of", "2024-06-30", "--out", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    written = pd.read_parquet(next((out / "as_of=2024-06-30").glob("*.parquet")).parent)
    assert written["customer_id"].is_unique and len(written) > 100
