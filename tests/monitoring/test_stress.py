"""Stress tests on the sample portfolio with a real trained bundle (see conftest.py)."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.covenants import CovenantConfig
from monitoring.scenario import Scenario, load_scenario
from monitoring.stress import (
    IMPROVEMENT_CAUSES,
    PD_TOLERANCE,
    StressError,
    StressResult,
    contract_covenant_check,
    stress,
)
from monitoring.stress_report import to_json, write_stress_report
from rating.portfolio import as_model

from .conftest import END

AS_OF = END


def scaled(base: Scenario, factor: float, *, inflows: bool = True) -> Scenario:
    """The scenario with every shock multiplied by ``factor`` (inflows dropped if asked)."""
    shocks = []
    for shock in base.shocks:
        update: dict[str, object] = {
            "revenue": shock.revenue * factor,
            "operating_margin": shock.operating_margin * factor,
            "cash_flow": min(1.0, shock.cash_flow * factor),
            "inflows": shock.inflows * factor if inflows else 0.0,
        }
        if shock.overdue is not None:
            update["overdue"] = shock.overdue.model_copy(
                update={
                    "share": min(1.0, shock.overdue.share * factor),
                    "days": int(shock.overdue.days * factor),
                }
            )
        shocks.append(shock.model_copy(update=update))
    return base.model_copy(update={"name": f"{base.name}-x{factor}", "shocks": tuple(shocks)})


@pytest.fixture(scope="module")
def model(scenario):
    return as_model(scenario.bundle_dir)


@pytest.fixture(scope="module")
def recession(scenario, model) -> StressResult:
    return stress(
        scenario.base,
        load_scenario("recession"),
        model,
        AS_OF,
        covenants=contract_covenant_check(CovenantConfig(), AS_OF),
    )


@pytest.fixture(scope="module")
def ladder(scenario, model) -> list[StressResult]:
    """The recession without the inflow shock at half and full strength."""
    recession = load_scenario("recession")
    return [
        stress(scenario.base, scaled(recession, f, inflows=False), model, AS_OF) for f in (0.5, 1.0)
    ]


def test_given_harsher_scenarios_then_no_customer_is_rated_better(ladder):
    # Given base, a milder and a harsher scenario moving only features with a risk direction
    milder, harsher = (r.customers.set_index("customer_id") for r in ladder)
    performing = ~milder["in_default"]
    assert milder.index.equals(harsher.index)
    # Then per customer: PD, grade and tier under the harsher >= milder >= base
    for low, high in (
        (milder["base_pd"], milder["stressed_pd"]),
        (milder["stressed_pd"], harsher["stressed_pd"]),
    ):
        better = (high < low * (1 - PD_TOLERANCE)) & performing
        assert not better.any(), better[better].index.tolist()
    assert (milder["grade_notches"] >= 0).all() and (milder["tier_notches"] >= 0).all()
    assert (harsher["grade_notches"] >= milder["grade_notches"]).all()
    assert (harsher["tier_notches"] >= milder["tier_notches"]).all()
    assert ladder[0].improved == ladder[1].improved == 0
    # And the property is not vacuous: the harsher scenario moves many customers further
    assert (harsher["grade_notches"] > milder["grade_notches"]).sum() > 50
    expected = [r.overall()["stressed_expected_defaults"] for r in ladder]
    assert ladder[0].overall()["base_expected_defaults"] < expected[0] < expected[1]


def test_given_hard_rules_and_defaults_then_stress_keeps_restricted_and_default_grade(recession):
    customers = recession.customers
    # Then hard-rule customers stay in the restricted tier whatever their PD
    flagged = customers[customers["hard_rules"] != ""]
    assert len(flagged) > 0
    assert (flagged["base_tier"] == "restricted").all()
    assert (flagged["stressed_tier"] == "restricted").all()
    # And customers in default keep the default grade and count apart from expected defaults
    default = customers[customers["in_default"]]
    assert len(default) > 0
    assert (default["base_grade"] == "D").all() and (default["stressed_grade"] == "D").all()
    overall = recession.overall()
    performing = customers[~customers["in_default"]]
    assert overall["performing"] == len(performing)
    assert overall["base_expected_defaults"] == pytest.approx(performing["base_pd"].sum())
    assert overall["stressed_expected_defaults"] == pytest.approx(performing["stressed_pd"].sum())


def test_given_a_result_then_segments_and_matrices_add_up(recession):
    segments = recession.segments
    overall = recession.overall()
    assert list(segments["dimension"].unique()) == ["portfolio", "industry", "region"]
    for dimension in ("industry", "region"):
        part = segments[segments["dimension"] == dimension]
        for column in ("customers", "performing", "grade_downgrades", "stressed_breaches"):
            assert part[column].sum() == overall[column], (dimension, column)
        assert part["stressed_expected_defaults"].sum() == pytest.approx(
            overall["stressed_expected_defaults"]
        )
    n = len(recession.customers)
    assert recession.grade_matrix.counts.to_numpy().sum() == n
    assert recession.tier_matrix.counts.to_numpy().sum() == n
    assert recession.tier_matrix.downgrades == overall["tier_downgrades"]
    assert recession.grade_matrix.downgrades == overall["grade_downgrades"]


def test_given_inflow_shocks_then_any_improvement_is_explained_never_a_favourable_feature(
    recession,
):
    customers = recession.customers
    causes = set(customers.loc[customers["improved"], "improved_because"])
    # Then every improved customer names a cause, and no shock moved a feature the good way
    assert causes <= set(IMPROVEMENT_CAUSES) - {"favourable_feature"}
    assert (customers.loc[~customers["improved"], "improved_because"] == "").all()
    if recession.improved:
        assert any("rated better under stress" in n for n in recession.notes)


def test_given_covenants_then_stress_breaches_at_least_base_per_customer(recession):
    customers = recession.customers
    base, stressed = customers["base_breach"].astype(bool), customers["stressed_breach"]
    # Then nobody who breached at base is cured by a downturn, and more breach overall
    assert (stressed.astype(bool) >= base).all()
    assert stressed.sum() > base.sum()


def test_given_contracts_then_the_check_uses_recorded_terms_else_the_tier_template():
    day = date(2024, 12, 31)
    terms = pd.DataFrame(
        {
            "customer_id": ["B"],
            "covenant": ["max_debt_ratio"],
            "threshold": [0.4],
            "effective_date": pd.to_datetime(["2024-01-01"]),
            "expiry_date": pd.to_datetime([None]),
        }
    )
    check = contract_covenant_check(CovenantConfig(), day, terms)
    frame = pd.DataFrame(
        {
            "customer_id": list("ABCDE"),
            "tier": ["medium", "medium", "high", "restricted", "low"],
            "debt_ratio": [0.95, 0.5, 0.5, np.nan, 2.0],
            "interest_coverage": [5.0, 5.0, 0.4, np.nan, 0.0],
            "current_ratio": [1.0, 1.0, 1.0, 0.7, 0.1],
            "months_since_period_end": [1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    # Then: A above medium's template max debt ratio; B's own contract (0.4) is stricter than
    # its tier's; C below high's coverage; D below restricted's current ratio (undefined
    # ratios breach nothing); E: low carries no ratio covenant
    assert check(frame).tolist() == [True, True, True, True, False]


def test_given_a_sector_scenario_then_customers_outside_keep_their_rating(scenario, model):
    result = stress(scenario.base, load_scenario("sector_downturn"), model, AS_OF)
    customers = result.customers
    hit = customers["industry"].isin(["real_estate", "construction"]) & (
        customers["region"] == "east"
    )
    # Then exactly the segment is shocked, and everyone else is rated exactly as at base
    assert customers["shocked"].equals(hit) and hit.any()
    outside = customers[~hit]
    assert (outside["stressed_pd"] == outside["base_pd"]).all()
    assert (outside["grade_notches"] == 0).all()
    # And the segment's expected defaults rise
    assert (customers.loc[hit, "stressed_pd"] >= customers.loc[hit, "base_pd"]).all()
    assert "no covenant check given: covenant breaches not counted" in result.notes
    assert customers["base_breach"].isna().all()


def test_given_a_date_before_any_customer_then_stress_error(scenario, model):
    with pytest.raises(StressError, match="no customer was onboarded by as_of 2000-01-01"):
        stress(scenario.base, load_scenario("recession"), model, date(2000, 1, 1))


def test_given_a_result_when_written_then_html_json_and_csvs(recession, tmp_path):
    paths = write_stress_report(recession, tmp_path / "report")
    # Then every file is there and nothing temporary is left behind
    assert {p.name for p in (tmp_path / "report").iterdir()} == {p.name for p in paths.values()}
    document = json.loads(paths["json"].read_text())
    assert document == json.loads(json.dumps(to_json(recession)))
    summary = document["summary"]
    assert summary["scenario"] == "recession" and summary["as_of"] == AS_OF.isoformat()
    assert summary["stressed_expected_defaults"] > summary["base_expected_defaults"]
    assert summary["covenants_checked"] is True
    assert summary["stressed_covenant_breaches"] >= summary["base_covenant_breaches"]
    assert len(document["segments"]) == len(recession.segments)
    html = paths["html"].read_text()
    for part in (
        "riskgrade stress test: recession",
        "Expected defaults by segment",
        "Migration, base to stressed",
        "Customers that moved",
        "Customers rated better under stress",
        "manufacturing",
    ):
        assert part in html, part
    assert html.count("data:image/png;base64,") == 3
    customers = pd.read_csv(paths["customers"])
    assert len(customers) == len(recession.customers)
    tiers = pd.read_csv(paths["tier_migration"], index_col="base")
    assert list(tiers.index) == ["low", "medium", "high", "restricted"]
    assert tiers.to_numpy().sum() == len(recession.customers)
