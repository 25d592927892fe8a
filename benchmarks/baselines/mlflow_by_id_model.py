"""Benchmark baseline: scoring by customer id served by ``mlflow models serve``.

An MLflow model *from code* (nothing pickled) that does what a by-id ``POST /score`` does, with
the same code: read the customer's records known at ``as_of`` from the raw store named by
``RISKGRADE_RAW_URL`` (``serving.by_id.read_requests``: the same one-statement read, pooled
PostgreSQL connections, the same contract check and records digest), make the request carrying
those records (``serving.by_id.decidable``), compute its features and decide
(``serving.engine``). Only the audit commit is left out, which favours MLflow. Each input row
is ``customer_id`` and ``as_of`` (ISO date); each output row is the decision JSON. Used by
``benchmarks/bench_serving.py --by-id`` only.
"""

from __future__ import annotations

import json
import os
from datetime import date
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from rating.model import RatingModel
from serving.batch import BatchError
from serving.by_id import ByIdRequest, decidable, raw_store, read_requests
from serving.engine import Engine, RequestSource
from serving.schemas import ScoreRequest


class ByIdModel(PythonModel):
    """``{customer_id, as_of}`` rows in, decisions out: store read, then the serving engine."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load and verify the bundle folder; name the raw store."""
        self.engine = Engine(RatingModel.load(context.artifacts["bundle"]))
        self.url = os.environ["RISKGRADE_RAW_URL"]

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Read and decide every ``(customer_id, as_of)`` row of the frame."""
        items = [
            ByIdRequest(customer_id=str(cid), as_of=date.fromisoformat(str(day)))
            for cid, day in zip(model_input["customer_id"], model_input["as_of"], strict=True)
        ]
        requests, sources = [], []
        for item, result in zip(items, read_requests(raw_store(self.url), items), strict=True):
            if isinstance(result, BatchError):
                raise result
            requests.append(decidable(item, result, ScoreRequest, None))
            received = {"customer_id": item.customer_id, "as_of": item.as_of.isoformat()}
            raw = json.dumps({**received, "read": result.read}, separators=(",", ":")).encode()
            sources.append(RequestSource(raw, read=result.read))
        decisions = self.engine.decide(requests, "mlflow", sources=sources)
        return pd.DataFrame({"decision": [json.dumps(d.response) for d in decisions]})


mlflow.models.set_model(ByIdModel())
