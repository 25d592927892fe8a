"""The optional record tables: reviews and contract terms, generated, validated, point in time."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.io import write_raw
from features.judgement import load_judgement
from features.records import cut_records, load_records, validate_records
from features.schema import TABLES
from features.synthetic import GeneratorConfig, generate, generate_with_records
from features.validate import RawValidationError
from rating.config import RatingConfig

CONFIG = GeneratorConfig(customers=300, seed=5, end=date(2023, 12, 31))
RATING = RatingConfig()
JUDGEMENT = RATING.generator_spec()
RECORDS = RATING.records_spec()


@pytest.fixture(scope="module")
def generated() -> tuple:
    return generate_with_records(CONFIG, JUDGEMENT, RECORDS)


def test_given_records_when_generated_then_other_tables_unchanged_and_seeded(tmp_path: Path):
    # Given the same config written with judgement, and (twice) with records too
    generate(CONFIG, tmp_path / "plain", judgement=JUDGEMENT)
    generate(CONFIG, tmp_path / "a", judgement=JUDGEMENT, records=RECORDS)
    generate(CONFIG, tmp_path / "b", judgement=JUDGEMENT, records=RECORDS)
    # Then the contract and judgement tables are byte-identical, the records the same per seed
    for table in (*TABLES, "assessments", "overrides"):
        plain = (tmp_path / "plain" / f"{table}.parquet").read_bytes()
        assert plain == (tmp_path / "a" / f"{table}.parquet").read_bytes(), table
    for table in ("reviews", "contract_terms"):
        first = (tmp_path / "a" / f"{table}.parquet").read_bytes()
        assert first == (tmp_path / "b" / f"{table}.parquet").read_bytes(), table
    # And a folder without them loads as empty tables
    empty = load_records(tmp_path / "plain")
    assert empty.reviews.empty and empty.contract_terms.empty
    loaded = load_records(tmp_path / "a", date(2023, 6, 30))
    assert len(loaded.reviews) > 0 and len(loaded.contract_terms) > 0


def test_given_generated_records_then_contract_holds_and_reviews_follow_the_schedule(generated):
    raw, _, _, records = generated
    report, tables = validate_records(dict(records.items()), raw.customers["customer_id"])
    assert report.ok, report.summary()
    reviews = tables.reviews.sort_values(["customer_id", "review_date"])
    # Most reviews happen by the date the previous one set; a few are late
    due = reviews.groupby("customer_id")["next_review_date"].shift()
    late = (reviews["review_date"] - due).dt.days
    share_late = float((late.dropna() > 7).mean())
    assert 0.0 < share_late < 0.1
    # The review's next date follows its tier's frequency
    frequencies = {t.policy.review_frequency_days for t in RATING.policy.tiers}
    gaps = set((reviews["next_review_date"] - reviews["review_date"]).dt.days)
    assert gaps <= frequencies
    # Part of the portfolio has covenants from its tier template, effective at a review
    terms = tables.contract_terms
    share = terms["customer_id"].nunique() / raw.customers["customer_id"].nunique()
    assert 0.4 < share < 0.8
    first = reviews.groupby("customer_id")["review_date"].min()
    assert (
        terms["effective_date"].to_numpy() == first.reindex(terms["customer_id"]).to_numpy()
    ).all()
    # A contract never asks for reports more often than the customer files statements
    cycle = raw.financial_statements.groupby("customer_id")["period_months"].max()
    reporting = terms[terms["covenant"] == "reporting_months"]
    filed = cycle.reindex(reporting["customer_id"]).fillna(12).to_numpy()
    assert (reporting["threshold"].to_numpy() >= filed).all()


def test_given_an_as_of_when_cut_then_later_records_are_unknown(generated):
    _, _, _, records = generated
    cut = cut_records(records, date(2021, 6, 30))
    assert (cut.reviews["review_date"] <= pd.Timestamp("2021-06-30")).all()
    assert (cut.contract_terms["effective_date"] <= pd.Timestamp("2021-06-30")).all()
    assert 0 < len(cut.reviews) < len(records.reviews)


def test_given_bad_records_when_loaded_then_every_problem_is_named(generated, tmp_path):
    raw, _, _, records = generated
    write_raw(raw, tmp_path)
    reviews = records.reviews.head(3).copy()
    reviews.loc[0, "outcome"] = "great"
    reviews.loc[1, "next_review_date"] = reviews.loc[1, "review_date"]
    reviews.loc[2, "customer_id"] = "nobody"
    reviews.to_parquet(tmp_path / "reviews.parquet")
    terms = records.contract_terms.head(2).copy()
    terms.loc[0, "covenant"] = "min_collateral_coverage"
    terms.to_parquet(tmp_path / "contract_terms.parquet")
    with pytest.raises(RawValidationError) as caught:
        load_records(tmp_path, None, raw.customers["customer_id"])
    text = caught.value.report.summary()
    for expected in ("outcome", "next_review_date > review_date", "customer_id known", "covenant"):
        assert expected in text, text


def test_given_later_customers_when_loaded_at_an_earlier_date_then_their_records_wait(tmp_path):
    # Given a folder whose records include customers onboarded after the as-of date
    generate(CONFIG, tmp_path, judgement=JUDGEMENT, records=RECORDS)
    as_of = date(2021, 6, 30)
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    known = customers.loc[customers["onboarding_date"] <= pd.Timestamp(as_of), "customer_id"]
    assert len(known) < len(customers)
    # When loaded at that date with the customers known then
    records = load_records(tmp_path, as_of, known)
    judgement = load_judgement(tmp_path, as_of, known)
    # Then only records of known customers, known at the date, are kept: no false problem
    assert set(records.reviews["customer_id"]) <= set(known)
    assert judgement is not None and set(judgement.assessments["customer_id"]) <= set(known)
