"""The optional judgement tables: generated from the latent health, contracts, point in time."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.judgement import cut_judgement, has_judgement, load_judgement, validate_judgement
from features.schema import TABLES
from features.synthetic import GeneratorConfig, generate, generate_tables, generate_with_judgement
from features.synthetic_judgement import BIASED_ANALYST
from features.validate import RawValidationError
from rating.config import RatingConfig
from rating.judgement import QualitativeConfig, score_assessment

CONFIG = GeneratorConfig(customers=300, seed=5, end=date(2023, 12, 31))
SPEC = RatingConfig().generator_spec()


@pytest.fixture(scope="module")
def generated() -> tuple:
    return generate_with_judgement(CONFIG, SPEC)


def test_other_tables_are_byte_identical_with_or_without_judgement(tmp_path: Path) -> None:
    # given the same config written without and (twice) with judgement
    generate(CONFIG, tmp_path / "plain")
    generate(CONFIG, tmp_path / "a", judgement=SPEC)
    generate(CONFIG, tmp_path / "b", judgement=SPEC)
    # then the six contract tables are byte-identical, and so are the judgement tables per seed
    for table in TABLES:
        plain = (tmp_path / "plain" / f"{table}.parquet").read_bytes()
        assert plain == (tmp_path / "a" / f"{table}.parquet").read_bytes(), table
    for table in ("assessments", "overrides"):
        first = (tmp_path / "a" / f"{table}.parquet").read_bytes()
        assert first == (tmp_path / "b" / f"{table}.parquet").read_bytes(), table
    assert not has_judgement(tmp_path / "plain")
    assert load_judgement(tmp_path / "plain") is None
    loaded = load_judgement(tmp_path / "a", date(2023, 12, 31))
    assert loaded is not None and len(loaded.overrides) > 0


def test_generated_tables_keep_the_contract_and_the_questionnaire(generated: tuple) -> None:
    raw, _, judgement = generated
    in_memory, _ = generate_tables(CONFIG)
    pd.testing.assert_frame_equal(raw.customers, in_memory.customers)
    report, tables = validate_judgement(dict(judgement.items()), raw.customers["customer_id"])
    assert report.ok, report.summary()
    # every assessment scores under the configured questionnaire
    questions = QualitativeConfig()
    for _, group in list(tables.assessments.groupby("assessment_id"))[:50]:
        score_assessment(dict(zip(group["factor"], group["answer"], strict=True)), questions)
    overrides = tables.overrides
    assert set(overrides["status"]) <= {"proposed", "approved", "rejected", "expired"}
    assert (overrides["approver"].fillna("") != overrides["proposer"]).all()
    # the biased analyst mostly upgrades; the skilled ones go both ways
    biased = overrides[overrides["proposer"] == BIASED_ANALYST]
    names = RatingConfig().scale.names
    up = overrides["base_grade"].map(names.index) > overrides["proposed_grade"].map(names.index)
    assert up[biased.index].mean() > 0.8
    assert 0.2 < up[overrides["proposer"] != BIASED_ANALYST].mean() < 0.8


def test_bad_judgement_table_is_reported_with_every_problem(generated: tuple) -> None:
    raw, _, judgement = generated
    overrides = judgement.overrides.copy()
    overrides.loc[0, "approver"] = overrides.loc[0, "proposer"]
    overrides.loc[1, "customer_id"] = "C_UNKNOWN"
    overrides.loc[2, "status"] = "maybe"
    report, _ = validate_judgement({"overrides": overrides}, raw.customers["customer_id"])
    text = report.summary()
    assert "four eyes" in text
    assert "customer_id known in customers" in text
    assert "overrides.status" in text
    with pytest.raises(RawValidationError, match="four eyes"):
        raise RawValidationError(report)


def test_point_in_time_read_undoes_later_decisions(generated: tuple) -> None:
    _, _, judgement = generated
    overrides = judgement.overrides
    decided = overrides.dropna(subset=["decided_on"]).iloc[0]
    day = (pd.Timestamp(decided["proposed_on"])).date()
    cut = cut_judgement(judgement, day)
    row = cut.overrides.set_index("override_id").loc[decided["override_id"]]
    if pd.Timestamp(decided["decided_on"]) > pd.Timestamp(day):
        assert row["status"] == "proposed" and pd.isna(row["approver"])
    assert (pd.to_datetime(cut.assessments["assessed_on"]) <= pd.Timestamp(day)).all()
    assert (pd.to_datetime(cut.overrides["proposed_on"]) <= pd.Timestamp(day)).all()
