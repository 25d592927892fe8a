"""Platt calibration applied on the raw LightGBM margin (fitting it is training's job).

Calibrated log-odds are affine in the margin, ``a * margin + b``, so SHAP values multiplied by
``a``, with the base value mapped to ``a * base + b``, stay exactly additive in calibrated
log-odds.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator
from scipy.special import expit


class CalibrationError(ValueError):
    """Invalid calibration parameters or contributions."""


class PlattCalibration(BaseModel):
    """Calibrated log-odds ``= a * margin + b``; ``a > 0`` keeps the risk order of the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    a: float = 1.0
    b: float = 0.0

    @field_validator("a", "b")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise CalibrationError(f"calibration parameters must be finite, got {value!r}")
        return value

    @field_validator("a")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0.0:
            raise CalibrationError(
                f"calibration slope a must be > 0 (a <= 0 reverses or erases the risk order), "
                f"got {value!r}"
            )
        return value

    def log_odds(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of raw margins."""
        return self.a * np.asarray(margin, dtype=np.float64) + self.b

    def pd_from_margin(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated PD of raw margins (no floor: the master scale applies it)."""
        return expit(self.log_odds(margin))

    def scale_contributions(self, contribs: np.ndarray) -> np.ndarray:
        """Map LightGBM ``pred_contrib`` output onto calibrated log-odds.

        Args:
            contribs: ``(n, n_features + 1)`` (or one row ``(n_features + 1,)``) SHAP values in
                raw margin, the last column being the expected value (base).

        Returns:
            Same shape: feature columns times ``a``, last column ``a * base + b``; each row sums
            to the calibrated log-odds.

        Raises:
            CalibrationError: if the array has no base column.
        """
        values = np.asarray(contribs, dtype=np.float64)
        if values.ndim not in (1, 2) or values.shape[-1] < 2:
            raise CalibrationError(
                f"contributions must be (n, n_features + 1) with the base last, got {values.shape}"
            )
        scaled = values * self.a
        scaled[..., -1] += self.b
        return scaled
