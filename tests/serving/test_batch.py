from __future__ import annotations

import numpy as np
import pytest

from rating.model import RatingModel
from serving.batch import BatchError, request_example, score_portfolio
from serving.engine import Engine
from serving.schemas import ScoreRequest


def test_given_portfolio_when_scored_in_chunks_then_chunking_changes_nothing(
    portfolio, as_of, bundle
):
    calls: list[tuple[int, int]] = []
    small = score_portfolio(
        portfolio, as_of, bundle, chunk_size=5, progress=lambda d, t: calls.append((d, t))
    )
    whole = score_portfolio(portfolio, as_of, bundle, chunk_size=1000)
    assert len(small) == len(portfolio.customers) == 12
    np.testing.assert_allclose(small["pd"], whole["pd"], rtol=0, atol=1e-12)
    assert small["customer_id"].is_monotonic_increasing
    assert calls == [(5, 12), (10, 12), (12, 12)]
    assert set(small["tier"]) <= {"low", "medium", "high", "restricted"}
    assert (small[["reason_1_contribution"]].dropna() > 0).all().all()


def test_given_portfolio_when_scored_then_batch_equals_single_request(portfolio, as_of, bundle):
    table = score_portfolio(portfolio, as_of, bundle, chunk_size=4).set_index("customer_id")
    engine = Engine(RatingModel(bundle))
    for cid in ("C00000", "C00005", "C00011"):
        request = ScoreRequest.model_validate(request_example(portfolio, cid, as_of))
        single = engine.decide([request], "test")[0].response
        assert abs(single["pd"] - table.loc[cid, "pd"]) <= 1e-12
        assert (
            single["grade"] == table.loc[cid, "grade"] and single["tier"] == table.loc[cid, "tier"]
        )
        assert [r["code"] for r in single["reasons"]] == [
            table.loc[cid, f"reason_{k}"]
            for k in range(1, 5)
            if isinstance(table.loc[cid, f"reason_{k}"], str)
        ]


def test_given_hard_rule_customer_when_scored_then_restricted(portfolio, as_of, bundle):
    table = score_portfolio(portfolio, as_of, bundle)
    flagged = portfolio.customers[
        portfolio.customers[["sanctions_hit", "legal_enforcement", "fraud"]].any(axis=1)
    ]["customer_id"]
    rows = table[table["customer_id"].isin(flagged)]
    assert (rows["tier"] == "restricted").all()
    assert (rows["hard_rules"] != "").all()


def test_given_bad_inputs_when_batch_or_example_then_clear_errors(portfolio, as_of, bundle):
    with pytest.raises(BatchError, match="chunk_size"):
        score_portfolio(portfolio, as_of, bundle, chunk_size=0)
    with pytest.raises(BatchError, match="not in the raw tables"):
        request_example(portfolio, "nobody", as_of)


def test_given_a_customer_in_default_when_the_portfolio_is_rated_then_grade_d_restricted(
    portfolio, bundle, as_of
):
    import pandas as pd

    from features.io import RawTables

    # Given one customer with a default recorded before the rating date
    defaulted = portfolio.customers["customer_id"].iloc[0]
    defaults = pd.DataFrame(
        {
            "customer_id": [defaulted],
            "default_date": [pd.Timestamp(as_of) - pd.Timedelta(days=30)],
            "default_type": ["dpd90"],
        }
    )
    raw = RawTables(**{**dict(portfolio.items()), "defaults": defaults})
    # When the portfolio is rated
    table = score_portfolio(raw, as_of, bundle).set_index("customer_id")
    # Then that customer carries the default grade and the restricted tier, the others not
    assert table.loc[defaulted, "grade"] == "D"
    assert table.loc[defaulted, "tier"] == "restricted"
    assert bool(table.loc[defaulted, "in_default"])
    assert not table.drop(index=defaulted)["in_default"].any()
