"""Batch scoring on Spark: the polars path's table, from a bundle hash-checked on executors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.io import RawTables, write_raw
from rating.bundle import Bundle, BundleError
from serving.batch import score_portfolio

pytest.importorskip("pyspark")

from serving.spark_batch import _executor_model, score_spark, score_to_parquet, ship_bundle

pytestmark = pytest.mark.spark

SHUFFLE = "spark.sql.shuffle.partitions"
COALESCE = "spark.sql.adaptive.coalescePartitions.enabled"


def test_spark_scores_equal_the_polars_path(
    spark, portfolio: RawTables, as_of: date, bundle: Bundle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Given a portfolio on disk and the polars batch scores
    write_raw(portfolio, tmp_path / "raw")
    expected = score_portfolio(portfolio, as_of, bundle.path).sort_values("customer_id")
    expected = expected.reset_index(drop=True)
    # When Spark scores the same files, partition by partition
    got = score_spark(spark, tmp_path / "raw", as_of, bundle.path).toPandas()
    got = got.sort_values("customer_id").reset_index(drop=True)
    # Then the columns are the polars path's, PDs agree to 1e-12 and every label is the same
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) > 5
    numeric = [c for c in expected.columns if expected[c].dtype.kind == "f"]
    assert "pd" in numeric
    for column in numeric:
        np.testing.assert_allclose(
            got[column].to_numpy(),
            expected[column].to_numpy(),
            rtol=1e-12,
            atol=1e-12,
            err_msg=column,
        )
    labels = [c for c in expected.columns if c not in numeric and c != "as_of"]
    assert {"grade", "tier", "model_tier", "hard_rules", "reason_1", "in_default"} <= set(labels)
    for column in labels:
        left = got[column].astype(object).where(got[column].notna(), None).tolist()
        right = expected[column].astype(object).where(expected[column].notna(), None).tolist()
        assert left == right, column
    assert (pd.to_datetime(got["as_of"]) == pd.Timestamp(as_of)).all()


def test_executors_check_the_shipped_bundle_against_the_driver_hash(spark, bundle: Bundle) -> None:  # type: ignore[no-untyped-def]
    # Given the bundle shipped to the executors under its hash
    name = ship_bundle(spark, bundle.path)
    assert name == bundle.bundle_hash
    # When a worker loads it expecting the driver's hash, it verifies; any other hash fails
    assert _executor_model(name, bundle.bundle_hash).bundle.bundle_hash == bundle.bundle_hash
    with pytest.raises(BundleError):
        _executor_model(name, "0" * 64)


def test_score_command_on_spark_writes_the_polars_columns(
    spark, portfolio: RawTables, as_of: date, bundle: Bundle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import yaml
    from typer.testing import CliRunner

    from riskgrade.cli import app

    # Given a raw folder, a bundle folder and params
    write_raw(portfolio, tmp_path / "raw")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"bundles": str(tmp_path / "bundles")}}))
    out = tmp_path / "ratings"
    # When riskgrade score runs on Spark
    args = [
        "score",
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
        "--raw",
        str(tmp_path / "raw"),
    ]
    args += ["--as-of", as_of.isoformat(), "--bundle", str(bundle.path), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--params", str(params)])
    # Then one as_of partition holds every customer with the polars path's columns
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    written = pd.read_parquet(out / f"as_of={as_of.isoformat()}")
    expected = score_portfolio(portfolio, as_of, bundle.path)
    assert set(written.columns) == set(expected.columns) - {"as_of"}
    assert sorted(written["customer_id"]) == sorted(expected["customer_id"])
    assert "Customers by tier" in result.output


def test_rating_runs_in_the_configured_partitions_even_under_adaptive_execution(
    spark, portfolio: RawTables, as_of: date, bundle: Bundle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Given adaptive execution on (it merges small shuffles into as few tasks as the bytes
    # allow) and 4 shuffle partitions
    write_raw(portfolio, tmp_path / "raw")
    keys = ("spark.sql.adaptive.enabled", SHUFFLE, COALESCE)
    saved = {k: spark.conf.get(k, None) for k in keys}
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.set(COALESCE, "true")
    spark.conf.set(SHUFFLE, "4")
    try:
        # When Spark rates the portfolio into Parquet
        score_to_parquet(spark, tmp_path / "raw", as_of, bundle.path, tmp_path / "out")
        coalescing = spark.conf.get(COALESCE)
    finally:
        for key, value in saved.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)
    # Then the customers were rated in 4 tasks (one file each), not merged into fewer, and
    # the session's setting is back
    folder = tmp_path / "out" / f"as_of={as_of.isoformat()}"
    assert len(list(folder.glob("part-*.parquet"))) == 4
    assert len(pd.read_parquet(folder)) == len(score_portfolio(portfolio, as_of, bundle.path))
    assert coalescing == "true"
