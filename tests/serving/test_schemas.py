from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from serving.batch import request_example
from serving.schemas import RequestLimits, ScoreBatchRequest, ScoreRequest, field_errors


@pytest.fixture(scope="module")
def body(portfolio, as_of):
    return request_example(portfolio, "C00001", as_of)


def errors_of(payload, **context):
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate_json(json.dumps(payload, allow_nan=True), context=context)
    return {e.loc: e.message for e in field_errors(info.value)}


def test_given_example_body_when_validated_then_accepted(body):
    request = ScoreRequest.model_validate(body)
    assert request.customer_id == "C00001" and request.transactions


def test_given_unknown_field_when_validated_then_error_names_it(body):
    bad = copy.deepcopy(body)
    bad["statements"][0]["ebitda"] = 1.0
    assert "statements.0.ebitda" in errors_of(bad)


def test_given_nan_amount_when_validated_then_rejected(body):
    bad = copy.deepcopy(body)
    bad["statements"][0]["total_assets"] = float("nan")
    assert "statements.0.total_assets" in errors_of(bad)


def test_given_negative_assets_when_validated_then_rejected(body):
    bad = copy.deepcopy(body)
    bad["statements"][0]["total_assets"] = -5.0
    assert "statements.0.total_assets" in errors_of(bad)


def test_given_event_after_as_of_when_validated_then_rejected_naming_it(body):
    bad = copy.deepcopy(body)
    bad["transactions"][0]["ts"] = "2030-01-01T00:00:00"
    messages = " ".join(errors_of(bad).values())
    assert "transactions.0.ts" in messages and "after as_of" in messages


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ts", "2024-01-02T10:00:00+08:00", "timezone"),
        ("ts", "1899-12-31T23:59:59", "greater than or equal to 1900-01-01"),
        ("ts", "2024-02-30T10:00:00", "datetime"),
        ("amount", 0.0, "greater than 0"),
        ("channel", "carrier-pigeon", "Input should be"),
        ("memo", "extra", "Extra inputs are not permitted"),
    ],
)
def test_given_bad_transaction_field_when_validated_then_error_names_it(
    body, field, value, message
):
    # Given one transaction with a bad (or unknown) field
    bad = copy.deepcopy(body)
    bad["transactions"][1][field] = value
    # When validated, then the error names that transaction's field
    errors = errors_of(bad)
    assert message in errors[f"transactions.1.{field}"]


def test_given_repeated_txn_id_when_validated_then_rejected(body):
    bad = copy.deepcopy(body)
    bad["transactions"][1]["txn_id"] = bad["transactions"][0]["txn_id"]
    assert "txn_id values repeat" in " ".join(errors_of(bad).values())


def test_given_too_many_transactions_when_validated_then_bounded_by_config(body):
    limits = RequestLimits(max_transactions=5)
    errors = errors_of(body, limits=limits)
    assert "at most 5 transactions" in errors["transactions"]


def test_given_both_or_neither_payload_when_validated_then_rejected(body):
    both = {**body, "feature_vector": {"customer_id": "x", "values": {}}}
    assert "exactly one" in " ".join(errors_of(both).values())
    neither = {"as_of": body["as_of"]}
    assert "exactly one" in " ".join(errors_of(neither).values())


def test_given_big_batch_when_validated_then_rejected(body):
    payload = {"requests": [body] * 3}
    with pytest.raises(ValidationError, match="at most 2 requests"):
        ScoreBatchRequest.model_validate(payload, context={"limits": RequestLimits(max_batch=2)})
