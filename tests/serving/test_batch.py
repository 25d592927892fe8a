from __future__ import annotations

import numpy as np
import pytest

from features.catalog import BATCH_FEATURES_FROM
from rating.model import RatingModel
from serving.batch import BatchError, request_example, score_portfolio
from serving.engine import (
    BATCH_THREADS_FROM,
    Engine,
    ScoringError,
    ScoringJob,
)
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


def _requests(portfolio, as_of, ids):
    return [ScoreRequest.model_validate(request_example(portfolio, c, as_of)) for c in ids]


def test_given_calls_decided_together_then_each_equals_its_call_alone(portfolio, as_of, bundle):
    # Given six single-customer calls and one two-customer call, decided as one batch
    # (enough customers share the as_of for the batched feature query)
    engine = Engine(RatingModel(bundle))
    ids = [f"C{i:05d}" for i in range(8)]
    requests = _requests(portfolio, as_of, ids)
    jobs = [ScoringJob([r], "test") for r in requests[:6]] + [ScoringJob(requests[6:], "test")]
    assert len(requests) >= BATCH_FEATURES_FROM
    together = engine.decide_many(jobs)
    # When each call is decided alone (the one-customer feature path)
    for job, outcome in zip(jobs, together, strict=True):
        alone = engine.decide(job.requests, "test")
        # Then features, PD, grade, tier and reasons are identical, bit for bit
        for a, b in zip(alone, outcome, strict=True):
            assert a.record.payload["features"] == b.record.payload["features"]
            assert a.response["pd"] == b.response["pd"]
            assert a.response["grade"] == b.response["grade"]
            assert a.response["reasons"] == b.response["reasons"]


def test_given_two_requests_reusing_facility_ids_when_batched_then_not_mixed(
    portfolio, as_of, bundle
):
    # Given five customers whose facilities all carry the same ids (ids are request-local)
    engine = Engine(RatingModel(bundle))
    bodies = [request_example(portfolio, f"C{i:05d}", as_of) for i in range(5)]
    for body in bodies:
        for n, facility in enumerate(body["facilities"]):
            facility["facility_id"] = f"F{n}"
    requests = [ScoreRequest.model_validate(b) for b in bodies]
    # When scored in one batch, then each equals the customer scored alone
    batched = engine.features(requests).x
    alone = np.vstack([engine.features([r]).x for r in requests])
    np.testing.assert_array_equal(batched, alone)


def test_given_one_unscorable_call_in_a_batch_then_only_it_fails(portfolio, as_of, bundle):
    # Given five calls, the last with a feature vector missing every feature
    engine = Engine(RatingModel(bundle))
    requests = _requests(portfolio, as_of, [f"C{i:05d}" for i in range(4)])
    vector_bad = ScoreRequest.model_validate(
        {"as_of": as_of.isoformat(), "feature_vector": {"customer_id": "V1", "values": {}}}
    )
    jobs = [ScoringJob([r], "t") for r in requests] + [ScoringJob([requests[0], vector_bad], "t")]
    outcomes = engine.decide_many(jobs)
    # Then the good calls are decided and the bad one carries an error naming its request
    assert all(isinstance(o, list) and len(o) == 1 for o in outcomes[:4])
    assert isinstance(outcomes[4], ScoringError)
    assert outcomes[4].loc.startswith("requests.1.feature_vector")


def test_given_two_tree_threads_when_a_batch_is_scored_then_values_are_identical(
    portfolio, as_of, bundle
):
    # Given a batch big enough for the threaded tree pass
    requests = _requests(portfolio, as_of, [f"C{i:05d}" for i in range(12)])
    one = Engine(RatingModel(bundle), batch_threads=1)
    two = Engine(RatingModel(bundle), batch_threads=2)
    rows = one.features(requests)
    assert len(rows.x) >= BATCH_THREADS_FROM
    # When scored with one and with two LightGBM threads, then contributions match bit for bit
    a, b = one.score(rows), two.score(rows)
    np.testing.assert_array_equal(a.contributions, b.contributions)
    np.testing.assert_array_equal(a.pd, b.pd)
