"""The fast paths: one-customer (online) and chunked (batch) give the plain batch values."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.catalog import (
    FEATURE_SPEC,
    compute_feature_row,
    compute_features_chunked,
    compute_features_pl,
)
from features.groups.common import (
    FeatureFrames,
    FeatureInputError,
    customer_chunks,
    months_back,
    read_customer_ids,
    read_frames,
    to_frames,
    window_start,
)
from features.io import RawTables

AS_OF = date(2024, 6, 30)


def _only(frames: FeatureFrames, customer_id: str) -> FeatureFrames:
    return FeatureFrames(
        **{
            name: getattr(frames, name).filter(pl.col("customer_id") == customer_id)
            for name in FeatureFrames.__dataclass_fields__
        }
    )


@pytest.mark.parametrize(
    "as_of",
    [date(2024, 6, 30), date(2024, 2, 29), date(2023, 2, 28), date(2024, 8, 15), date(2024, 7, 30)],
)
def test_window_start_is_the_first_day_inside_the_window(as_of: date) -> None:
    # Given every day of three years around as_of
    days = pl.DataFrame(
        {"d": pl.date_range(as_of - timedelta(days=800), as_of + timedelta(days=40), eager=True)}
    )
    back = days.select(months_back("d", as_of)).to_series()
    for months in (1, 3, 6, 12):
        # When the window is tested by comparison with window_start
        inside = days["d"] >= window_start(as_of, months)
        # Then it selects exactly the days with months_back < months
        assert (inside == (back < months)).all(), months


def test_window_start_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="at least one month, got 0"):
        window_start(AS_OF, 0)


@pytest.mark.parametrize("as_of", [AS_OF, date(2024, 8, 15)])
def test_feature_row_equals_the_batch_row_bit_for_bit(
    generated_raw: RawTables, as_of: date
) -> None:
    # Given the batch features of a portfolio
    frames = to_frames(generated_raw)
    batch = compute_features_pl(frames, as_of)
    rng = np.random.default_rng(11)
    for customer_id in rng.choice(batch["customer_id"].to_numpy(), size=150, replace=False):
        # When one customer's frames go through the online path
        row = compute_feature_row(_only(frames, customer_id), as_of)
        # Then the vector is the batch row exactly (same expressions, same row order)
        expected = batch.filter(pl.col("customer_id") == customer_id).select(FEATURE_SPEC.names)
        assert row is not None and row.dtype == np.float64
        np.testing.assert_array_equal(row, expected.to_numpy()[0].astype(float), customer_id)


def test_one_customer_ignores_rows_of_other_customers(generated_raw: RawTables) -> None:
    # Given one customer's row but every other table holding the whole portfolio
    frames = to_frames(generated_raw)
    batch = compute_features_pl(frames, AS_OF)
    customer_id = batch["customer_id"][5]
    mixed = FeatureFrames(
        customers=frames.customers.filter(pl.col("customer_id") == customer_id),
        financial_statements=frames.financial_statements,
        credit_facilities=frames.credit_facilities,
        repayments=frames.repayments,
        transactions=frames.transactions,
    )
    # When computed, then only that customer's records count, as in batch
    online = compute_features_pl(mixed, AS_OF)
    assert online.equals(batch.filter(pl.col("customer_id") == customer_id))


def test_customer_without_records_matches_batch(generated_raw: RawTables) -> None:
    # Given a customer with a customers row only, next to one with records
    frames = to_frames(generated_raw)
    lone = frames.customers.head(1).with_columns(pl.lit("ZZ-lone").alias("customer_id"))
    with_lone = FeatureFrames(
        customers=pl.concat([frames.customers, lone]),
        financial_statements=frames.financial_statements,
        credit_facilities=frames.credit_facilities,
        repayments=frames.repayments,
        transactions=frames.transactions,
    )
    batch = compute_features_pl(with_lone, AS_OF).filter(pl.col("customer_id") == "ZZ-lone")
    # When it is computed alone
    online = compute_features_pl(_only(with_lone, "ZZ-lone"), AS_OF)
    # Then the one-row aggregates of empty tables read as the batch's missing groups
    assert online.equals(batch)
    assert online["no_statement"][0] == 1.0 and online["active_facilities"][0] == 0.0
    assert online["inflow_12m"][0] == 0.0 and online["inflow_cv_12m"][0] is None


def test_customer_onboarded_later_has_no_row(generated_raw: RawTables) -> None:
    frames = to_frames(generated_raw)
    customer_id = frames.customers["customer_id"][0]
    one = _only(frames, customer_id)
    onboarded = one.customers["onboarding_date"][0]
    before = onboarded - timedelta(days=1)
    assert compute_feature_row(one, before) is None
    empty = compute_features_pl(one, before)
    assert empty.height == 0 and empty.columns == ["customer_id", *FEATURE_SPEC.names]


def test_feature_row_needs_exactly_one_customer(generated_raw: RawTables) -> None:
    with pytest.raises(FeatureInputError, match="exactly one customer, got 600"):
        compute_feature_row(generated_raw, AS_OF)


@pytest.mark.parametrize("chunk", [37, 1000])
def test_chunked_equals_unchunked(sample_raw_dir: Path, chunk: int) -> None:
    # Given a raw folder, when computed in ranges of customer ids
    calls: list[tuple[int, int]] = []
    chunked = compute_features_chunked(
        sample_raw_dir, AS_OF, chunk_customers=chunk, progress=lambda d, n: calls.append((d, n))
    )
    # Then the frame equals the one computed at once, and progress counted every range
    assert chunked.equals(compute_features_pl(read_frames(sample_raw_dir, AS_OF), AS_OF))
    total = -(-len(read_customer_ids(sample_raw_dir, AS_OF)) // chunk)
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_chunked_rejects_a_bad_chunk_size(sample_raw_dir: Path) -> None:
    with pytest.raises(ValueError, match="chunk_customers must be at least 1, got 0"):
        compute_features_chunked(sample_raw_dir, AS_OF, chunk_customers=0)


def test_customer_chunks_cover_the_ids_in_order() -> None:
    ids = [f"C{i:03d}" for i in range(10)]
    assert customer_chunks(ids, 4) == [("C000", "C003"), ("C004", "C007"), ("C008", "C009")]
    assert customer_chunks([], 4) == []
    with pytest.raises(ValueError, match="must be sorted"):
        customer_chunks(["b", "a"], 4)


def test_read_frames_reads_only_the_customer_range(sample_raw_dir: Path) -> None:
    ids = read_customer_ids(sample_raw_dir)
    first, last = ids[10], ids[19]
    frames = read_frames(sample_raw_dir, AS_OF, customers=(first, last))
    for name in FeatureFrames.__dataclass_fields__:
        column = getattr(frames, name)["customer_id"]
        assert column.is_between(first, last).all(), name
    assert frames.customers.height == 10
