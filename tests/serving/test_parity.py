"""One answer from the API and from batch scoring, for every customer of a sample portfolio."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from features.io import RawTables
from features.synthetic import GeneratorConfig, generate_tables
from rating.model import RatingModel
from rating.output import POLICY_PREFIX, SCORE_COLUMN_NAMES, SCORE_COLUMNS
from rating.policy import CreditPolicy
from rating.reasons import DEFAULT_GROUP, HARD_RULE_GROUP, MAX_REASONS
from serving.batch import request_example, score_portfolio
from serving.engine import Engine
from serving.schemas import ScoreRequest
from tests.serving.conftest import auth

AS_OF = date(2024, 12, 31)
FLAGS = ["sanctions_hit", "legal_enforcement", "fraud"]


@pytest.fixture(scope="module")
def sample() -> RawTables:
    """300 generated customers; defaults and hard rules as drawn, plus forced overlaps."""
    config = GeneratorConfig(
        customers=300, seed=13, start=date(2022, 1, 1), end=AS_OF, mess_rate=0.0
    )
    raw, _ = generate_tables(config)
    customers = raw.customers.copy()
    defaults = raw.defaults.copy()
    defaulted = sorted(defaults.loc[defaults["default_date"] <= pd.Timestamp(AS_OF), "customer_id"])
    # One customer in default with a hard rule too, and one with every hard rule at once.
    customers.loc[customers["customer_id"] == defaulted[0], "fraud"] = True
    clean = customers[~customers[FLAGS].any(axis=1) & ~customers["customer_id"].isin(defaulted)]
    customers.loc[customers["customer_id"] == clean["customer_id"].iloc[0], FLAGS] = True
    return RawTables(**{**dict(raw.items()), "customers": customers, "defaults": defaults})


def _batch_reasons(row: pd.Series) -> list[dict[str, object]]:
    out = []
    for k in range(1, MAX_REASONS + 1):
        if isinstance(row[f"reason_{k}"], str):
            contribution = row[f"reason_{k}_contribution"]
            out.append(
                {
                    "code": row[f"reason_{k}"],
                    "text": row[f"reason_{k}_text"],
                    "contribution": None if math.isnan(contribution) else contribution,
                }
            )
    return out


def test_given_a_sample_portfolio_when_scored_by_batch_and_api_then_every_answer_is_equal(
    sample, bundle, service_client
):
    # Given the batch output of a portfolio holding defaults and hard rules
    table = score_portfolio(sample, AS_OF, bundle, chunk_size=64).set_index("customer_id")
    assert table["in_default"].sum() >= 5
    assert (table["hard_rules"] != "").sum() >= 5
    assert ((table["hard_rules"] != "") & table["in_default"]).any()
    # When every customer's request-example body is sent to /score
    with service_client() as (client, tokens, _):
        for cid, row in table.iterrows():
            body = request_example(sample, str(cid), AS_OF)
            response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
            assert response.status_code == 200, response.text
            answer = response.json()
            # Then the API's answer equals the batch row
            assert abs(answer["pd"] - row["pd"]) <= 1e-12, cid
            assert answer["score"] == row["score"], cid
            assert (answer["grade"], answer["tier"], answer["model_tier"]) == (
                row["grade"],
                row["tier"],
                row["model_tier"],
            ), cid
            policy = {name: row[POLICY_PREFIX + name] for name in CreditPolicy.model_fields}
            assert answer["policy"] == policy, cid
            batch_reasons = _batch_reasons(row)
            assert [(r["code"], r["text"]) for r in answer["reasons"]] == [
                (r["code"], r["text"]) for r in batch_reasons
            ], cid
            for api, batch in zip(answer["reasons"], batch_reasons, strict=True):
                if batch["contribution"] is None:
                    assert api["contribution"] is None, cid
                else:
                    assert abs(api["contribution"] - batch["contribution"]) <= 1e-12, cid
            assert ";".join(h["code"] for h in answer["hard_rules"]) == row["hard_rules"], cid
            assert (answer["default"] is not None) == bool(row["in_default"]), cid
            for key in ("model_version", "bundle_hash", "policy_version"):
                assert answer[key] == row[key], (cid, key)
            # and a default or hard rule restricts, its reason first
            groups = [r["group"] for r in answer["reasons"]]
            if row["in_default"]:
                assert answer["grade"] == "D" and answer["tier"] == "restricted"
                assert answer["default"]["default_date"] == row["default_date"].date().isoformat()
                assert DEFAULT_GROUP in groups
            if row["hard_rules"]:
                assert answer["tier"] == "restricted"
                assert groups[0] == HARD_RULE_GROUP
            status_groups = [g for g in groups if g in (HARD_RULE_GROUP, DEFAULT_GROUP)]
            assert groups[: len(status_groups)] == status_groups, cid


def test_given_a_customer_in_default_and_under_a_hard_rule_then_hard_rule_then_default_first(
    sample, bundle
):
    # Given the customer forced into both
    table = score_portfolio(sample, AS_OF, bundle).set_index("customer_id")
    both = table[(table["hard_rules"] != "") & table["in_default"]]
    cid = str(both.index[0])
    # When scored by the engine
    request = ScoreRequest.model_validate(request_example(sample, cid, AS_OF))
    answer = Engine(RatingModel(bundle)).decide([request], "test")[0].response
    # Then the hard rule comes first, then the default, then the features
    codes = [r["code"] for r in answer["reasons"]]
    assert codes[0] == "HR03" and codes[1].startswith("DEF")
    assert not {r["group"] for r in answer["reasons"][2:]} & {HARD_RULE_GROUP, DEFAULT_GROUP}
    assert both.loc[cid, "reason_1"] == "HR03" and both.loc[cid, "reason_2"] == codes[1]


def test_given_defaults_after_as_of_or_none_when_scored_then_not_in_default(sample, bundle):
    # Given a defaulted customer's body, its defaults dropped
    table = score_portfolio(sample, AS_OF, bundle).set_index("customer_id")
    cid = str(table[table["in_default"] & (table["hard_rules"] == "")].index[0])
    body = request_example(sample, cid, AS_OF)
    assert body["defaults"]
    engine = Engine(RatingModel(bundle))
    without = {**body, "defaults": []}
    # When scored without them, then the model grade and tier stand
    answer = engine.decide([ScoreRequest.model_validate(without)], "t")[0].response
    assert answer["grade"] != "D" and answer["default"] is None
    assert answer["tier"] == answer["model_tier"]
    # and a default dated after as_of is refused (it would leak the future)
    later = {**body, "defaults": [{"default_date": "2025-01-01", "default_type": "dpd90"}]}
    with pytest.raises(ValueError, match=r"defaults\.0\.default_date"):
        ScoreRequest.model_validate(later)


def test_given_the_batch_output_then_columns_follow_the_schema_and_zh_texts(sample, bundle):
    # When the portfolio is scored in Chinese
    table = score_portfolio(sample, AS_OF, bundle, lang="zh")
    # Then the columns are exactly the documented ones, with policy and model on every row
    assert tuple(table.columns) == SCORE_COLUMN_NAMES
    kinds = {"string": "O", "date": "M", "float64": "f", "int64": "i", "bool": "b"}
    assert {c.name: table[c.name].dtype.kind for c in SCORE_COLUMNS} == {
        c.name: kinds[c.dtype] for c in SCORE_COLUMNS
    }
    required = [c.name for c in SCORE_COLUMNS if not c.nullable]
    assert table[required].notna().all().all()
    assert table["model_version"].notna().all() and table["bundle_hash"].str.len().eq(64).all()
    assert table[[POLICY_PREFIX + n for n in CreditPolicy.model_fields]].notna().all().all()
    assert (table["lang"] == "zh").all()
    texts = table["reason_1_text"].dropna()
    assert len(texts) > 0
    assert texts.map(lambda t: any("\u4e00" <= ch <= "\u9fff" for ch in t)).all()
    restricted = table[table["tier"] == "restricted"]
    assert not restricted["policy_new_credit_allowed"].any()
    defaulted = table[table["in_default"]]
    assert defaulted["reason_1_text"].str.contains("起违约").any()
