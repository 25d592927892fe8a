"""MLflow pyfunc model *from code*: scores a riskgrade bundle folder, nothing pickled.

MLflow copies this file next to the logged bundle and executes it on ``load_model``; the
bundle is passed as the ``bundle`` artifact. It imports only ``rating`` and ``features`` so
that loading needs no training code. Do not import this module elsewhere: it registers the
model with ``mlflow.models.set_model`` when executed.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from features.spec import FeatureKind
from rating.model import RatingModel


def frame_to_matrix(model: RatingModel, frame: pd.DataFrame) -> np.ndarray:
    """Feature matrix in spec order; categorical strings are mapped onto their codes.

    Raises:
        ValueError: naming the spec features missing from the frame.
    """
    missing = [n for n in model.spec.names if n not in frame.columns]
    if missing:
        raise ValueError(f"input lacks feature column(s) {missing}")
    columns = []
    for feature in model.spec.features:
        column = frame[feature.name]
        if feature.kind is FeatureKind.CATEGORICAL and not pd.api.types.is_numeric_dtype(column):
            codes = {c: float(i) for i, c in enumerate(feature.categories)}
            values = column.map(lambda v, codes=codes: codes.get(str(v), np.nan))
            columns.append(values.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            columns.append(pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def score_frame(model: RatingModel, frame: pd.DataFrame) -> pd.DataFrame:
    """PD, grade, tier, points and the first reason code of each row."""
    matrix = frame_to_matrix(model, frame)
    zeros = np.zeros(len(frame))
    flags = {
        flag: frame[flag].to_numpy(dtype=np.float64) if flag in frame.columns else zeros
        for flag in model.policy.flag_names
        if flag not in model.spec.names
    }
    result = model.score(matrix, flags)
    return pd.DataFrame(
        {
            "pd": result.pd,
            "grade": result.grade.astype(str),
            "tier": [str(t) for t in result.tier],
            "points": result.points,
            "top_reason": [r[0].code if r else "" for r in result.reasons],
        },
        index=frame.index,
    )


class BundleModel(PythonModel):
    """Pyfunc wrapper around `RatingModel` loaded from the ``bundle`` artifact."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load and verify the bundle folder."""
        self.model = RatingModel.load(context.artifacts["bundle"])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Score a frame holding the spec's feature columns."""
        return score_frame(self.model, pd.DataFrame(model_input))


mlflow.models.set_model(BundleModel())
