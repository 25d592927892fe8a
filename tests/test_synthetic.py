"""Behaviour of the sample portfolio generator (features/synthetic.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.io import RawTables, read_raw
from features.schema import SCHEMAS, TABLES
from features.synthetic import (
    TRUE_PD_FILE,
    TRUTH_DIR,
    GeneratorConfig,
    generate,
    generate_tables,
)

END = pd.Timestamp("2025-12-31")


@pytest.fixture(scope="module")
def portfolio() -> tuple[RawTables, pd.DataFrame]:
    return generate_tables(GeneratorConfig(customers=1000, seed=11, chunk_customers=400))


@pytest.fixture(scope="module")
def large_portfolio() -> tuple[RawTables, pd.DataFrame]:
    return generate_tables(GeneratorConfig(customers=6000, seed=5))


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*.parquet"))
    }


def _realised_12m_default(truth: pd.DataFrame, defaults: pd.DataFrame) -> pd.Series:
    default_date = truth["customer_id"].map(defaults.set_index("customer_id")["default_date"])
    horizon = truth["month"] + pd.DateOffset(months=12)
    return (default_date > truth["month"]) & (default_date <= horizon)


# --- determinism ------------------------------------------------------------------------------


def test_same_config_writes_byte_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    # Given one config generated twice and the same config with another seed
    config = GeneratorConfig(customers=300, seed=3, chunk_customers=120)
    generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    generate(config.model_copy(update={"seed": 4}), tmp_path / "c")

    # When the files are hashed
    first, second, other = (_digests(tmp_path / name) for name in "abc")

    # Then the same config gives the same bytes for every table and the truth
    assert set(first) == {f"{name}.parquet" for name in TABLES} | {f"{TRUTH_DIR}/{TRUE_PD_FILE}"}
    assert first == second
    # And another seed gives different contents in every table
    assert all(first[name] != other[name] for name in first)


def test_in_memory_tables_match_the_written_folder(tmp_path: Path) -> None:
    # Given one config generated in memory and on disk
    config = GeneratorConfig(customers=300, seed=8, chunk_customers=100)
    raw, truth = generate_tables(config)
    generate(config, tmp_path / "raw")

    # When the folder is read back
    written = read_raw(tmp_path / "raw")
    written_truth = pd.read_parquet(tmp_path / "raw" / TRUTH_DIR / TRUE_PD_FILE)

    # Then both routes give the same frames
    for name, frame in raw.items():
        pd.testing.assert_frame_equal(getattr(written, name), frame)
    pd.testing.assert_frame_equal(written_truth, truth)


# --- contract ---------------------------------------------------------------------------------


def test_every_table_passes_its_pandera_schema(portfolio: tuple[RawTables, pd.DataFrame]) -> None:
    # Given a generated portfolio
    raw, _ = portfolio

    # When every table is validated against the raw-data contract
    for name, frame in raw.items():
        validated = SCHEMAS[name].validate(frame, lazy=True)

        # Then it passes unchanged, with the contract's columns in order
        assert list(validated.columns) == list(SCHEMAS[name].columns)
        assert len(frame) > 0, name


def test_no_event_lies_after_the_extract_date(portfolio: tuple[RawTables, pd.DataFrame]) -> None:
    # Given a portfolio extracted on 2025-12-31
    raw, truth = portfolio

    # Then only contractual due dates (and maturities) may lie after the extract date
    assert raw.customers["onboarding_date"].max() <= END
    assert raw.financial_statements["published_date"].max() <= END
    assert raw.credit_facilities["opened"].max() <= END
    assert raw.repayments["paid_date"].max() <= END
    assert raw.transactions["ts"].max() <= END
    assert raw.defaults["default_date"].max() <= END
    assert truth["month"].max() <= END
    assert (raw.repayments["due_date"] > END).any()
    # And instalments not yet due are unpaid
    future = raw.repayments[raw.repayments["due_date"] > END]
    assert future["paid_date"].isna().all()
    assert (future["amount_paid"] == 0).all()


def test_ids_are_zero_padded_sortable_and_unique(portfolio: tuple[RawTables, pd.DataFrame]) -> None:
    # Given a portfolio generated in several chunks
    raw, _ = portfolio

    # Then ids follow their patterns and stay unique across chunks
    customers = raw.customers["customer_id"]
    assert customers.str.fullmatch(r"C\d{7}").all()
    assert customers.tolist() == sorted(customers) == [f"C{i:07d}" for i in range(1, 1001)]
    assert raw.credit_facilities["facility_id"].str.fullmatch(r"F\d{10}").all()
    assert raw.credit_facilities["facility_id"].is_unique
    assert raw.transactions["txn_id"].str.fullmatch(r"T\d{12}").all()
    assert raw.transactions["txn_id"].is_unique
    assert raw.transactions["counterparty_id"].str.fullmatch(r"P\d{8}").all()
    assert set(raw.repayments["facility_id"]) <= set(raw.credit_facilities["facility_id"])


def test_portfolio_covers_every_segment_and_onboarding_spreads(
    portfolio: tuple[RawTables, pd.DataFrame],
) -> None:
    # Given a portfolio of 1000 customers
    customers = portfolio[0].customers

    # Then every industry, region, size class and legal form occurs
    for column, levels in {
        "industry": 10,
        "region": 6,
        "size_class": 4,
        "legal_form": 4,
    }.items():
        assert customers[column].nunique() == levels, column
    # And some customers were onboarded before the window, most within it
    before = (customers["onboarding_date"] < pd.Timestamp("2019-01-01")).mean()
    assert 0.3 < before < 0.5
    # And each compliance flag is rare
    for flag in ("sanctions_hit", "legal_enforcement", "fraud"):
        assert 0.0 < customers[flag].mean() < 0.04, flag


def test_transaction_volume_grows_with_size(portfolio: tuple[RawTables, pd.DataFrame]) -> None:
    # Given a portfolio
    raw, _ = portfolio
    size = raw.customers.set_index("customer_id")["size_class"]

    # When transactions are counted per customer by size class
    per_customer = raw.transactions.groupby("customer_id").size().reindex(size.index, fill_value=0)
    by_size = per_customer.groupby(size).mean()

    # Then larger firms transact more and the average lies around 100-150
    assert by_size["micro"] < by_size["small"] < by_size["medium"] < by_size["large"]
    assert 90 < per_customer.mean() < 170


# --- default behaviour ------------------------------------------------------------------------


def test_yearly_default_rate_stays_between_2_and_6_percent(tmp_path: Path) -> None:
    # Given a portfolio big enough for stable yearly rates
    summary = generate(GeneratorConfig(customers=10_000, seed=2), tmp_path / "raw")

    # Then every complete year of the window has a default rate within 2%-6%
    assert sorted(summary.yearly_default_rates) == list(range(2019, 2026))
    for year, rate in summary.yearly_default_rates.items():
        assert 0.02 <= rate <= 0.06, (year, rate)
    assert summary.defaults == summary.row_counts["defaults"] > 0
    assert summary.row_counts["customers"] == 10_000


def test_realised_defaults_rise_with_true_pd(
    large_portfolio: tuple[RawTables, pd.DataFrame],
) -> None:
    # Given the truth at yearly snapshots and the realised 12-month defaults
    raw, truth = large_portfolio
    snapshots = truth[
        truth["month"].isin(pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"]))
    ]
    realised = _realised_12m_default(snapshots, raw.defaults)

    # When customers are grouped into true-PD quintiles
    quintile = pd.qcut(snapshots["true_pd_12m"], 5, labels=False)
    observed = realised.groupby(quintile.to_numpy()).mean()

    # Then the observed default frequency rises quintile by quintile
    assert observed.is_monotonic_increasing, observed
    assert observed.iloc[-1] > 4 * observed.iloc[0]
    # And the true PD is calibrated on average (within 30%)
    assert realised.mean() == pytest.approx(snapshots["true_pd_12m"].mean(), rel=0.3)


def test_defaulters_stop_producing_records(portfolio: tuple[RawTables, pd.DataFrame]) -> None:
    # Given the defaulters of a portfolio
    raw, truth = portfolio
    default_date = raw.defaults.set_index("customer_id")["default_date"]
    assert raw.defaults["customer_id"].is_unique

    def after_default(frame: pd.DataFrame, column: str) -> pd.Series:
        limit = frame["customer_id"].map(default_date)
        return frame[column] >= limit

    # Then no statement period, facility or transaction follows the default
    assert not after_default(raw.financial_statements, "period_end").any()
    assert not after_default(raw.credit_facilities, "opened").any()
    assert not after_default(raw.transactions, "ts").any()
    # And no instalment due after the default is paid
    repayments = raw.repayments
    assert repayments.loc[after_default(repayments, "due_date"), "paid_date"].isna().all()
    # And the truth has no month after the default
    assert not after_default(truth, "month").any()


def test_dpd90_defaults_follow_90_days_of_arrears(
    portfolio: tuple[RawTables, pd.DataFrame],
) -> None:
    # Given the dpd90 defaulters and their instalments
    raw, _ = portfolio
    dpd90 = raw.defaults[raw.defaults["default_type"] == "dpd90"].set_index("customer_id")
    assert len(dpd90) > 0
    repayments = raw.repayments[raw.repayments["customer_id"].isin(dpd90.index)]

    # When the first instalment still unpaid at the extract date is found per defaulter
    unpaid = repayments[repayments["paid_date"].isna() & (repayments["due_date"] <= END)]
    first_unpaid = unpaid.groupby("customer_id")["due_date"].min()

    # Then the default date is exactly 90 days after it: delinquency leads the default
    gap = (dpd90["default_date"] - first_unpaid.reindex(dpd90.index)).dt.days
    assert (gap == 90).all()
    # And the default types are mostly dpd90
    shares = raw.defaults["default_type"].value_counts(normalize=True)
    assert shares["dpd90"] > 0.5


def test_payment_delays_grow_as_health_falls(
    large_portfolio: tuple[RawTables, pd.DataFrame],
) -> None:
    # Given performing customers' paid instalments and the latent health in their due month
    raw, truth = large_portfolio
    paid = raw.repayments[
        raw.repayments["paid_date"].notna()
        & (raw.repayments["due_date"] >= pd.Timestamp("2019-01-01"))
        & ~raw.repayments["customer_id"].isin(raw.defaults["customer_id"])
    ]
    month = paid["due_date"].dt.to_period("M").dt.to_timestamp()
    health = truth.set_index(["customer_id", "month"])["health"]
    paid_health = health.reindex(pd.MultiIndex.from_arrays([paid["customer_id"], month]))

    # When the late share is compared between the weakest and the healthiest quartile
    days_late = (paid["paid_date"] - paid["due_date"]).dt.days.to_numpy()
    quartile = pd.qcut(paid_health.to_numpy(), 4, labels=False)
    late_share = pd.Series(days_late > 0).groupby(quartile).mean()

    # Then weak firms pay late far more often, and never reach 90 days unless they default
    assert late_share[0] > 2 * late_share[3]
    assert days_late.max() < 90


def test_statement_ratios_worsen_as_health_falls(
    large_portfolio: tuple[RawTables, pd.DataFrame],
) -> None:
    # Given statements joined to the health at their period end
    raw, truth = large_portfolio
    statements = raw.financial_statements
    month = statements["period_end"].dt.to_period("M").dt.to_timestamp()
    health = truth.set_index(["customer_id", "month"])["health"]
    statement_health = health.reindex(
        pd.MultiIndex.from_arrays([statements["customer_id"], month])
    ).to_numpy()
    known = ~np.isnan(statement_health)

    def correlation(values: pd.Series) -> float:
        return float(np.corrcoef(values.to_numpy()[known], statement_health[known])[0, 1])

    # Then leverage rises and liquidity, margins and cash flows fall as health falls
    assert correlation(statements["total_liabilities"] / statements["total_assets"]) < -0.5
    assert correlation(statements["current_assets"] / statements["current_liabilities"]) > 0.3
    margin = 1 - statements["operating_costs"] / statements["revenue"]
    assert correlation(margin) > 0.5
    assert correlation(statements["operating_cash_flow"] / statements["revenue"]) > 0.3
    # And publication lags stay within 1-4 months apart from the late ones
    lag_days = (statements["published_date"] - statements["period_end"]).dt.days
    assert (lag_days >= 20).all()
    assert (lag_days <= 125).mean() > 0.85


# --- shock ------------------------------------------------------------------------------------


def test_shock_lowers_health_and_raises_defaults_only_where_it_hits() -> None:
    # Given the same portfolio without and with a shock on construction and real estate
    base = GeneratorConfig(customers=3000, seed=9)
    shocked = base.model_copy(
        update={
            "shock_date": pd.Timestamp("2023-01-01").date(),
            "shock_size": 1.0,
            "shock_industries": ("construction", "real_estate"),
        }
    )
    raw_base, truth_base = generate_tables(base)
    raw_shock, truth_shock = generate_tables(shocked)
    industry = raw_base.customers.set_index("customer_id")["industry"]
    hit_ids = industry.index[industry.isin(["construction", "real_estate"])]

    # When health and defaults are compared
    keys = ["customer_id", "month"]
    joined = truth_base.merge(truth_shock, on=keys, suffixes=("_base", "_shock"))
    drop = joined["health_base"] - joined["health_shock"]
    is_hit = joined["customer_id"].isin(hit_ids)
    after = joined["month"] >= pd.Timestamp("2023-01-01")

    # Then health drops by the shock size for hit customers from the shock date on only
    assert np.allclose(drop[is_hit & after], 1.0)
    assert np.allclose(drop[~(is_hit & after)], 0.0)

    # And hit industries default more after the shock, the others not at all differently
    def defaults_after(raw: RawTables, hit: bool) -> int:
        frame = raw.defaults
        return int(
            (
                (frame["default_date"] >= pd.Timestamp("2023-01-01"))
                & (frame["customer_id"].isin(hit_ids) == hit)
            ).sum()
        )

    assert defaults_after(raw_shock, hit=True) > 1.5 * defaults_after(raw_base, hit=True)
    assert defaults_after(raw_shock, hit=False) == defaults_after(raw_base, hit=False)


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"customers": 0}, "customers"),
        ({"mess_rate": 0.9}, "mess_rate"),
        ({"shock_industries": ("mining",)}, "mining"),
        ({"start": "2019-01-15"}, "start"),
        ({"end": "2019-03-31"}, "end"),
        ({"shock_date": "2030-01-01"}, "shock_date"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(update: dict[str, object], field: str) -> None:
    # Given an invalid setting, When the config is built, Then the error names it
    with pytest.raises(ValidationError, match=field):
        GeneratorConfig.model_validate({"customers": 10, **update})


def test_unwritable_target_leaves_nothing_behind(tmp_path: Path) -> None:
    # Given a target whose parent is a regular file
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")

    # When generating into it, Then it fails and nothing is written
    with pytest.raises(OSError):
        generate(GeneratorConfig(customers=50), blocker / "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_failure_mid_run_keeps_the_previous_folder(tmp_path: Path) -> None:
    # Given a previous raw folder and a run that fails after its first chunk
    target = tmp_path / "raw"
    generate(GeneratorConfig(customers=100, seed=1), target)
    before = _digests(target)
    calls: list[tuple[int, int]] = []

    def fail_after_first_chunk(done: int, total: int) -> None:
        calls.append((done, total))
        raise RuntimeError("disk full")

    # When the new run fails
    with pytest.raises(RuntimeError, match="disk full"):
        generate(
            GeneratorConfig(customers=200, seed=2, chunk_customers=100),
            target,
            progress=fail_after_first_chunk,
        )

    # Then the previous folder is untouched and no staging folder is left over
    assert calls == [(100, 200)]
    assert _digests(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_progress_reports_every_chunk(tmp_path: Path) -> None:
    # Given a run of 250 customers in chunks of 100
    calls: list[tuple[int, int]] = []

    # When it completes
    summary = generate(
        GeneratorConfig(customers=250, chunk_customers=100),
        tmp_path / "raw",
        progress=lambda done, total: calls.append((done, total)),
    )

    # Then progress was reported after each chunk and the counts match the files
    assert calls == [(100, 250), (200, 250), (250, 250)]
    written = read_raw(tmp_path / "raw")
    assert summary.row_counts == written.row_counts()
    truth = pd.read_parquet(tmp_path / "raw" / TRUTH_DIR / TRUE_PD_FILE)
    assert summary.truth_rows == len(truth)
