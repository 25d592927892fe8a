from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.catalog import FEATURE_SPEC, GROUPS, compute_features
from features.groups.common import FeatureInputError, to_frames
from features.io import RawTables
from features.spec import FeatureKind

AS_OF = date(2024, 6, 30)


def _subset(raw: RawTables, customer_id: str) -> RawTables:
    return RawTables(
        **{name: frame[frame["customer_id"] == customer_id] for name, frame in raw.items()}
    )


def test_spec_lists_every_group_feature_once_in_group_order() -> None:
    names = [name for group in GROUPS.values() for name in group.FEATURES]
    assert FEATURE_SPEC.names == names
    assert len(set(names)) == len(names)
    for feature in FEATURE_SPEC.features:
        assert feature.description and feature.description_zh
        assert (feature.kind == FeatureKind.CATEGORICAL) == bool(feature.categories)


def test_frame_is_float_apart_from_keys(generated_raw: RawTables) -> None:
    frame = compute_features(generated_raw, AS_OF)
    assert list(frame.columns) == ["customer_id", "as_of", *FEATURE_SPEC.names]
    assert (frame[FEATURE_SPEC.names].dtypes == "float64").all()
    assert frame["customer_id"].is_unique and frame["customer_id"].is_monotonic_increasing
    onboarded = generated_raw.customers["onboarding_date"] <= pd.Timestamp(AS_OF)
    assert len(frame) == int(onboarded.sum())


def test_group_compute_equals_catalog_columns(generated_raw: RawTables) -> None:
    # Given the frames, when each group computes alone, then it matches the joined frame
    frames = to_frames(generated_raw)
    joined = compute_features(frames, AS_OF)
    for group in GROUPS.values():
        alone = group.compute(frames, AS_OF).to_pandas()
        assert alone["customer_id"].tolist() == joined["customer_id"].tolist()
        np.testing.assert_allclose(
            alone[list(group.FEATURES)].to_numpy(dtype=float),
            joined[list(group.FEATURES)].to_numpy(),
            rtol=1e-12,
            equal_nan=True,
        )


def test_batch_and_online_parity(generated_raw: RawTables) -> None:
    # Given the portfolio features and a seeded sample of customers
    batch = compute_features(generated_raw, AS_OF).set_index("customer_id")
    rng = np.random.default_rng(3)
    sample = rng.choice(batch.index.to_numpy(), size=30, replace=False)
    for customer_id in sample:
        # When one customer's rows alone are scored (as a scoring request carries them)
        online = compute_features(_subset(generated_raw, customer_id), AS_OF)
        # Then every feature equals the batch value
        assert online["customer_id"].tolist() == [customer_id]
        np.testing.assert_allclose(
            online[FEATURE_SPEC.names].to_numpy()[0],
            batch.loc[customer_id, FEATURE_SPEC.names].to_numpy(dtype=float),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=customer_id,
        )


def test_deterministic(generated_raw: RawTables) -> None:
    first = compute_features(generated_raw, AS_OF)
    second = compute_features(generated_raw, AS_OF)
    pd.testing.assert_frame_equal(first, second)


def test_missing_column_is_named(generated_raw: RawTables) -> None:
    broken = RawTables(
        **{
            name: frame.drop(columns=["amount"]) if name == "transactions" else frame
            for name, frame in generated_raw.items()
        }
    )
    with pytest.raises(FeatureInputError, match="'transactions' lacks column\\(s\\) amount"):
        compute_features(broken, AS_OF)


def test_timestamp_as_of_means_the_whole_day(generated_raw: RawTables) -> None:
    by_date = compute_features(generated_raw, AS_OF)
    by_timestamp = compute_features(generated_raw, pd.Timestamp("2024-06-30 08:00"))
    pd.testing.assert_frame_equal(by_date, by_timestamp)


def test_as_of_must_be_a_date(generated_raw: RawTables) -> None:
    with pytest.raises(FeatureInputError, match="as_of must be a date, got str"):
        compute_features(generated_raw, "2024-06-30")  # type: ignore[arg-type]


def test_polars_reader_matches_pandas_reader(sample_raw_dir) -> None:
    # Given a raw folder on disk, when read by polars directly or via pandas RawTables
    from features.groups.common import read_frames
    from features.io import read_raw

    direct = compute_features(read_frames(sample_raw_dir), AS_OF)
    pruned = compute_features(read_frames(sample_raw_dir, as_of=AS_OF), AS_OF)
    via_pandas = compute_features(read_raw(sample_raw_dir), AS_OF)
    # Then the features are identical (pruning old transactions changes nothing)
    pd.testing.assert_frame_equal(direct, via_pandas)
    pd.testing.assert_frame_equal(pruned, via_pandas)
