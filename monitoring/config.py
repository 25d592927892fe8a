"""Monitoring settings: drift thresholds, early-warning triggers and actions, outcome tests."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.errors import RiskgradeError
from features.metrics import PSI_EPSILON
from rating.lifecycle import CustomerStatus

DEFAULT_STORE: Final[Path] = Path("data/monitoring.duckdb")
"""Default monitoring store (embedded DuckDB file)."""


class MonitoringError(RiskgradeError, ValueError):
    """A monitoring input or setting is invalid (names the offending value)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Trigger(StrEnum):
    """Why a customer is on the early-warning list."""

    GRADE_DROP = "grade_drop"
    """Grade worsened by at least ``WarningConfig.grade_notches`` since the previous run."""
    ENTERED_HIGH = "entered_high"
    ENTERED_RESTRICTED = "entered_restricted"
    HARD_RULE = "hard_rule"
    NEW_DEFAULT = "new_default"
    """Defaulted since the previous run."""
    COVENANT_BREACH = "covenant_breach"
    """A ratio covenant in force is breached at the run date."""
    REPORTING_OVERDUE = "reporting_overdue"
    """The financial report a contract requires is past its due date."""
    REVIEW_OVERDUE = "review_overdue"
    MEASURE = "measure"
    """An active emergency measure covers the customer."""


class Severity(StrEnum):
    """How urgent an early warning is, from the mildest to the most severe."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 = mildest."""
        return list(Severity).index(self)


class Action(StrEnum):
    """Proposed action of an early warning, from the mildest to the most severe."""

    WATCH = "watch"
    """Look closer: schedule the review, ask for the missing report, follow up."""
    RESTRICT = "restrict"
    """Apply the tier's tighter conditions now (limit factor, term, collateral)."""
    SUSPEND = "suspend"
    """No new credit, limits frozen."""
    EXIT = "exit"
    """Reduce exposure and leave the relationship (exit mechanism)."""

    @property
    def severity(self) -> int:
        """0 = mildest."""
        return list(Action).index(self)


CUSTOMER_STATUSES: tuple[str, ...] = tuple(s.value for s in CustomerStatus)
"""Customer statuses from the loosest to the strictest (`rating.lifecycle.CustomerStatus`)."""
"""Customer statuses, mildest first (the management lifecycle); absent means ``normal``."""

ACTION_STATUS: dict[Action, str] = {
    Action.WATCH: "watch",
    Action.RESTRICT: "restricted",
    Action.SUSPEND: "suspended",
    Action.EXIT: "exiting",
}
"""The status an action proposes to move a customer to (if stricter than its current one)."""


def _default_severities() -> dict[Trigger, Severity | None]:
    return {
        Trigger.REVIEW_OVERDUE: Severity.LOW,
        Trigger.REPORTING_OVERDUE: Severity.LOW,
        Trigger.GRADE_DROP: Severity.MEDIUM,
        Trigger.ENTERED_HIGH: None,
        Trigger.COVENANT_BREACH: Severity.MEDIUM,
        Trigger.ENTERED_RESTRICTED: Severity.HIGH,
        Trigger.MEASURE: Severity.HIGH,
        Trigger.HARD_RULE: Severity.CRITICAL,
        Trigger.NEW_DEFAULT: Severity.CRITICAL,
    }


def _default_actions() -> dict[Severity, Action]:
    return {
        Severity.LOW: Action.WATCH,
        Severity.MEDIUM: Action.RESTRICT,
        Severity.HIGH: Action.SUSPEND,
        Severity.CRITICAL: Action.EXIT,
    }


class DriftConfig(_Frozen):
    """PSI flags.

    Small samples inflate PSI: the expected PSI of an unchanged population, about
    ``(bins - 1) * (1/n + 1/n_reference)``, is reported next to every value.
    """

    watch: float = Field(default=0.10, gt=0.0)
    """PSI at or above this: a moderate shift, watch."""
    alert: float = Field(default=0.25, gt=0.0)
    """PSI at or above this: a significant shift, act."""
    epsilon: float = Field(default=PSI_EPSILON, gt=0.0, lt=0.01)
    """Share floor in empty bins (keeps the log finite)."""

    @model_validator(mode="after")
    def _order(self) -> DriftConfig:
        if self.watch >= self.alert:
            raise MonitoringError(
                f"drift.watch ({self.watch}) must be below drift.alert ({self.alert})"
            )
        return self


class WarningConfig(_Frozen):
    """Early-warning triggers, their severity and the action each severity proposes.

    A customer's severity is the highest of its triggers' severities, raised one level (never
    to critical) when ``escalate_triggers`` or more distinct triggers of at least
    ``escalate_from`` fire together. Statuses are proposed from ``propose_status_from`` up.
    """

    grade_notches: int = Field(default=2, ge=1, le=10)
    severities: dict[Trigger, Severity | None] = Field(default_factory=_default_severities)
    """Trigger -> severity; null: the trigger is not used."""
    actions: dict[Severity, Action] = Field(default_factory=_default_actions)
    escalate_triggers: int = Field(default=2, ge=2, le=10)
    escalate_from: Severity = Severity.MEDIUM
    propose_status_from: Severity = Severity.MEDIUM

    @model_validator(mode="after")
    def _complete(self) -> WarningConfig:
        missing = [t.value for t in Trigger if t not in self.severities]
        if missing:
            raise MonitoringError(f"warnings.severities lacks trigger(s) {missing}")
        lacking = [s.value for s in Severity if s not in self.actions]
        if lacking:
            raise MonitoringError(f"warnings.actions lacks an action for severity {lacking}")
        return self


class OutcomeConfig(_Frozen):
    """Back-testing of past runs once their outcome window has passed."""

    horizon_months: int = Field(default=12, ge=1, le=60)
    """A run is back-tested when it is at least this old; defaults within it count."""
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    """One-sided binomial test level against each end of the grade's PD band."""


class JudgementMonitoringConfig(_Frozen):
    """Monitoring of human judgement: activity window and the bootstrap of the AUC difference."""

    activity_months: int = Field(default=12, ge=1, le=120)
    """Override proposals of this many months before the run count in the activity tables."""
    bootstrap: int = Field(default=500, ge=50, le=20_000)
    """Paired bootstrap resamples of the customers for the AUC confidence intervals."""
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    """Two-sided level of the confidence intervals."""
    seed: int = Field(default=42, ge=0)


class MonitoringConfig(_Frozen):
    """Everything a monitoring run needs besides its inputs (working defaults)."""

    chunk_size: int = Field(default=10_000, ge=1)
    drift: DriftConfig = DriftConfig()
    warnings: WarningConfig = WarningConfig()
    outcomes: OutcomeConfig = OutcomeConfig()
    judgement: JudgementMonitoringConfig = JudgementMonitoringConfig()
    top_factors: int = Field(default=3, ge=1, le=10)
    """Factors named per migration explanation."""
    lang: Literal["en", "zh"] = "en"
    """Language of reason texts in the report and tables."""
    auto_previous: bool = True
    """Without an explicit previous run, compare with the latest stored run before as_of."""
