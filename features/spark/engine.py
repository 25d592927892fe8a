"""Features and the training set on Apache Spark, from the polars definitions.

The query is :func:`features.catalog.feature_plan` built over empty frames and translated by
:mod:`features.spark.plan`: the same definitions as the polars path, no second copy. Raw
tables are read from Parquet (``<raw>/<table>.parquet``, a file or a folder of parts, on any
file system Spark reads); results are written as Parquet partitioned by date.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the conventional PySpark alias
from pyspark.sql import types as T  # noqa: N812

from features.build import LABEL, SHORT_HISTORY, DatasetConfig, snapshot_range
from features.catalog import FEATURE_SPEC, feature_plan
from features.groups.common import (
    FRAME_TABLES,
    FeatureConfig,
    FeatureFrames,
    FeatureInputError,
    as_date,
    empty_frames,
    frame_schema,
)
from features.io import RawDataError
from features.spark import SparkConfig
from features.spark.plan import Node, PlanTranslator, plan_json

_SPARK_TYPES: dict[type[pl.DataType], str] = {
    pl.Date: "date",
    pl.Datetime: "timestamp_ntz",
    pl.String: "string",
    pl.Boolean: "boolean",
    pl.Int64: "bigint",
    pl.Float64: "double",
}
"""Normalised polars type of a feature column -> its Spark type."""


class SparkEngineError(ValueError):
    """Spark cannot be started or reached."""


def spark_session(config: SparkConfig, master: str | None = None) -> SparkSession:
    """A Spark session: ``master`` (or ``config.master``), ``sc://...`` for Spark Connect.

    An empty master leaves it to ``spark-submit`` (or ``spark.master`` in the environment).
    """
    master = config.master if master is None else master
    builder = SparkSession.builder.appName(config.app_name)
    if master.startswith("sc://"):
        builder = builder.remote(master)
    elif master:
        builder = builder.master(master)
    if master.startswith("local"):
        # Local Python workers run this interpreter (riskgrade and its locked dependencies);
        # PySpark reads the variable when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in config.conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as error:  # e.g. no Java runtime, an unreachable master
        raise SparkEngineError(
            f"cannot start Spark (master {master or 'from spark-submit'}): {error}"
        ) from None


def _join_path(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def read_table(spark: SparkSession, raw: str, table: str) -> DataFrame:
    """One raw table (``<raw>/<table>.parquet``) with the columns and types the features read.

    Raises:
        RawDataError: if the table cannot be read.
        FeatureInputError: if a needed column is missing or cannot be cast.
    """
    path = _join_path(raw, f"{table}.parquet")
    try:
        frame = spark.read.parquet(path)
    except AnalysisException as error:
        raise RawDataError(f"cannot read {path}: {error.getMessage()}") from None
    schema = frame_schema(table)
    missing = [column for column in schema if column not in frame.columns]
    if missing:
        raise FeatureInputError(f"table '{table}' lacks column(s) {', '.join(missing)}")
    types = {field.name: field.dataType for field in frame.schema.fields}
    columns = [
        _normalised(column, types[column], _SPARK_TYPES[type(dtype)])
        for column, dtype in schema.items()
    ]
    try:
        return frame.select(*columns)
    except AnalysisException as error:
        raise FeatureInputError(
            f"table '{table}' has a column of the wrong type: {error.getMessage()}"
        ) from None


def _normalised(column: str, source: T.DataType, target: str) -> Column:
    """A raw column cast to its feature type.

    Parquet written by pandas stores times in nanoseconds, which Spark reads as integers
    (``spark.sql.legacy.parquet.nanosAsLong``): those become microsecond timestamps first.
    """
    value = F.col(column)
    if target in ("date", "timestamp_ntz") and isinstance(source, T.LongType):
        value = F.timestamp_micros(F.floor(value / 1000)).cast("timestamp_ntz")
    return value.cast(target).alias(column)


def read_tables(spark: SparkSession, raw: str | Path) -> dict[str, DataFrame]:
    """The feature tables of a raw folder (``FRAME_TABLES``) as Spark DataFrames."""
    return {table: read_table(spark, str(raw), table) for table in FRAME_TABLES}


def frames_to_spark(spark: SparkSession, frames: FeatureFrames) -> dict[str, DataFrame]:
    """In-memory feature frames (e.g. from ``to_frames``) as Spark tables, via Arrow."""
    tables = {}
    for table in FRAME_TABLES:
        frame: pl.DataFrame = getattr(frames, table)
        arrow = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
        source = spark.createDataFrame(arrow)
        types = {field.name: field.dataType for field in source.schema.fields}
        tables[table] = source.select(
            *(
                _normalised(column, types[column], _SPARK_TYPES[type(dtype)])
                for column, dtype in frame_schema(table).items()
            )
        )
    return tables


@lru_cache(maxsize=256)
def _feature_plan(as_of: date, config: FeatureConfig) -> Node:
    return plan_json(feature_plan(empty_frames(), as_of, config))


def compute_features_spark(
    tables: Mapping[str, DataFrame], as_of: date, config: FeatureConfig | None = None
) -> DataFrame:
    """All features at ``as_of`` on Spark: ``customer_id``, ``as_of`` (date), spec order.

    The polars batch query, translated; one row per customer onboarded by ``as_of`` (row
    order is not defined: sort when it matters).
    """
    as_of = as_date(as_of)
    features = PlanTranslator(tables).translate(_feature_plan(as_of, config or FeatureConfig()))
    return features.select(
        "customer_id", F.lit(as_of).alias("as_of"), *(F.col(n) for n in FEATURE_SPEC.names)
    )


def _event_bounds(spark_tables: Mapping[str, DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(latest event date, start of the observed window), as ``features.build`` defines them."""
    t = spark_tables

    def one(frame: DataFrame, *exprs: Any) -> list[Any]:
        row = frame.agg(*exprs).first()
        assert row is not None, "an aggregation without keys has one row"
        return list(row)

    statements = one(t["financial_statements"], F.max("published_date"), F.min("published_date"))
    opened = one(t["credit_facilities"], F.max("opened"))
    paid = one(t["repayments"], F.max("paid_date"))
    txns = one(t["transactions"], F.max("ts"), F.min("ts"))
    defaults = one(t["defaults"], F.max("default_date"))
    onboarded = one(t["customers"], F.max("onboarding_date"))
    latest = [statements[0], opened[0], paid[0], txns[0], defaults[0], onboarded[0]]
    known = [pd.Timestamp(v).normalize() for v in latest if v is not None]
    if not known:
        raise RawDataError("the raw tables hold no dated record: cannot derive snapshots")
    starts = [pd.Timestamp(v).normalize() for v in (statements[1], txns[1]) if v is not None]
    if not starts:
        raise RawDataError("the raw tables hold no statement or transaction")
    return max(known), max(starts)


def read_defaults(spark: SparkSession, raw: str | Path) -> DataFrame:
    """The defaults table (``customer_id``, ``default_date``, ``default_type``).

    Raises:
        RawDataError: if it cannot be read or lacks a column.
    """
    path = _join_path(str(raw), "defaults.parquet")
    try:
        frame = spark.read.parquet(path)
        types = {field.name: field.dataType for field in frame.schema.fields}
        return frame.select(
            F.col("customer_id").cast("string"),
            _normalised("default_date", types["default_date"], "date"),
            F.col("default_type").cast("string"),
        )
    except AnalysisException as error:
        raise RawDataError(f"cannot read {path}: {error.getMessage()}") from None


def dataset_snapshot(
    tables: Mapping[str, DataFrame],
    defaults: DataFrame,
    snapshot: date,
    config: DatasetConfig,
) -> DataFrame:
    """The training rows of one snapshot, as ``features.build.build_dataset`` defines them."""
    end = (pd.Timestamp(snapshot) + pd.DateOffset(months=config.label_horizon_months)).date()
    when = F.col("default_date")
    status = defaults.groupBy("customer_id").agg(
        F.max(when <= F.lit(snapshot)).alias("_in_default"),
        F.max((when > F.lit(snapshot)) & (when <= F.lit(end))).alias("_defaulted"),
    )
    features = compute_features_spark(tables, snapshot, config.features)
    rows = features.join(status, on="customer_id", how="left").filter(
        ~F.coalesce(F.col("_in_default"), F.lit(False))
    )
    return rows.select(
        "customer_id",
        F.col("as_of").alias("snapshot_date"),
        *FEATURE_SPEC.names,
        (F.col("months_as_customer") < config.min_history_months)
        .cast("tinyint")
        .alias(SHORT_HISTORY),
        F.coalesce(F.col("_defaulted"), F.lit(False)).cast("tinyint").alias(LABEL),
    )


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def write_partitioned(
    frames: Iterable[tuple[str, DataFrame]], out: str | Path, *, sort_by: str = "customer_id"
) -> None:
    """Write ``(partition, frame)`` pairs as ``<out>/<partition>/part-*.parquet``.

    On a local path the folder appears whole or not at all (written beside, then renamed over
    any previous one); elsewhere each partition is committed by Spark's output committer.
    """
    out = str(out)
    target = out
    if _is_local(out):
        final = _local(out)
        final.parent.mkdir(parents=True, exist_ok=True)
        target = str(final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial"))
    try:
        for partition, frame in frames:
            path = _join_path(target, partition)
            frame.sortWithinPartitions(sort_by).write.mode("overwrite").parquet(path)
    except BaseException:
        if _is_local(out):
            shutil.rmtree(_local(target), ignore_errors=True)
        raise
    if _is_local(out):
        final = _local(out)
        if final.exists():
            shutil.rmtree(final)
        os.replace(_local(target), final)


def features_at(
    spark: SparkSession,
    raw: str | Path,
    as_of: date,
    out: str | Path,
    config: FeatureConfig | None = None,
) -> int:
    """Features of every customer at ``as_of``, written to ``<out>/as_of=<date>/``.

    Returns:
        The number of customers written.
    """
    as_of = as_date(as_of)
    features = compute_features_spark(read_tables(spark, raw), as_of, config).drop("as_of")
    features = features.cache()
    try:
        write_partitioned([(f"as_of={as_of.isoformat()}", features)], out)
        return features.count()
    finally:
        features.unpersist()


def build_dataset_spark(
    spark: SparkSession,
    raw: str | Path,
    out: str | Path,
    config: DatasetConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[date]:
    """The training set on Spark, one ``snapshot_date=<date>/`` partition per snapshot.

    Rows, columns and labels equal :func:`features.build.build_dataset`'s (read the result
    with :func:`features.build.read_dataset`).

    Returns:
        The snapshot dates written.
    """
    config = config or DatasetConfig()
    tables = read_tables(spark, raw)
    defaults = read_defaults(spark, raw)
    extract, first_activity = _event_bounds({**tables, "defaults": defaults})
    dates = snapshot_range(extract, first_activity, config)

    def parts() -> Iterator[tuple[str, DataFrame]]:
        for done, snapshot in enumerate(dates, start=1):
            frame = dataset_snapshot(tables, defaults, snapshot, config).drop("snapshot_date")
            yield f"snapshot_date={snapshot.isoformat()}", frame
            if progress is not None:
                progress(done, len(dates))

    write_partitioned(parts(), out)
    return dates
