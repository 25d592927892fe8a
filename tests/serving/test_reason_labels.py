"""/score reasons name a categorical feature's level (the industry), not only its code."""

from __future__ import annotations

from features.catalog import FEATURE_SPEC
from rating.model import RatingModel
from serving.batch import request_example
from serving.engine import Engine
from serving.schemas import ScoreRequest
from tests.serving.factory import AS_OF, make_portfolio


def test_given_decisions_when_reasons_are_given_then_each_has_its_level_label(bundle):
    # Given the decisions of a portfolio
    portfolio = make_portfolio(60, seed=5)
    engine = Engine(RatingModel(bundle))
    requests = [
        ScoreRequest.model_validate(request_example(portfolio, cid, AS_OF))
        for cid in portfolio.customers["customer_id"]
    ]
    reasons = [r for d in engine.decide(requests, "test") for r in d.response["reasons"]]
    # Then every reason says which level a categorical value codes for (None for the others)
    assert reasons and all("label" in r for r in reasons)
    for reason in reasons:
        if reason["feature"] is None:  # a hard rule or the default: no value to label
            assert reason["label"] is None, reason
            continue
        levels = FEATURE_SPEC.by_name(reason["feature"]).categories
        expected = levels[int(reason["value"])] if levels else None
        assert reason["label"] == expected, reason
