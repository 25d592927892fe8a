"""Benchmark baseline: the same rating served by ``mlflow models serve``, from raw records.

An MLflow model *from code* (nothing pickled) that does what ``POST /score`` does, with the
same code: validate the request (``serving.schemas``), compute its features
(``features.catalog``) and decide (``serving.engine``: one ``pred_contrib`` pass, PD, grade,
tier, policy, reasons, groups). Only the audit commit is left out, which favours MLflow. Each
row of the input frame is one ``/score`` body as a JSON string in column ``request``; each
output row is the decision JSON. Used by ``benchmarks/bench_serving.py`` only.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from rating.model import RatingModel
from serving.engine import Engine, RequestSource
from serving.schemas import ScoreRequest


class RawRecordsModel(PythonModel):
    """``/score`` bodies in, decisions out, through the serving engine."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load and verify the bundle folder."""
        self.engine = Engine(RatingModel.load(context.artifacts["bundle"]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Decide every request of the frame's ``request`` column."""
        bodies = [str(body).encode() for body in model_input["request"]]
        requests = [ScoreRequest.model_validate_json(b, strict=True) for b in bodies]
        sources = [RequestSource(b) for b in bodies]
        decisions = self.engine.decide(requests, "mlflow", sources=sources)
        return pd.DataFrame({"decision": [json.dumps(d.response) for d in decisions]})


mlflow.models.set_model(RawRecordsModel())
