"""The rating chain: model grade -> qualitative notches -> override -> stricter policy -> final.

Pure functions of typed inputs, so the API, batch scoring, monitoring and audit replay give
one answer. The rules:

* a valid qualitative assessment moves the model grade by its notches (positive improves),
  clamped to the non-default grades; a customer in default stays at the default grade;
* an approved, valid override (or expert rating) sets the final grade;
* the tier is the final grade's tier, made stricter (never better) by the hard rules and
  default status (restricted), by insufficient data without an expert rating (the provisional
  tier), and by any stricter-policy input (customer status, emergency measures);
* the credit policy is the final tier's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rating.judgement import (
    Assessment,
    DataSufficiencyConfig,
    Override,
    OverrideKind,
)
from rating.lifecycle import StricterPolicy, tighten
from rating.policy import CreditPolicy, HardRuleHit, RatingPolicy, Tier
from rating.scale import MasterScale
from rating.sufficiency import SUFFICIENT, Sufficiency


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChainInputError(ValueError):
    """An input of the rating chain does not fit the scale or the customer."""


class ModelDecision(_Frozen):
    """What the model and the hard rules said about one customer at the rating date."""

    customer_id: str
    pd: float = Field(ge=0.0, le=1.0)
    model_grade: str
    """The PD's band, or the default grade for a customer in default."""
    hard_rules: tuple[HardRuleHit, ...] = ()
    in_default: bool = False
    sufficiency: Sufficiency = SUFFICIENT


class ChainReason(_Frozen):
    """One step of the chain that shaped the final rating."""

    source: Literal[
        "hard_rule", "default", "qualitative", "override", "insufficient_data", "status", "measure"
    ]
    code: str
    text_en: str
    text_zh: str


class AppliedOverride(_Frozen):
    """The override (or expert rating) that set the final grade."""

    override_id: str
    kind: OverrideKind
    grade: str
    reason_code: str
    approver: str


class RatedCustomer(_Frozen):
    """The rating after human judgement, with every part shown."""

    customer_id: str
    pd: float
    model_grade: str
    model_tier: Tier
    qualitative_notches: int
    """Notches actually applied (after clamping to the scale)."""
    assessment_id: str | None
    adjusted_grade: str
    """Model-plus-qualitative grade: what an override departs from."""
    override: AppliedOverride | None
    final_grade: str
    tier: Tier
    policy: CreditPolicy
    reasons: tuple[ChainReason, ...]
    in_default: bool
    insufficient_data: bool
    provisional: bool
    """Insufficient data and no expert rating yet: the tier is provisional."""
    hard_rules: tuple[str, ...]
    status: str = "normal"
    """The customer's status (``rating.lifecycle.CustomerStatus``) at the rating date."""
    measures: tuple[str, ...] = ()
    """Ids of the emergency measures that applied."""


def _stricter(a: Tier, b: Tier) -> Tier:
    return a if a.rank >= b.rank else b


def adjust_grade(model_grade: str, notches: int, scale: MasterScale) -> str:
    """The model grade moved by ``notches`` (positive improves), within the non-default grades.

    The default grade never moves.

    Raises:
        ScaleError: for a grade not on the scale.
    """
    index = scale.index_of(model_grade)
    if index == scale.default_index:
        return model_grade
    moved = min(max(index - notches, 0), scale.n_grades - 1)
    return scale.names[moved]


def rate_customer(
    decision: ModelDecision,
    scale: MasterScale,
    policy: RatingPolicy,
    *,
    assessment: Assessment | None = None,
    override: Override | None = None,
    stricter: Sequence[StricterPolicy] = (),
    sufficiency: DataSufficiencyConfig | None = None,
) -> RatedCustomer:
    """Apply the human judgement valid at the rating date to one model decision.

    The caller selects what is valid at the rating date (`rating.judgement.assessment_valid_at`,
    `rating.judgement.override_valid_at`); this function applies it.

    Args:
        decision: model grade, PD, hard rules, default and data sufficiency.
        scale: the master scale.
        policy: tiers and credit policies.
        assessment: the valid qualitative assessment, if any.
        override: the approved, valid override or expert rating, if any.
        stricter: status and measure inputs (each can only make the tier stricter).
        sufficiency: the data-sufficiency rule (its provisional tier).

    Raises:
        ChainInputError: a grade not on the scale, or judgement of another customer.
    """
    sufficiency = sufficiency or DataSufficiencyConfig()
    names = scale.names
    if decision.model_grade not in names:
        raise ChainInputError(f"model grade '{decision.model_grade}' is not on the master scale")
    for record, kind in ((assessment, "assessment"), (override, "override")):
        if record is not None and record.customer_id != decision.customer_id:
            raise ChainInputError(
                f"{kind} of customer '{record.customer_id}' given for '{decision.customer_id}'"
            )
    default = scale.default_grade
    in_default = decision.in_default or decision.model_grade == default
    model_grade = default if in_default else decision.model_grade
    model_tier = policy.tier_of_grade(model_grade)
    reasons: list[ChainReason] = [
        ChainReason(source="hard_rule", code=h.code, text_en=h.text_en, text_zh=h.text_zh)
        for h in decision.hard_rules
    ]
    if in_default:
        reasons.append(
            ChainReason(
                source="default",
                code="DEF",
                text_en="In default: default grade, restricted tier",
                text_zh="已违约:违约等级,限制类",
            )
        )

    adjusted = adjust_grade(model_grade, assessment.notches if assessment else 0, scale)
    applied_notches = scale.index_of(model_grade) - scale.index_of(adjusted)
    if assessment is not None and applied_notches:
        direction = "improves" if applied_notches > 0 else "worsens"
        reasons.append(
            ChainReason(
                source="qualitative",
                code=f"QA{applied_notches:+d}",
                text_en=f"Qualitative assessment {direction} the grade by {abs(applied_notches)} "
                f"notch(es)",
                text_zh=f"定性评估调整{applied_notches:+d}级",
            )
        )

    applied: AppliedOverride | None = None
    final = adjusted
    if override is not None and not in_default:
        if override.proposed_grade not in names or override.proposed_grade == default:
            raise ChainInputError(
                f"override {override.override_id} grade '{override.proposed_grade}' is not a "
                f"non-default grade of the master scale"
            )
        applied = AppliedOverride(
            override_id=override.override_id,
            kind=override.kind,
            grade=override.proposed_grade,
            reason_code=override.reason_code,
            approver=override.approver or "",
        )
        final = override.proposed_grade
        reasons.append(
            ChainReason(
                source="override",
                code=override.reason_code,
                text_en=f"{override.kind.value.replace('_', ' ').capitalize()} to grade {final}, "
                f"approved by {override.approver}",
                text_zh=f"人工调整至{final}级(审批人:{override.approver})",
            )
        )

    tier = policy.tier_of_grade(final)
    if decision.hard_rules or in_default:
        tier = Tier.RESTRICTED
    expert = applied is not None and applied.kind is OverrideKind.EXPERT_RATING
    insufficient = not decision.sufficiency.sufficient and not in_default
    provisional = insufficient and not expert
    if provisional:
        floor = Tier.RESTRICTED if decision.hard_rules else sufficiency.provisional_tier
        tier = floor if applied is None else _stricter(tier, floor)
        reasons.extend(
            ChainReason(
                source="insufficient_data", code=r.code, text_en=r.text_en, text_zh=r.text_zh
            )
            for r in decision.sufficiency.reasons
        )
    for item in stricter:
        minimum = item.effect.min_tier
        if minimum is not None and minimum.rank > tier.rank:
            tier = minimum
        reasons.append(
            ChainReason(
                source=item.source, code=item.ref, text_en=item.text_en, text_zh=item.text_zh
            )
        )
    credit_policy = policy.policy_of_tier(tier)
    for item in stricter:
        credit_policy = tighten(credit_policy, item.effect)
    return RatedCustomer(
        customer_id=decision.customer_id,
        pd=decision.pd,
        model_grade=model_grade,
        model_tier=model_tier,
        qualitative_notches=applied_notches,
        assessment_id=assessment.assessment_id if assessment else None,
        adjusted_grade=adjusted,
        override=applied,
        final_grade=final,
        tier=tier,
        policy=credit_policy,
        reasons=tuple(reasons),
        in_default=in_default,
        insufficient_data=insufficient,
        provisional=provisional,
        hard_rules=tuple(h.code for h in decision.hard_rules),
        status=next(
            (str(item.status) for item in stricter if item.source == "status" and item.status),
            "normal",
        ),
        measures=tuple(item.ref for item in stricter if item.source == "measure"),
    )
