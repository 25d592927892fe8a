"""``score_to_file`` rates a raw folder range by range: the same rows as the whole portfolio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from audit import AuditConfig, SqlAuditStore
from features.io import RawTables, write_raw
from features.validate import RawValidationError, load_raw_at
from management import Actor
from management.judgement import (
    AssessmentInput,
    OverrideInput,
    RatingRules,
    decide_override,
    propose_override,
    record_assessment,
)
from management.portfolio import judge_scores
from rating.config import default_rating_config
from serving.batch import score_portfolio, score_to_file
from tests.management.conftest import scored

AT = datetime.now(UTC) - timedelta(hours=1)
WEAK = {
    "management": "weak",
    "market_position": "poor",
    "governance": "weak",
    "transparency": "poor",
    "collateral": "weak",
    "due_diligence": "material",
}


@pytest.fixture
def folder(tmp_path: Path, portfolio: RawTables) -> Path:
    """The serving portfolio plus C09999, onboarded with no statement, facility or payment."""
    customers = portfolio.customers
    bare = customers.iloc[[0]].assign(customer_id="C09999")
    tables = {**dict(portfolio.items()), "customers": pd.concat([customers, bare])}
    write_raw(RawTables(**tables), tmp_path / "raw")
    return tmp_path


def _judgement(folder: Path, bundle, as_of) -> SqlAuditStore:
    """An approved override on C00002 and a weak assessment of C00004, in a real audit store."""
    config = default_rating_config()
    rules = RatingRules(config.scale, config.policy, config.judgement)
    store = SqlAuditStore(AuditConfig(path=folder / "audit.db"))
    model = _whole(folder, bundle, as_of, None, folder / "model.parquet").set_index("customer_id")
    row = model.loc["C00002"]
    store.append(scored("C00002", as_of, row["grade"], row["tier"], pd=float(row["pd"])))
    ann, bob = Actor(name="ann", role="analyst"), Actor(name="bob", role="approver")
    names = config.scale.names
    i = names.index(row["grade"])
    grade = names[i + 1] if i + 2 < len(names) else names[i - 1]  # one notch, never default
    item = OverrideInput("C00002", as_of, grade, "OR01", "recent event not in the data")
    proposed = propose_override(store, rules, ann, item, at=AT)
    decide_override(store, proposed.proposal_id, bob, approve=True, comment="confirmed")
    record_assessment(store, rules, ann, AssessmentInput("C00004", as_of, WEAK), at=AT)
    return store


def _whole(folder: Path, bundle, as_of, store: SqlAuditStore | None, out: Path) -> pd.DataFrame:
    """Today's whole-portfolio path: read everything, score, judge, write one frame."""
    config = default_rating_config()
    tables = load_raw_at(folder / "raw", as_of).tables
    rules = RatingRules(bundle.scale, bundle.policy, config.judgement, config.lifecycle)
    rated = judge_scores(score_portfolio(tables, as_of, bundle), tables, store, rules, as_of)
    rated.to_parquet(out, index=False)
    return pd.read_parquet(out)


@pytest.mark.parametrize("size", [1, 5, 13])
def test_given_judgement_when_scored_in_ranges_then_rows_equal_the_whole_portfolio(
    folder: Path, bundle, as_of, size: int
) -> None:
    # Given people's judgement in the audit store and today's whole-portfolio ratings
    config = default_rating_config()
    store = _judgement(folder, bundle, as_of)
    try:
        expected = _whole(folder, bundle, as_of, store, folder / "whole.parquet")
        # When the folder is scored range by range
        out = folder / "out" / "ratings.parquet"
        scored = score_to_file(
            folder / "raw",
            as_of,
            bundle,
            out,
            store=store,
            judgement=config.judgement,
            lifecycle=config.lifecycle,
            chunk_size=size,
        )
    finally:
        store.close()
    # Then the file holds the same rows, values and types (a column null on every row keeps
    # its declared string type, where one whole frame gave it no type), and the counts add up
    got = pd.read_parquet(out)
    untyped = [c for c in expected.columns if expected[c].dtype == object]
    assert untyped == ["default_type"] and expected["default_type"].isna().all()
    assert got["default_type"].dtype == got["customer_id"].dtype
    expected = expected.astype({"default_type": got["customer_id"].dtype})
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.set_index("customer_id").loc["C00002", "override_id"]
    assert got.set_index("customer_id").loc["C00004", "assessment_id"]
    assert scored.rows == len(expected) == 13
    assert int(scored.by_tier["customers"].sum()) == 13
    assert scored.by_tier.loc["restricted", "in_default"] == int(expected["in_default"].sum())
    assert sorted(p.name for p in out.parent.iterdir()) == ["ratings.parquet"]


def test_given_csv_when_scored_in_ranges_then_same_bytes_as_the_whole_portfolio(
    folder: Path, bundle, as_of
) -> None:
    config = default_rating_config()
    tables = load_raw_at(folder / "raw", as_of).tables
    rules = RatingRules(bundle.scale, bundle.policy, config.judgement, config.lifecycle)
    whole = judge_scores(score_portfolio(tables, as_of, bundle), tables, None, rules, as_of)
    whole.to_csv(folder / "whole.csv", index=False)
    score_to_file(
        folder / "raw", as_of, bundle, folder / "r.csv", judgement=config.judgement, chunk_size=4
    )
    assert (folder / "r.csv").read_bytes() == (folder / "whole.csv").read_bytes()


def test_given_a_broken_record_when_scored_then_nothing_is_written(
    folder: Path, bundle, as_of, portfolio: RawTables
) -> None:
    # Given a negative transaction amount of the last customer
    txns = portfolio.transactions.copy()
    txns.loc[txns.index[-1], "amount"] = -1.0
    write_raw(RawTables(**{**dict(portfolio.items()), "transactions": txns}), folder / "bad")
    out = folder / "out.parquet"
    # When scored in ranges of one customer, then validation fails and no file appears
    with pytest.raises(RawValidationError, match=r"transactions\.amount"):
        score_to_file(
            folder / "bad",
            as_of,
            bundle,
            out,
            judgement=default_rating_config().judgement,
            chunk_size=1,
        )
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == []
