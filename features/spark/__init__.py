"""The feature definitions on Apache Spark (``--engine spark``).

``features.spark.plan`` translates the polars batch query mechanically into PySpark;
``features.spark.engine`` reads raw Parquet tables, computes features and the training set on
Spark and writes partitioned Parquet. Both need the optional ``spark`` extra (pyspark and a
Java runtime); this module only holds the settings, so params load without pyspark.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SparkConfig(BaseModel):
    """How to reach Spark and how to size its work (params.yaml ``spark``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    master: str = "local[*]"
    """Spark master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://...``);
    ``--spark-master`` overrides it. Under ``spark-submit`` pass the master there instead."""
    app_name: str = "riskgrade"
    conf: dict[str, str] = Field(
        default_factory=lambda: {
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": "200",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
            # pandas writes Parquet times in nanoseconds, which Spark reads only as integers
            "spark.sql.legacy.parquet.nanosAsLong": "true",
        }
    )
    """Spark settings passed to the session builder (any ``spark.*`` key)."""
