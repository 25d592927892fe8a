"""Promotion gates evaluated on the flat metrics of a run."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from training.config import GateConfig
from training.errors import TrainingError


class GateResult(BaseModel):
    """Outcome of one gate: its measured value against the threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    passed: bool
    value: float | bool | None
    threshold: float | bool | None

    def describe(self) -> str:
        """One line for consoles and reports."""
        status = "PASS" if self.passed else "FAIL"
        return f"{status} {self.name}: value={self.value} threshold={self.threshold}"


def _get(metrics: Mapping[str, object], key: str) -> object:
    if key not in metrics:
        raise TrainingError(f"metrics lack '{key}', needed by the gates")
    return metrics[key]


def _num(metrics: Mapping[str, object], key: str) -> float:
    value = float(_get(metrics, key))  # type: ignore[arg-type]
    return value


def evaluate_gates(metrics: Mapping[str, object], config: GateConfig) -> list[GateResult]:
    """Evaluate every gate; a NaN value fails its gate.

    Args:
        metrics: flat dotted metrics of a run (``test.auc``, ``grades.monotone``, ...).
        config: thresholds.

    Returns:
        One result per gate, in a fixed order.

    Raises:
        TrainingError: if a metric a gate needs is missing.
    """
    model_auc = _num(metrics, "test.auc")
    challenger_auc = _num(metrics, "challenger.test.auc")
    monotone = bool(_get(metrics, "grades.monotone"))
    checks: list[tuple[str, float | bool, float | bool, bool]] = [
        ("min_auc", model_auc, config.min_auc, model_auc >= config.min_auc),
        (
            "grades_monotone",
            monotone,
            config.require_monotone_grades,
            monotone or not config.require_monotone_grades,
        ),
        (
            "max_red_grades",
            _num(metrics, "grades.red_count"),
            float(config.max_red_grades),
            _num(metrics, "grades.red_count") <= config.max_red_grades,
        ),
        (
            "max_grade_share",
            _num(metrics, "grades.max_share"),
            config.max_grade_share,
            _num(metrics, "grades.max_share") <= config.max_grade_share,
        ),
        (
            "max_psi",
            _num(metrics, "stability.psi_score"),
            config.max_psi,
            _num(metrics, "stability.psi_score") < config.max_psi,
        ),
        (
            "max_ece",
            _num(metrics, "test.ece"),
            config.max_ece,
            _num(metrics, "test.ece") <= config.max_ece,
        ),
        (
            "challenger_not_better",
            model_auc - challenger_auc,
            -config.challenger_margin,
            model_auc >= challenger_auc - config.challenger_margin,
        ),
    ]
    results = []
    for name, value, threshold, passed in checks:
        is_nan = isinstance(value, float) and math.isnan(value)
        results.append(
            GateResult(
                name=name, passed=bool(passed) and not is_nan, value=value, threshold=threshold
            )
        )
    return results


def all_passed(results: list[GateResult]) -> bool:
    """True when every gate passed."""
    return all(r.passed for r in results)
