"""Errors raised by the training package."""

from __future__ import annotations

from features.errors import RiskgradeError


class TrainingError(RiskgradeError, ValueError):
    """Training input or configuration is unusable; the message names what is wrong."""


class TargetError(TrainingError):
    """The target column is missing, has one class only, or cannot be mapped to 0/1."""


class SplitError(TrainingError):
    """The data cannot be split into non-empty train, calibration and test windows."""


class PromotionError(TrainingError):
    """Promotion cannot be attempted (no challenger registered, missing run data)."""
