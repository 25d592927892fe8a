"""The customer lifecycle and emergency measures as rules: pure functions, no store.

A customer's status (normal, watch, restricted, suspended, exiting, exited) and any active
emergency measure can only make the credit policy stricter (`rating.chain.rate_customer` applies
them as `StricterPolicy` inputs). Which transitions exist, which need a second person, and
what each status does to the policy live in ``rating.lifecycle`` of params.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rating.judgement import Role
from rating.policy import CreditPolicy, Tier


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LifecycleError(ValueError):
    """A status change or measure breaks a lifecycle rule.

    Attributes:
        code: machine-readable rule name (``same_status``, ``transition_not_allowed``, ...).
        field: the input field at fault.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class CustomerStatus(StrEnum):
    """Where a customer stands in the relationship, from the loosest to the strictest."""

    NORMAL = "normal"
    WATCH = "watch"
    RESTRICTED = "restricted"
    SUSPENDED = "suspended"
    """No new credit; limits frozen."""
    EXITING = "exiting"
    """An exit plan runs: exposure reduced by a date."""
    EXITED = "exited"

    @property
    def rank(self) -> int:
        """0 = normal, 5 = exited."""
        return list(CustomerStatus).index(self)


class PolicyEffect(_Frozen):
    """What a status or measure does to the credit policy (each part only tightens)."""

    min_tier: Tier | None = None
    """The tier is at least this strict."""
    new_credit_allowed: bool = True
    """False suspends new credit."""
    max_credit_limit_factor: float | None = Field(default=None, ge=0.0, le=10.0)
    """The limit factor is capped here."""
    exit_review: bool = False
    """True sends the relationship through the exit mechanism review."""
    max_review_frequency_days: int | None = Field(default=None, gt=0, le=3650)
    """Reviews at least this often."""

    @property
    def tightens(self) -> bool:
        """Whether the effect changes anything."""
        return self != PolicyEffect()


def tighten(policy: CreditPolicy, effect: PolicyEffect) -> CreditPolicy:
    """``policy`` made stricter by ``effect`` (never looser)."""
    limit = policy.credit_limit_factor
    if effect.max_credit_limit_factor is not None:
        limit = min(limit, effect.max_credit_limit_factor)
    review = policy.review_frequency_days
    if effect.max_review_frequency_days is not None:
        review = min(review, effect.max_review_frequency_days)
    return policy.model_copy(
        update={
            "credit_limit_factor": limit,
            "new_credit_allowed": policy.new_credit_allowed and effect.new_credit_allowed,
            "exit_review": policy.exit_review or effect.exit_review,
            "review_frequency_days": review,
        }
    )


class StricterPolicy(_Frozen):
    """A policy input that can only make the rating stricter (a status, an emergency measure)."""

    source: Literal["status", "measure"]
    ref: str = Field(min_length=1)
    """Id of the status change or measure."""
    effect: PolicyEffect
    status: CustomerStatus | None = None
    """For a status input: the status."""
    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)


def _default_effects() -> dict[CustomerStatus, PolicyEffect]:
    return {
        CustomerStatus.NORMAL: PolicyEffect(),
        CustomerStatus.WATCH: PolicyEffect(max_review_frequency_days=90),
        CustomerStatus.RESTRICTED: PolicyEffect(min_tier=Tier.RESTRICTED),
        CustomerStatus.SUSPENDED: PolicyEffect(new_credit_allowed=False),
        CustomerStatus.EXITING: PolicyEffect(
            min_tier=Tier.RESTRICTED,
            new_credit_allowed=False,
            max_credit_limit_factor=0.0,
            exit_review=True,
        ),
        CustomerStatus.EXITED: PolicyEffect(
            min_tier=Tier.RESTRICTED,
            new_credit_allowed=False,
            max_credit_limit_factor=0.0,
            exit_review=True,
        ),
    }


_STATUS_TEXT: dict[CustomerStatus, tuple[str, str]] = {
    CustomerStatus.NORMAL: ("Normal", "正常"),
    CustomerStatus.WATCH: ("On the watch list", "关注"),
    CustomerStatus.RESTRICTED: ("Restricted", "限制"),
    CustomerStatus.SUSPENDED: (
        "Suspended: no new credit, limits frozen",
        "暂停:停止新增授信,额度冻结",
    ),
    CustomerStatus.EXITING: (
        "Exiting: exposure reduced under an exit plan",
        "退出中:按退出计划压降敞口",
    ),
    CustomerStatus.EXITED: ("Exited", "已退出"),
}


class LifecycleConfig(_Frozen):
    """The ``rating.lifecycle`` settings: transitions, four eyes and each status's effect."""

    version: str = "lc-2026.1"
    effects: dict[CustomerStatus, PolicyEffect] = Field(default_factory=_default_effects)
    four_eyes_to: tuple[CustomerStatus, ...] = (CustomerStatus.SUSPENDED, CustomerStatus.EXITING)
    """Changes to these statuses take effect only when a second person approves."""
    four_eyes_reinstatement: bool = True
    """Leaving suspended, exiting or exited (loosening) needs a second person too."""
    exited_reinstates_to: tuple[CustomerStatus, ...] = (CustomerStatus.NORMAL,)
    """An exited customer can only come back to these statuses (re-onboarding)."""
    pending_days: int = Field(default=30, ge=1, le=365)
    """An undecided proposal expires after this many days."""
    min_reason_chars: int = Field(default=10, ge=0, le=1000)
    default_exit_days: int = Field(default=180, ge=1, le=3650)
    """Exit plan length when the monitoring proposes ``exiting``."""

    @model_validator(mode="after")
    def _complete(self) -> LifecycleConfig:
        missing = [s.value for s in CustomerStatus if s not in self.effects]
        if missing:
            raise ValueError(f"lifecycle.effects lacks statuses {missing}")
        if self.effects[CustomerStatus.NORMAL].tightens:
            raise ValueError("lifecycle.effects.normal must not change the policy")
        return self

    def effect(self, status: CustomerStatus) -> PolicyEffect:
        """What ``status`` does to the policy."""
        return self.effects[status]


class StatusTransition(_Frozen):
    """An admissible status change and who must confirm it."""

    current: CustomerStatus
    target: CustomerStatus
    four_eyes: bool
    """True: pending until an approver other than the proposer approves."""
    required_role: Role
    """Role that confirms (the proposer's own role suffices without four eyes)."""


_LOOSE_EXIT = (CustomerStatus.SUSPENDED, CustomerStatus.EXITING, CustomerStatus.EXITED)


def check_status_change(
    current: CustomerStatus,
    target: CustomerStatus,
    reason: str,
    config: LifecycleConfig,
    *,
    exit_by: date | None = None,
    effective_on: date | None = None,
) -> StatusTransition:
    """Check a proposed status change against the lifecycle rules.

    Args:
        current: the customer's status now.
        target: the proposed status.
        reason: the proposer's explanation.
        config: lifecycle rules.
        exit_by: for ``exiting``, the date exposure must be reduced by.
        effective_on: the day the change is proposed to take effect (``exit_by`` must follow).

    Raises:
        LifecycleError: ``same_status``, ``transition_not_allowed``, ``reason_required``,
            ``exit_plan_required`` or ``exit_by_not_after_start``.
    """
    if target is current:
        raise LifecycleError("same_status", f"the customer is already '{current}'", "status")
    if current is CustomerStatus.EXITED and target not in config.exited_reinstates_to:
        allowed = [s.value for s in config.exited_reinstates_to]
        raise LifecycleError(
            "transition_not_allowed",
            f"an exited customer can only be reinstated to {allowed}, not '{target}'",
            "status",
        )
    if target is CustomerStatus.EXITED and current is not CustomerStatus.EXITING:
        raise LifecycleError(
            "transition_not_allowed",
            f"a customer exits through 'exiting' (an exit plan), not from '{current}'",
            "status",
        )
    if len(reason.strip()) < config.min_reason_chars:
        raise LifecycleError(
            "reason_required",
            f"a status change needs a reason of at least {config.min_reason_chars} characters",
            "reason",
        )
    if target is CustomerStatus.EXITING:
        if exit_by is None:
            raise LifecycleError(
                "exit_plan_required", "'exiting' needs exit_by: the date exposure ends", "exit_by"
            )
        if effective_on is not None and exit_by <= effective_on:
            raise LifecycleError(
                "exit_by_not_after_start",
                f"exit_by {exit_by} must be after the change's date {effective_on}",
                "exit_by",
            )
    loosening = current in _LOOSE_EXIT and target.rank < current.rank
    four_eyes = target in config.four_eyes_to or (config.four_eyes_reinstatement and loosening)
    return StatusTransition(
        current=current,
        target=target,
        four_eyes=four_eyes,
        required_role=Role.APPROVER if four_eyes else Role.ANALYST,
    )


def status_text(status: CustomerStatus) -> tuple[str, str]:
    """English and Chinese label of ``status``."""
    return _STATUS_TEXT[status]


def status_stricter(
    status: CustomerStatus, change_id: str, config: LifecycleConfig
) -> StricterPolicy | None:
    """The rating-chain input of a customer's status (None for ``normal``)."""
    if status is CustomerStatus.NORMAL:
        return None
    effect = config.effect(status)
    text_en, text_zh = status_text(status)
    return StricterPolicy(
        source="status",
        ref=change_id,
        effect=effect,
        status=status,
        text_en=f"Customer status: {text_en}",
        text_zh=f"客户状态:{text_zh}",
    )


# --- emergency measures --------------------------------------------------------------------------


class MeasureScope(_Frozen):
    """Who a measure covers: listed customers, or every customer matching all given segments."""

    industries: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    size_classes: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> MeasureScope:
        if not (self.industries or self.regions or self.size_classes or self.customer_ids):
            raise ValueError(
                "a measure's scope needs industries, regions, size_classes or customer_ids"
            )
        return self

    def covers(self, customer_id: str, segment: Mapping[str, str | None]) -> bool:
        """Whether the customer (with its ``industry``, ``region``, ``size_class``) is in scope."""
        if customer_id in self.customer_ids:
            return True
        parts = (
            ("industry", self.industries),
            ("region", self.regions),
            ("size_class", self.size_classes),
        )
        given = [(key, values) for key, values in parts if values]
        return bool(given) and all(segment.get(key) in values for key, values in given)


class MeasureEffect(_Frozen):
    """What an emergency measure does (at least one part)."""

    min_tier: Tier | None = None
    suspend_new_credit: bool = False
    max_credit_limit_factor: float | None = Field(default=None, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _does_something(self) -> MeasureEffect:
        nothing = self.min_tier is None and self.max_credit_limit_factor is None
        if nothing and not self.suspend_new_credit:
            raise ValueError(
                "a measure needs an effect: min_tier, suspend_new_credit or max_credit_limit_factor"
            )
        return self

    def as_policy_effect(self) -> PolicyEffect:
        """The same effect in the terms of the policy."""
        return PolicyEffect(
            min_tier=self.min_tier,
            new_credit_allowed=not self.suspend_new_credit,
            max_credit_limit_factor=self.max_credit_limit_factor,
        )


MeasureStatus = Literal["proposed", "active", "rejected", "expired", "scheduled"]


class Measure(_Frozen):
    """An emergency measure as recorded: active from approval and start until expiry."""

    measure_id: str = Field(min_length=1)
    title: str = Field(min_length=1, max_length=200)
    scope: MeasureScope
    effect: MeasureEffect
    reason: str = Field(min_length=1)
    starts_on: date
    expires_on: date
    """First day it no longer applies."""
    proposer: str = Field(min_length=1)
    approver: str | None = None
    decided_on: date | None = None
    rejected: bool = False

    @model_validator(mode="after")
    def _dates(self) -> Measure:
        if self.expires_on <= self.starts_on:
            raise ValueError(f"expires_on {self.expires_on} must be after starts_on")
        return self

    def active_at(self, day: date) -> bool:
        """Approved, started and not expired on ``day``."""
        approved = self.approver is not None and not self.rejected
        decided = self.decided_on is not None and self.decided_on <= day
        return approved and decided and self.starts_on <= day < self.expires_on

    def status_at(self, day: date) -> MeasureStatus:
        """Where the measure stands on ``day`` (an undecided proposal's own deadline aside)."""
        decided = self.decided_on is not None and self.decided_on <= day
        if decided and self.rejected:
            return "rejected"
        if day >= self.expires_on:
            return "expired"
        if decided:
            return "active" if day >= self.starts_on else "scheduled"
        return "proposed"


def measure_stricter(measure: Measure) -> StricterPolicy:
    """The rating-chain input of an active measure (its reason line names the measure)."""
    return StricterPolicy(
        source="measure",
        ref=measure.measure_id,
        effect=measure.effect.as_policy_effect(),
        text_en=f"Emergency measure {measure.measure_id}: {measure.title}",
        text_zh=f"应急措施 {measure.measure_id}:{measure.title}",
    )


def measures_for(
    customer_id: str,
    segment: Mapping[str, str | None],
    measures: Iterable[Measure],
    day: date,
) -> list[Measure]:
    """The measures active on ``day`` whose scope covers the customer, oldest first."""
    return [m for m in measures if m.active_at(day) and m.scope.covers(customer_id, segment)]
