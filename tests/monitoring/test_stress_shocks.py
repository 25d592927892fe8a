"""Shocks on the point-in-time raw records, and what they do to the features."""

from __future__ import annotations

import itertools
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.asof import cut_tables
from features.catalog import FEATURE_SPEC, compute_features
from features.io import RawTables
from features.synthetic import GeneratorConfig, generate_tables
from features.validate import validate_tables
from monitoring.scenario import customer_shocks, parse_scenario
from monitoring.stress import apply_shocks, instalment_draw

AS_OF = date(2024, 6, 30)


@pytest.fixture(scope="module")
def raw() -> RawTables:
    """A 150-customer portfolio (seed 11) as known at AS_OF."""
    tables, _ = generate_tables(GeneratorConfig(customers=150, seed=11, end=date(2024, 12, 31)))
    known, _ = cut_tables(tables.items(), AS_OF)
    return RawTables.from_mapping(known)


def _scenario(**shock: object) -> object:
    return parse_scenario({"name": "t", "shocks": [shock]})


def _shock(raw: RawTables, **shock: object) -> tuple[RawTables, dict[str, int]]:
    return apply_shocks(raw, customer_shocks(raw.customers, _scenario(**shock)), AS_OF)


def _latest(statements: pd.DataFrame) -> pd.DataFrame:
    known = statements[statements["published_date"] <= pd.Timestamp(AS_OF)]
    return known.loc[known.groupby("customer_id")["period_end"].idxmax()].set_index("customer_id")


def _same(left: pd.Series, right: pd.Series) -> None:
    pd.testing.assert_series_equal(left, right, check_names=False)


def test_given_flow_shocks_when_applied_then_latest_statement_changes_by_the_formulas(raw):
    # When revenue -20%, margin -5 points and cash flow -30% hit everyone
    shocked, counts = _shock(raw, revenue=0.2, operating_margin=0.05, cash_flow=0.3)
    before, after = _latest(raw.financial_statements), _latest(shocked.financial_statements)
    # Then the latest known statement of every customer with one changed, and only that one
    assert counts["financial_statements"] == len(before)
    changed = (shocked.financial_statements != raw.financial_statements).any(axis=1)
    assert changed.sum() == len(before)
    revenue = before["revenue"] * 0.8
    extra = 0.05 * revenue
    _same(after["revenue"], revenue)
    _same(after["operating_costs"], before["operating_costs"] + extra)
    lost = before["revenue"] * 0.2 + extra
    _same(after["net_income"], before["net_income"] - lost)
    flow = before["operating_cash_flow"] - lost
    expected_flow = flow - 0.3 * flow.abs()
    _same(after["operating_cash_flow"], expected_flow)
    # And the lost cash is borrowed short term; assets stay
    borrowed = before["operating_cash_flow"] - expected_flow
    assert (borrowed > 0).all()
    for column in ("current_liabilities", "total_liabilities"):
        _same(after[column], before[column] + borrowed)
    for column in ("total_assets", "current_assets", "cash", "interest_expense"):
        _same(after[column], before[column])


def test_given_a_segment_shock_then_other_customers_records_are_untouched(raw):
    # When only manufacturing in the east is hit, on every kind of record
    shocked, counts = _shock(
        raw,
        industries=["manufacturing"],
        regions=["east"],
        revenue=0.3,
        overdue={"share": 1.0, "days": 60},
        inflows=0.5,
    )
    hit = set(
        raw.customers.loc[
            (raw.customers["industry"] == "manufacturing") & (raw.customers["region"] == "east"),
            "customer_id",
        ]
    )
    assert hit and all(counts.values())
    # Then every changed record belongs to a customer of the segment
    for name in ("financial_statements", "repayments", "transactions"):
        before, after = getattr(raw, name), getattr(shocked, name)
        differs = ~((before == after) | (before.isna() & after.isna())).all(axis=1)
        assert differs.any(), name
        assert set(before.loc[differs, "customer_id"]) <= hit, name
    # And the tables no shock touches are the same objects
    assert shocked.customers is raw.customers and shocked.defaults is raw.defaults


def test_given_an_overdue_shock_then_recent_instalments_of_running_facilities_pay_later(raw):
    # When 100% of the instalments due in the last 3 months are paid 20 days later
    shocked, _ = _shock(raw, overdue={"share": 1.0, "days": 20, "months": 3})
    before, after = raw.repayments, shocked.repayments
    maturity = raw.credit_facilities.set_index("facility_id")["maturity_date"]
    running = (maturity.reindex(before["facility_id"]) > pd.Timestamp(AS_OF)).to_numpy()
    due = before["due_date"]
    window = (due >= pd.Timestamp("2024-03-31")) & (due <= pd.Timestamp(AS_OF))
    eligible = window & running & before["paid_date"].notna()
    moved = eligible & (before["paid_date"] + pd.Timedelta(days=20) <= pd.Timestamp(AS_OF))
    unpaid = eligible & ~moved
    assert moved.any() and unpaid.any()
    # Then paid ones move 20 days, those pushed past as_of are unpaid then (as the cut shows it)
    delta = after.loc[moved, "paid_date"] - before.loc[moved, "paid_date"]
    assert (delta == pd.Timedelta(days=20)).all()
    assert after.loc[unpaid, "paid_date"].isna().all()
    assert (after.loc[unpaid, "amount_paid"] == 0.0).all()
    # And nothing else changes (older instalments, matured facilities, unpaid ones)
    rest = ~eligible
    pd.testing.assert_frame_equal(after[rest.to_numpy()], before[rest.to_numpy()])


def test_given_a_larger_share_then_the_same_instalments_and_more_are_hit(raw):
    draw = instalment_draw(raw.repayments)
    assert ((draw >= 0) & (draw < 1)).all()
    # the draw is fixed by (facility, instalment), not by row order
    shuffled = raw.repayments.sample(frac=1.0, random_state=3)
    np.testing.assert_array_equal(
        instalment_draw(shuffled), pd.Series(draw, index=raw.repayments.index)[shuffled.index]
    )
    small, _ = _shock(raw, overdue={"share": 0.2, "days": 30})
    large, _ = _shock(raw, overdue={"share": 0.6, "days": 30})

    def hit(shocked: RawTables) -> set[tuple[str, int]]:
        changed = shocked.repayments["paid_date"].ne(raw.repayments["paid_date"])
        rows = raw.repayments[changed & raw.repayments["paid_date"].notna()]
        return set(zip(rows["facility_id"], rows["instalment_no"], strict=True))

    assert hit(small) and hit(small) < hit(large)


def test_given_an_inflow_shock_then_only_incoming_amounts_fall(raw):
    shocked, counts = _shock(raw, inflows=0.25)
    before, after = raw.transactions, shocked.transactions
    incoming = before["direction"] == "in"
    assert counts["transactions"] == incoming.sum()
    np.testing.assert_allclose(after.loc[incoming, "amount"], before.loc[incoming, "amount"] * 0.75)
    pd.testing.assert_series_equal(after.loc[~incoming, "amount"], before.loc[~incoming, "amount"])


def test_given_the_harshest_shocks_then_the_raw_contract_still_holds(raw):
    # When every shock is at its bound
    shocked, _ = _shock(
        raw,
        revenue=0.9,
        operating_margin=0.5,
        cash_flow=1.0,
        overdue={"share": 1.0, "days": 365},
        inflows=0.9,
    )
    # Then the shocked tables pass the contract at as_of (nothing dated later, bounds kept)
    report = validate_tables(shocked, AS_OF)
    assert report.ok, report.problems[:3]


SCENARIO = {
    "revenue": 0.2,
    "operating_margin": 0.04,
    "cash_flow": 0.3,
    "overdue": {"share": 0.4, "days": 45, "months": 6},
}


def _features(raw: RawTables, factor: float, **extra: float) -> pd.DataFrame:
    shock = {
        "revenue": SCENARIO["revenue"] * factor,
        "operating_margin": SCENARIO["operating_margin"] * factor,
        "cash_flow": SCENARIO["cash_flow"] * factor,
        "overdue": {"share": 0.4 * factor, "days": int(45 * factor), "months": 6},
        **{k: v * factor for k, v in extra.items()},
    }
    shocked, _ = _shock(raw, **shock)
    return compute_features(shocked, AS_OF).set_index("customer_id")[FEATURE_SPEC.names]


def _assert_never_better(milder: pd.DataFrame, harsher: pd.DataFrame, rtol: float) -> None:
    for feature in FEATURE_SPEC.features:
        a, b = milder[feature.name].to_numpy(), harsher[feature.name].to_numpy()
        # a shock never makes a feature defined or undefined ...
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=feature.name)
        sign = feature.monotone_constraint
        if sign == 0:
            continue
        # ... and moves every feature with a risk direction only the adverse way
        better = sign * (b - a) < -rtol * np.maximum(np.abs(a), 1.0)
        assert not better[~np.isnan(a)].any(), (feature.name, milder.index[better].tolist())


def test_given_harsher_flow_and_overdue_shocks_then_no_feature_moves_the_favourable_way(raw):
    # Given the same shocks at 0 (base), half, full and double strength
    levels = [_features(raw, f) for f in (0.0, 0.5, 1.0, 2.0)]
    # Then each level is at least as risky as the one before, feature by feature
    for milder, harsher in itertools.pairwise(levels):
        _assert_never_better(milder, harsher, rtol=0.0)
    # And features without a risk direction do not move at all
    free = [f.name for f in FEATURE_SPEC.features if f.monotone_constraint == 0]
    pd.testing.assert_frame_equal(levels[0][free], levels[-1][free])
    # And the shock bites: debt ratio and overdue rate up, margins down on average
    base, full = levels[0], levels[2]
    assert full["debt_ratio"].mean() > base["debt_ratio"].mean()
    assert full["overdue_rate_12m"].mean() > base["overdue_rate_12m"].mean()
    assert full["net_margin"].mean() < base["net_margin"].mean()


def test_given_an_inflow_shock_then_transaction_amounts_move_and_ratios_only_worsen(raw):
    base, shocked = _features(raw, 0.0, inflows=0.3), _features(raw, 1.0, inflows=0.3)
    # Then the directed features still only worsen; the scale-free ones (trend, CV, HHI) stay
    # put up to the rounding of the shocked amounts to fen (relative 1e-7 on small amounts) ...
    _assert_never_better(base, shocked, rtol=1e-6)
    # ... while the inflow amounts, which have no monotone constraint, fall
    assert (shocked["inflow_12m"] <= base["inflow_12m"]).all()
    assert (shocked["inflow_12m"] < base["inflow_12m"]).any()
