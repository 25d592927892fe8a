"""The feature definitions on Spark: parity with polars, point in time, each construct."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from features.catalog import FEATURE_SPEC, compute_features, compute_features_pl
from features.groups.common import read_frames, to_frames
from features.io import RawTables
from tests.features.raw_builders import AS_OF, cut_extract, ts
from tests.features.test_point_in_time import FUTURE, _append, _base

pytest.importorskip("pyspark")

from features.spark.engine import (
    compute_features_spark,
    frames_to_spark,
    read_tables,
)
from features.spark.plan import PlanTranslator, UntranslatableError, plan_json

pytestmark = pytest.mark.spark

EXACT = [
    name
    for name in FEATURE_SPEC.names
    if name.split("_")[0] in ("inflow", "outflow", "netflow") and "_to_" not in name
] + [
    "active_facilities",
    "dpd30_count_12m",
    "dpd60_count_12m",
    "dpd90_count_12m",
    "facilities_opened_6m",
    "active_months_12m",
    "dormant_months_12m",
    "months_as_customer",
    "months_since_period_end",
]
"""Integer sums (money in fen, counts): equal bit for bit on both engines."""


def _spark_features(spark, raw: RawTables, as_of: date) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """``compute_features`` on Spark: same columns, types and row order."""
    tables = frames_to_spark(spark, to_frames(raw))
    frame = compute_features_spark(tables, as_of).toPandas().sort_values("customer_id")
    frame = frame.reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    return frame.astype({name: "float64" for name in FEATURE_SPEC.names})


def _assert_parity(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert got["customer_id"].to_list() == expected["customer_id"].to_list()
    for name in FEATURE_SPEC.names:
        a = got[name].cast(pl.Float64).to_numpy()
        b = expected[name].cast(pl.Float64).to_numpy()
        if name in EXACT:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("as_of", [date(2024, 6, 30), date(2024, 8, 15)])
def test_spark_features_equal_polars_on_the_sample_portfolio(
    spark, sample_raw_dir: Path, as_of: date
) -> None:  # type: ignore[no-untyped-def]
    # Given the sample portfolio on disk (Parquet, as a data platform holds it)
    expected = compute_features_pl(read_frames(sample_raw_dir), as_of)
    # When Spark reads the same files and runs the translated definitions
    got = compute_features_spark(read_tables(spark, sample_raw_dir), as_of)
    got = pl.from_arrow(got.toArrow()).sort("customer_id")
    # Then every feature is the polars value: integer sums exactly, the rest to 1e-9
    assert got.height == expected.height > 100
    _assert_parity(got, expected)


def _namespaced(raw: RawTables, suffix: str) -> RawTables:
    """The same records under ids ending in ``suffix`` (an independent customer)."""
    tables = {}
    for name, frame in raw.items():
        frame = frame.copy()
        for column in ("customer_id", "facility_id", "txn_id"):
            if column in frame.columns:
                frame[column] = frame[column].astype("str") + suffix
        tables[name] = frame
    return RawTables(**tables)


def test_point_in_time_records_after_as_of_change_nothing_on_spark(spark) -> None:  # type: ignore[no-untyped-def]
    # Given the point-in-time cases of the polars tests (tests/features/test_point_in_time.py),
    # each as its own customer of one portfolio (features are per customer: one Spark query)
    cases = {"base": _base()} | {
        case: _append(_base(), table, rows) for case, (table, rows) in FUTURE.items()
    }
    parts = [_namespaced(raw, f"|{case}") for case, raw in cases.items()]
    portfolio = RawTables(
        **{
            name: pd.concat([getattr(p, name) for p in parts], ignore_index=True)
            for name, _ in parts[0].items()
        }
    )
    # When Spark computes the features at as_of
    got = _spark_features(spark, portfolio, AS_OF).set_index("customer_id")
    # Then the base customer's row is polars', and no record dated after as_of changes it
    base = got.loc["a|base"]
    expected = compute_features(_base(), AS_OF).iloc[0]
    pd.testing.assert_series_equal(
        base.drop("as_of"), expected.drop(["customer_id", "as_of"]), check_names=False
    )
    assert not any(index.startswith("z|") for index in got.index)  # onboarded later
    for case in FUTURE:
        pd.testing.assert_series_equal(got.loc[f"a|{case}"], base, check_names=False, obj=case)


def test_statement_invisible_before_published_date_on_spark(spark) -> None:  # type: ignore[no-untyped-def]
    raw = _base()
    day_before = _spark_features(spark, raw, date(2024, 4, 29))
    on_the_day = _spark_features(spark, raw, date(2024, 4, 30))
    assert day_before["no_statement"].tolist() == [1.0]
    assert on_the_day["no_statement"].tolist() == [0.0]


def test_label_window_never_leaks_into_spark_features(spark, generated_raw: RawTables) -> None:  # type: ignore[no-untyped-def]
    # Given the full history and the history cut at the snapshot
    snapshot = date(2024, 3, 31)
    full = _spark_features(spark, generated_raw, snapshot)
    cut = _spark_features(spark, cut_extract(generated_raw, snapshot), snapshot)
    # Then the features at the snapshot are identical, and equal to polars'
    pd.testing.assert_frame_equal(full, cut, check_exact=False, rtol=1e-12)
    polars = compute_features(generated_raw, snapshot)
    pd.testing.assert_frame_equal(full, polars, check_exact=False, rtol=1e-9, atol=1e-9)


def _translate(spark, frame: pl.DataFrame, query: pl.LazyFrame) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    tables = {"t": spark.createDataFrame(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))}
    return pl.from_arrow(PlanTranslator(tables).translate(plan_json(query)).toArrow())


def test_offset_by_months_translates_to_add_months_day_by_day(spark) -> None:  # type: ignore[no-untyped-def]
    # Given every day of five years (leap days and month ends included)
    start = date(2020, 1, 1)
    days = pl.DataFrame({"d": [start + timedelta(days=i) for i in range(5 * 366)]})
    query = days.lazy().select(
        "d",
        pl.col("d").dt.offset_by("-12mo").alias("back_12"),
        pl.col("d").dt.offset_by("1mo").alias("fwd_1"),
        pl.col("d").dt.offset_by("-3mo").alias("back_3"),
        pl.col("d").dt.offset_by("2y").alias("fwd_2y"),
    )
    # When the query runs on both engines, then each day maps to the same date
    expected = query.collect().sort("d")
    got = _translate(spark, days, query).sort("d")
    assert got.equals(expected)


def test_arg_max_and_sorted_first_translate_to_max_by_and_min_by(spark) -> None:  # type: ignore[no-untyped-def]
    # Given groups with nulls in the sort keys and a descending tie-break
    frame = pl.DataFrame(
        {
            "k": ["a", "a", "a", "b", "b", "c"],
            "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "o": [
                date(2020, 1, 1),
                date(2022, 1, 1),
                date(2021, 1, 1),
                None,
                date(2019, 1, 1),
                None,
            ],
            "dist": [5, None, 5, None, None, None],
        }
    )
    query = (
        frame.lazy()
        .group_by("k")
        .agg(
            pl.col("v").get(pl.col("o").arg_max()).alias("at_max"),
            pl.col("v").get(pl.col("o").arg_min()).alias("at_min"),
            pl.col("v")
            .sort_by(["dist", "o"], descending=[False, True], nulls_last=True)
            .first()
            .alias("best"),
        )
    )
    # When translated, then max_by / min_by pick the same rows as polars
    expected = query.collect().sort("k")
    got = _translate(spark, frame, query).sort("k")
    assert got.select(expected.columns).equals(expected)
    assert expected.filter(pl.col("k") == "a")["best"].item() == 3.0  # later of the tied dist 5


def test_category_codes_translate_to_case_when(spark) -> None:  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"c": ["x", "z", None, "y", "unknown"]})
    query = frame.lazy().select(
        "c", pl.col("c").replace_strict({"x": 0.0, "y": 1.0, "z": 2.0}, default=None).alias("code")
    )
    expected = query.collect()
    got = _translate(spark, frame, query)
    assert got.sort("c", nulls_last=True).equals(expected.sort("c", nulls_last=True))
    assert got.filter(pl.col("c") == "unknown")["code"].item() is None


def test_an_untranslatable_construct_fails_loudly(spark) -> None:  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"v": [1.0, 2.0]})
    with pytest.raises(UntranslatableError, match=r"function"):
        _translate(spark, frame, frame.lazy().select(pl.col("v").shift(1)))


def test_sum_of_an_all_null_group_is_zero_like_polars(spark) -> None:  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"k": ["a", "b"], "v": [None, 2]}, schema={"k": pl.String, "v": pl.Int64})
    query = frame.lazy().group_by("k").agg(pl.col("v").sum(), (pl.col("v") > 0).sum().alias("n"))
    got = _translate(spark, frame, query).sort("k")
    assert got["v"].to_list() == [0, 2] and got["n"].to_list() == [0, 1]


def test_raw_timestamps_in_nanoseconds_read_as_dates_and_times(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Given a customers table written by pandas (nanosecond timestamps)
    frame = pd.DataFrame({"customer_id": ["a"], "ts": [ts("2024-06-30 23:59:59")]})
    frame.to_parquet(tmp_path / "t.parquet")
    from features.spark.engine import _normalised

    source = spark.read.parquet(str(tmp_path / "t.parquet"))
    kind = source.schema["ts"].dataType
    value = source.select(_normalised("ts", kind, "timestamp_ntz")).first()[0]
    day = source.select(_normalised("ts", kind, "date")).first()[0]
    assert str(value) == "2024-06-30 23:59:59" and day == date(2024, 6, 30)
