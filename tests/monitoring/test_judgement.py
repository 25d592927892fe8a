"""Monitoring of human judgement: discrimination with intervals, activity, report sections."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.judgement import cut_judgement
from features.synthetic import GeneratorConfig, generate_with_judgement
from monitoring.config import JudgementMonitoringConfig
from monitoring.judgement import discrimination, judge_ratings, monitor_judgement
from monitoring.report import to_json, write_report
from monitoring.run import run_monitoring
from rating.config import RatingConfig

from .conftest import AFTER, CUSTOMERS, END, LATER

RATING = RatingConfig()


def test_discrimination_of_an_informative_final_grade_beats_the_model() -> None:
    # given outcomes, a model grade that is noise and a final grade that follows the outcome
    rng = np.random.default_rng(1)
    y = rng.random(2000) < 0.1
    model = rng.integers(0, 9, 2000)
    final = np.where(y, rng.integers(4, 9, 2000), rng.integers(0, 6, 2000))
    # when measured
    table = discrimination(y, model, final, JudgementMonitoringConfig(bootstrap=200)).set_index(
        "grade"
    )
    # then the final grade's AUC is higher, the CI of the difference is above 0
    assert table.loc["final", "auc"] > table.loc["model", "auc"] + 0.2
    assert table.loc["difference", "ci_low"] > 0
    assert (
        table.loc["model", "ci_low"] <= table.loc["model", "auc"] <= table.loc["model", "ci_high"]
    )
    assert table.loc["final", "accuracy_ratio"] == pytest.approx(2 * table.loc["final", "auc"] - 1)
    # and it is deterministic (seeded)
    again = discrimination(y, model, final, JudgementMonitoringConfig(bootstrap=200))
    assert again.set_index("grade").equals(table)


def test_judged_ratings_apply_assessments_and_overrides_valid_at_the_date() -> None:
    raw, _, judgement = generate_with_judgement(
        GeneratorConfig(customers=200, seed=3, end=date(2023, 12, 31)), RATING.generator_spec()
    )
    approved = judgement.overrides[judgement.overrides["status"] == "approved"].iloc[0]
    day = pd.Timestamp(approved["decided_on"]).date()
    ratings = pd.DataFrame(
        {
            "customer_id": raw.customers["customer_id"],
            "pd": 0.03,
            "grade": "6",
            "in_default": False,
            "hard_rules": "",
        }
    )
    judged = judge_ratings(
        ratings, judgement, day, RATING.scale, RATING.policy, RATING.judgement
    ).set_index("customer_id")
    row = judged.loc[approved["customer_id"]]
    assert row["final_grade"] == approved["proposed_grade"]
    assert row["override_id"] is not None
    assert judged["assessment_id"].notna().any()
    assert set(judged["qualitative_notches"]) <= set(range(-2, 3))
    # the day before the decision the override is not in force
    before = judge_ratings(
        ratings,
        cut_judgement(judgement, day),
        date.fromordinal(day.toordinal() - 1),
        RATING.scale,
        RATING.policy,
        RATING.judgement,
    ).set_index("customer_id")
    assert before.loc[approved["customer_id"], "override_id"] != approved["override_id"]


def test_monitoring_run_reports_human_judgement(scenario, tmp_path) -> None:
    # given the scenario's portfolio with its judgement tables, rated at two dates a year apart
    _, _, judgement = generate_with_judgement(
        GeneratorConfig(customers=CUSTOMERS, seed=7, end=END), RATING.generator_spec()
    )
    store = tmp_path / "m.duckdb"
    common = {"judgement": judgement, "judgement_config": RATING.judgement}
    run_monitoring(scenario.base, AFTER, scenario.bundle_dir, store, **common)
    run = run_monitoring(scenario.base, LATER, scenario.bundle_dir, store, **common)
    # then the findings hold activity and the outcomes of the run a year before
    found = run.judgement
    assert found is not None and found.outcomes_as_of == AFTER
    assert set(found.discrimination["grade"]) == {"model", "final", "difference"}
    assert found.by_analyst["analyst"].str.startswith("AN").all()
    assert found.status["proposals"] == sum(
        found.status[s] for s in ("proposed", "approved", "rejected", "expired", "lapsed")
    )
    assert found.outcomes["customers"].sum() == found.discrimination["customers"].iloc[0]
    # and the report has its section, plot, JSON and CSVs
    paths = write_report(run, tmp_path / "report")
    page = paths["html"].read_text()
    assert "<h2>Human judgement</h2>" in page and "judgement discrimination" in page
    document = json.loads(paths["json"].read_text())
    assert document["human_judgement"]["discrimination"][2]["grade"] == "difference"
    assert "judgement_auc_gain" in to_json(run)["summary"]
    assert paths["judgement_by_analyst"].is_file()
    # and without judgement tables the section says so and still counts insufficient data
    plain = run_monitoring(scenario.base, LATER, scenario.bundle_dir, tmp_path / "p.duckdb")
    assert plain.judgement is None
    assert to_json(plain)["summary"]["insufficient_data"] == plain.insufficient_data
    assert "no assessments or overrides" in write_report(plain, tmp_path / "r2")["html"].read_text()


def test_monitor_judgement_without_a_past_run_has_no_outcomes() -> None:
    raw, _, judgement = generate_with_judgement(
        GeneratorConfig(customers=100, seed=4, end=date(2022, 12, 31)), RATING.generator_spec()
    )
    ratings = pd.DataFrame(
        {
            "customer_id": raw.customers["customer_id"],
            "pd": 0.01,
            "grade": "5",
            "in_default": False,
            "hard_rules": "",
        }
    )
    found = monitor_judgement(
        ratings, date(2022, 12, 31), judgement, RATING.scale, RATING.policy, RATING.judgement
    )
    assert found.outcomes_as_of is None and found.discrimination.empty
    assert found.by_grade["customers"].sum() == len(ratings)
