"""Batch scoring on Apache Spark: features from the translated definitions, rating per partition.

The bundle (LightGBM text model and JSON, no pickle) is shipped to the executors with
``SparkContext.addFile``; each executor's Python worker loads it once and checks every file
against the manifest and the manifest against the driver's bundle hash before it scores. Each
partition is rated with ``mapInArrow``: Arrow record batches in, the rows of
``rating.portfolio.rate_features`` and ``chunk_table`` out (the polars path's code), so the
output has the columns and values of ``serving.batch.score_portfolio``.

Rating costs CPU per customer (the SHAP pass), not bytes: the rows to rate are spread over
``spark.sql.shuffle.partitions`` partitions by customer, and ``score_to_parquet`` runs its
query with adaptive partition coalescing off (coalescing sizes partitions by bytes and merged
the rating of 100k customers into 2-3 tasks, which leaves most executor cores idle on a
cluster). Each task runs LightGBM on one thread, as Spark runs one task per core.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from pyspark import SparkFiles
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the conventional PySpark alias

from features.catalog import FEATURE_SPEC
from features.spark.engine import (
    compute_features_spark,
    read_defaults,
    read_tables,
    write_partitioned,
)
from rating.bundle import load_bundle
from rating.model import RatingModel
from rating.policy import DefaultStatus
from rating.portfolio import as_model, check_model_features, chunk_table, rate_features

_MODELS: dict[str, RatingModel] = {}
"""Bundles loaded in this Python worker, by bundle hash (loaded and verified once)."""

_SHIPPED: set[tuple[int, str]] = set()
"""(SparkContext id, bundle hash) of the bundles already added to a context."""

_ARROW_TO_SPARK = {
    "string": "string",
    "large_string": "string",
    "double": "double",
    "int64": "bigint",
    "bool": "boolean",
    "timestamp[us]": "timestamp_ntz",
}


class SparkScoringError(ValueError):
    """Spark batch scoring cannot run as asked (e.g. no way to ship the bundle)."""


def _executor_model(bundle_name: str, bundle_hash: str) -> RatingModel:
    """The shipped bundle, loaded and hash-checked once per executor worker."""
    model = _MODELS.get(bundle_hash)
    if model is None:
        model = RatingModel.load(Path(SparkFiles.get(bundle_name)), expected_hash=bundle_hash)
        _MODELS[bundle_hash] = model
    return model


def _output_table(
    features: pl.DataFrame, as_of: date, model: RatingModel, lang: str = "en"
) -> pd.DataFrame:
    """Rate a partition: features plus each customer's first default on or before as_of."""
    statuses = {
        cid: DefaultStatus(default_date=day, default_type=kind)
        for cid, day, kind in features.select("customer_id", "default_date", "default_type").rows()
        if day is not None
    }
    # One LightGBM thread: Spark already runs one task per executor core.
    rated = rate_features(
        features.drop("default_date", "default_type"), model, statuses, num_threads=1
    )
    return chunk_table(rated, as_of, model, lang)


def _output_schema(model: RatingModel, as_of: date) -> tuple[pa.Schema, str]:
    """Arrow and Spark schemas of the output, from one rated row (its column order)."""
    names = ["customer_id", *FEATURE_SPEC.names]
    row = pl.DataFrame({name: [0.0] for name in names}, schema=dict.fromkeys(names, pl.Float64))
    # The probe is in default, so the default columns get their real types.
    row = row.with_columns(
        pl.lit("x").alias("customer_id"),
        pl.lit(as_of).alias("default_date"),
        pl.lit("dpd90").alias("default_type"),
    )
    table = _output_table(row, as_of, model)
    arrow = pa.Schema.from_pandas(table, preserve_index=False)
    text = (pa.large_string(), pa.null())  # a reason column of the probe row may be all None
    fields = [
        pa.field(
            f.name,
            pa.string()
            if f.type in text
            else pa.timestamp("us")
            if pa.types.is_timestamp(f.type)
            else f.type,
        )
        for f in arrow
    ]
    arrow = pa.schema(fields)
    spark = ", ".join(f"`{f.name}` {_ARROW_TO_SPARK[str(f.type)]}" for f in arrow)
    return arrow, spark


def ship_bundle(spark: SparkSession, bundle_dir: Path) -> str:
    """Make the bundle folder readable on every executor; returns its name there (its hash).

    Raises:
        SparkScoringError: on a Spark Connect session (no ``addFile``).
    """
    try:
        context = spark.sparkContext
    except Exception as error:  # Spark Connect sessions have no SparkContext
        raise SparkScoringError(
            f"cannot ship the bundle to the executors of this session ({error}); "
            "run score --engine spark with a classic session (spark-submit or a master URL)"
        ) from None
    bundle_hash = load_bundle(bundle_dir).bundle_hash
    key = (id(context), bundle_hash)
    if key not in _SHIPPED:
        # Shipped under its hash: two bundles never share a name on the executors.
        staged = Path(tempfile.mkdtemp(prefix="riskgrade-bundle-")) / bundle_hash
        shutil.copytree(bundle_dir, staged)
        context.addFile(str(staged), recursive=True)
        _SHIPPED.add(key)
    return bundle_hash


def score_spark(
    spark: SparkSession,
    raw: str | Path,
    as_of: date,
    bundle_dir: Path,
    lang: str = "en",
) -> DataFrame:
    """Rate every customer onboarded by ``as_of`` on Spark (lazy: nothing runs until written).

    Returns:
        A DataFrame with the columns of ``serving.batch.score_portfolio``, one row per
        customer (row order undefined).

    Raises:
        PortfolioError: if the bundle needs features the feature code lacks.
        BundleError: if the bundle does not verify.
    """
    model = as_model(bundle_dir)
    check_model_features(model)
    bundle_hash = model.bundle.bundle_hash
    bundle_name = ship_bundle(spark, bundle_dir)
    arrow_schema, spark_schema = _output_schema(model, as_of)
    features = compute_features_spark(read_tables(spark, raw), as_of)
    # The first default on or before as_of (rating.policy.default_status: keys are unique
    # per customer and date, so min_by has no tie).
    defaulted = (
        read_defaults(spark, raw)
        .filter(F.col("default_date") <= F.lit(as_of))
        .groupBy("customer_id")
        .agg(
            F.min("default_date").cast("date").alias("default_date"),
            F.min_by("default_type", "default_date").alias("default_type"),
        )
    )
    inputs = features.drop("as_of").join(defaulted, on="customer_id", how="left")
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or "200")
    inputs = inputs.repartition(partitions, "customer_id")

    def rate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        executor_model = _executor_model(bundle_name, bundle_hash)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            frame = frame.with_columns(pl.col(FEATURE_SPEC.names).cast(pl.Float64))
            table = _output_table(frame, as_of, executor_model, lang)
            yield pa.RecordBatch.from_pandas(table, schema=arrow_schema, preserve_index=False)

    return inputs.mapInArrow(rate, spark_schema)


_COALESCE = "spark.sql.adaptive.coalescePartitions.enabled"


@contextmanager
def _partitions_kept(spark: SparkSession) -> Iterator[None]:
    """Run the enclosed queries with adaptive partition coalescing off (restored after)."""
    before = spark.conf.get(_COALESCE, None)
    spark.conf.set(_COALESCE, "false")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(_COALESCE)
        else:
            spark.conf.set(_COALESCE, before)


def score_to_parquet(
    spark: SparkSession,
    raw: str | Path,
    as_of: date,
    bundle_dir: Path,
    out: str | Path,
    lang: str = "en",
) -> pd.DataFrame:
    """Score on Spark and write ``<out>/as_of=<date>/part-*.parquet``.

    Returns:
        Customers and customers in default per tier (a small summary, computed by Spark from
        the written files: each customer is rated once and nothing is held in memory).
    """
    rated = score_spark(spark, raw, as_of, bundle_dir, lang).drop("as_of")
    partition = f"as_of={as_of.isoformat()}"
    with _partitions_kept(spark):
        write_partitioned([(partition, rated)], out)
    counts: pd.DataFrame = (
        spark.read.schema(rated.schema)  # an empty portfolio writes no part file
        .parquet(f"{str(out).rstrip('/')}/{partition}")
        .groupBy("tier")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum(F.col("in_default").cast("bigint")).alias("in_default"),
        )
        .toPandas()
    )
    order = ["low", "medium", "high", "restricted"]
    return counts.set_index("tier").reindex(order, fill_value=0).astype(np.int64)
