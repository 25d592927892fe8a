"""Fixtures shared by every test package: one small generated portfolio on disk."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from features.synthetic import GeneratorConfig, generate

SAMPLE_AS_OF = date(2025, 12, 31)


@pytest.fixture(scope="session")
def sample_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-customer portfolio (seed 7) written once per session; treat as read-only."""
    out = tmp_path_factory.mktemp("sample") / "raw"
    generate(GeneratorConfig(customers=400, seed=7), out)
    return out


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local Spark session (2 cores, 2 shuffle partitions, no UI) for the spark tests."""
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: the Spark tests need one (.ci/run installs it)")
    from features.spark import SparkConfig
    from features.spark.engine import spark_session

    defaults = SparkConfig()
    conf = {
        **defaults.conf,
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "1g",
        "spark.sql.adaptive.enabled": "false",  # tiny test data: re-planning costs more
    }
    session = spark_session(defaults.model_copy(update={"conf": conf}), "local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
