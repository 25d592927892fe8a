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
    note: str = ""
    """How the value was judged (interval, p-value, zone), for consoles and reports."""

    def describe(self) -> str:
        """One line for consoles and reports."""
        status = "PASS" if self.passed else "FAIL"
        note = f" ({self.note})" if self.note else ""
        return f"{status} {self.name}: value={self.value} threshold={self.threshold}{note}"


GATE_NAMES = (
    "min_auc",
    "grades_monotone",
    "max_grade_share",
    "max_psi",
    "calibration_level",
    "max_red_grades",
    "max_ece",
    "challenger_not_better",
)
"""Every gate, in the order they are evaluated: discrimination and rank order on the test
window first, then calibration over the cycle, then the challenger."""


def _get(metrics: Mapping[str, object], key: str) -> object:
    if key not in metrics:
        raise TrainingError(
            f"metrics lack '{key}', needed by the gates (train the model again to compute it)"
        )
    return metrics[key]


def _num(metrics: Mapping[str, object], key: str) -> float:
    value = _get(metrics, key)
    # Metrics are JSON numbers (or None when missing); a str here would raise, as it should.
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]  # see above


def _level_gate(metrics: Mapping[str, object], config: GateConfig) -> GateResult:
    ratio = _num(metrics, "cycle.level_ratio")
    low, high = _num(metrics, "cycle.level_low"), _num(metrics, "cycle.level_high")
    upper = 1.0 + config.level_tolerance
    lower = 1.0 / upper
    failed = low > upper or high < lower
    assessable = math.log(high / low) / 2.0 < math.log(2.0) - math.log(upper) if low > 0 else False
    note = f"interval {low:.3f}-{high:.3f} against {lower:.3f}-{upper:.3f}"
    if not failed and not assessable:
        note += "; not assessable: the interval cannot exclude a doubled or halved PD"
    return GateResult(
        name="calibration_level",
        passed=not failed and not math.isnan(ratio),
        value=ratio,
        threshold=config.level_tolerance,
        note=note,
    )


def _red_grades_gate(metrics: Mapping[str, object], config: GateConfig) -> GateResult:
    red = _num(metrics, "cycle.grades.red_count")
    if config.max_red_grades is None:
        allowed = _num(metrics, "cycle.grades.red_allowed")
        note = (
            f"through the cycle, {red:.0f} red of {_num(metrics, 'cycle.grades.assessable'):.0f} "
            f"assessable grades: {_get(metrics, 'cycle.grades.zone')} zone"
        )
    else:
        allowed = float(config.max_red_grades)
        note = "through the cycle, over assessable grades"
    return GateResult(
        name="max_red_grades", passed=red <= allowed, value=red, threshold=allowed, note=note
    )


def _challenger_gate(metrics: Mapping[str, object], config: GateConfig) -> GateResult:
    model_auc = _num(metrics, "test.auc")
    challenger_auc = _num(metrics, "challenger.test.auc")
    p_value = _num(metrics, "challenger.test.auc_diff_p")
    worse = challenger_auc - model_auc > config.challenger_margin
    significant = p_value < config.challenger_alpha
    passed = not (worse and significant) and not math.isnan(model_auc - challenger_auc)
    return GateResult(
        name="challenger_not_better",
        passed=passed,
        value=model_auc - challenger_auc,
        threshold=-config.challenger_margin,
        note=f"DeLong p={p_value:.3g} that the challenger is better "
        f"(level {config.challenger_alpha})",
    )


def evaluate_gates(metrics: Mapping[str, object], config: GateConfig) -> list[GateResult]:
    """Evaluate every gate (:data:`GATE_NAMES`); a NaN value fails its gate.

    Discrimination and rank order are judged on the out-of-time test window (``test.auc``,
    ``grades.monotone``: no significant inversion of adjacent grades, ``grades.max_share``,
    ``stability.psi_score``); calibration level over every window against the long-run anchor
    (``cycle.level_*``: the interval of the long-run default rate / mean PD ratio must not lie
    wholly outside the tolerance; ``cycle.grades.*``: red grades of the through-the-cycle
    Jeffreys test, not-assessable grades never red); ``test.ece_shape`` bounds the test
    window's calibration error once the PDs' level is moved to the window's default rate (the
    shape); the challenger fails the model only when significantly better.

    Args:
        metrics: flat dotted metrics of a run (``test.auc``, ``grades.monotone``, ...).
        config: thresholds.

    Returns:
        One result per gate, in the order of :data:`GATE_NAMES`.

    Raises:
        TrainingError: if a metric a gate needs is missing.
    """
    model_auc = _num(metrics, "test.auc")
    monotone = bool(_get(metrics, "grades.monotone"))
    share = _num(metrics, "grades.max_share")
    stability = _num(metrics, "stability.psi_score")
    ece = _num(metrics, "test.ece_shape")
    results = [
        GateResult(
            name="min_auc",
            passed=model_auc >= config.min_auc,
            value=model_auc,
            threshold=config.min_auc,
        ),
        GateResult(
            name="grades_monotone",
            passed=monotone or not config.require_monotone_grades,
            value=monotone,
            threshold=config.require_monotone_grades,
            note=f"{_num(metrics, 'grades.significant_inversions'):.0f} significant inversion(s) "
            "of adjacent grades on the test window",
        ),
        GateResult(
            name="max_grade_share",
            passed=share <= config.max_grade_share,
            value=share,
            threshold=config.max_grade_share,
        ),
        GateResult(
            name="max_psi",
            passed=stability < config.max_psi,
            value=stability,
            threshold=config.max_psi,
        ),
        _level_gate(metrics, config),
        _red_grades_gate(metrics, config),
        GateResult(
            name="max_ece", passed=ece <= config.max_ece, value=ece, threshold=config.max_ece
        ),
        _challenger_gate(metrics, config),
    ]
    return [
        r.model_copy(update={"passed": False})
        if isinstance(r.value, float) and math.isnan(r.value)
        else r
        for r in results
    ]


def all_passed(results: list[GateResult]) -> bool:
    """True when every gate passed."""
    return all(r.passed for r in results)
