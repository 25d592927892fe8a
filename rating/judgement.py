"""Human judgement in the rating: the qualitative questionnaire, overrides and four-eyes rules.

Everything here is configuration and pure rules; recording proposals, approvals and their audit
records is the management package's job, which calls these functions.

* **Qualitative assessment.** A versioned questionnaire (English and Chinese): each factor has
  a weight and ordered answers (best first), each answer a score in ``[-1, 1]``. The weighted
  mean score of a complete assessment maps, through ordered thresholds, onto a bounded number
  of notches; a positive notch improves the grade (grade 6 with +1 notch becomes 5).
* **Overrides.** An analyst proposes a final grade different from the model-plus-qualitative
  grade with a reason code from a versioned list and a comment; an approver who is not the
  proposer approves it, a senior approver when it moves more than ``max_approver_notches``.
* **Validity.** An assessment and an approved override are valid from their date until their
  ``valid_until`` date (exclusive): by default the next review date of the tier they rated.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rating.policy import RatingPolicy, Tier
from rating.scale import MasterScale


class JudgementError(ValueError):
    """An assessment, override or approval breaks a rule; ``code`` and ``field`` name it.

    The codes are stable (an API maps them onto its error schema): ``unknown_factor``,
    ``unknown_answer``, ``missing_factor``, ``unknown_grade``, ``default_grade``, ``same_grade``,
    ``unknown_reason``, ``comment_required``, ``too_many_notches``, ``not_an_analyst``.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- configuration ------------------------------------------------------------------------------


class Answer(_Frozen):
    """One answer to a factor: a stable code, its texts and its score (+1 best, -1 worst)."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)
    score: float = Field(ge=-1.0, le=1.0)


class Factor(_Frozen):
    """One question of the questionnaire, its weight and its answers, best first."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)
    weight: float = Field(gt=0.0, le=100.0)
    answers: tuple[Answer, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _ordered(self) -> Factor:
        codes = [a.code for a in self.answers]
        if len(set(codes)) != len(codes):
            raise ValueError(f"factor '{self.code}': answer codes must be unique, got {codes}")
        for better, worse in itertools.pairwise(self.answers):
            if not better.score > worse.score:
                raise ValueError(
                    f"factor '{self.code}': answers must be listed best first with strictly "
                    f"decreasing scores, but '{better.code}' ({better.score}) is not above "
                    f"'{worse.code}' ({worse.score})"
                )
        return self

    def answer(self, code: str) -> Answer:
        """The answer with this code.

        Raises:
            JudgementError: ``unknown_answer``, naming the factor and the known answers.
        """
        for answer in self.answers:
            if answer.code == code:
                return answer
        raise JudgementError(
            "unknown_answer",
            f"factor '{self.code}' has no answer '{code}'; expected one of "
            f"{[a.code for a in self.answers]}",
            f"answers.{self.code}",
        )


class NotchStep(_Frozen):
    """Scores at or above ``min_score`` (and below the previous step's) give ``notches``."""

    min_score: float = Field(ge=-1.0, le=1.0)
    notches: int = Field(ge=-9, le=9)


def _default_factors() -> tuple[Factor, ...]:
    def answers(*rows: tuple[str, str, str, float]) -> tuple[Answer, ...]:
        return tuple(Answer(code=c, text_en=en, text_zh=zh, score=s) for c, en, zh, s in rows)

    strong = ("strong", "Strong", "强", 1.0)
    adequate = ("adequate", "Adequate", "尚可", 0.3)
    weak = ("weak", "Weak", "较弱", -0.4)
    poor = ("poor", "Poor", "差", -1.0)
    return (
        Factor(
            code="management",
            text_en="Management quality and integrity",
            text_zh="管理层素质与诚信",
            weight=0.2,
            answers=answers(strong, adequate, weak, poor),
        ),
        Factor(
            code="market_position",
            text_en="Market position and industry outlook",
            text_zh="市场地位与行业前景",
            weight=0.2,
            answers=answers(strong, adequate, weak, poor),
        ),
        Factor(
            code="governance",
            text_en="Ownership and governance",
            text_zh="股权结构与公司治理",
            weight=0.15,
            answers=answers(strong, adequate, weak, poor),
        ),
        Factor(
            code="transparency",
            text_en="Information transparency and cooperation",
            text_zh="信息透明度与配合程度",
            weight=0.15,
            answers=answers(strong, adequate, weak, poor),
        ),
        Factor(
            code="collateral",
            text_en="Collateral and guarantee quality",
            text_zh="抵押与担保质量",
            weight=0.15,
            answers=answers(strong, adequate, weak, poor),
        ),
        Factor(
            code="due_diligence",
            text_en="Due-diligence findings (litigation, related parties, adverse media)",
            text_zh="尽职调查发现(诉讼、关联方、负面舆情)",
            weight=0.15,
            answers=answers(
                ("clean", "No findings", "无发现", 1.0),
                ("minor", "Minor findings", "轻微问题", 0.2),
                ("material", "Material findings", "重大问题", -0.6),
                ("severe", "Severe findings", "严重问题", -1.0),
            ),
        ),
    )


def _default_steps() -> tuple[NotchStep, ...]:
    return (
        NotchStep(min_score=0.7, notches=2),
        NotchStep(min_score=0.35, notches=1),
        NotchStep(min_score=-0.2, notches=0),
        NotchStep(min_score=-0.6, notches=-1),
        NotchStep(min_score=-1.0, notches=-2),
    )


class QualitativeConfig(_Frozen):
    """The versioned questionnaire and how its score moves the model grade."""

    version: str = Field(default="qa-2026.1", min_length=1)
    factors: tuple[Factor, ...] = Field(default_factory=_default_factors, min_length=1)
    min_notches: int = Field(default=-2, ge=-9, le=0)
    """Most notches an assessment may worsen the grade by (negative)."""
    max_notches: int = Field(default=2, ge=0, le=9)
    """Most notches an assessment may improve the grade by."""
    steps: tuple[NotchStep, ...] = Field(default_factory=_default_steps, min_length=1)
    """Score thresholds, highest first; the last must start at -1 so every score maps."""
    validity_days: int | None = Field(default=None, ge=1, le=3650)
    """Days an assessment stays valid; None: the review frequency of the tier it rated."""

    @model_validator(mode="after")
    def _consistent(self) -> QualitativeConfig:
        codes = [f.code for f in self.factors]
        if len(set(codes)) != len(codes):
            raise ValueError(f"factors: codes must be unique, got {codes}")
        for higher, lower in itertools.pairwise(self.steps):
            if not (higher.min_score > lower.min_score and higher.notches > lower.notches):
                raise ValueError(
                    f"steps: min_score and notches must both decrease down the list, but "
                    f"{higher.min_score}->{higher.notches} comes before "
                    f"{lower.min_score}->{lower.notches}"
                )
        if self.steps[-1].min_score != -1.0:
            raise ValueError(
                f"steps: the last step must start at -1.0 so every score maps, "
                f"got {self.steps[-1].min_score}"
            )
        for step in self.steps:
            if not self.min_notches <= step.notches <= self.max_notches:
                raise ValueError(
                    f"steps: {step.notches} notches outside the bounds "
                    f"[min_notches {self.min_notches}, max_notches {self.max_notches}]"
                )
        return self

    def factor(self, code: str) -> Factor:
        """The factor with this code.

        Raises:
            JudgementError: ``unknown_factor``, naming the known factors.
        """
        for factor in self.factors:
            if factor.code == code:
                return factor
        raise JudgementError(
            "unknown_factor",
            f"questionnaire {self.version} has no factor '{code}'; expected "
            f"{[f.code for f in self.factors]}",
            f"answers.{code}",
        )

    def notches_of(self, score: float) -> int:
        """Notches given by a weighted score in ``[-1, 1]`` (bounded by the config)."""
        for step in self.steps:
            if score >= step.min_score:
                return step.notches
        return self.steps[-1].notches


class ReasonCode(_Frozen):
    """A reason an analyst may give for an override."""

    code: str = Field(pattern=r"^OR[0-9]{2}$")
    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)


EXPERT_RATING_REASON = "OR07"
"""Reason code of an expert rating for a customer with insufficient data."""


def _default_reasons() -> tuple[ReasonCode, ...]:
    rows = (
        ("OR01", "Recent event not yet in the data", "数据尚未反映的近期事件"),
        ("OR02", "Parent or group support", "母公司或集团支持"),
        ("OR03", "Collateral or guarantee not captured by the model", "模型未反映的抵押或担保"),
        ("OR04", "Industry or market outlook", "行业或市场前景"),
        ("OR05", "Management or ownership change", "管理层或股权变更"),
        ("OR06", "Known error in the model's input data", "模型输入数据存在已知错误"),
        (EXPERT_RATING_REASON, "Expert rating: too little data for the model", "专家评级:数据不足"),
        ("OR08", "Legal or compliance matter not flagged", "未标记的法律或合规事项"),
        ("OR99", "Other (explained in the comment)", "其他(见备注)"),
    )
    return tuple(ReasonCode(code=c, text_en=en, text_zh=zh) for c, en, zh in rows)


class OverrideConfig(_Frozen):
    """The versioned override reason list and the approval rules."""

    version: str = Field(default="or-2026.1", min_length=1)
    reasons: tuple[ReasonCode, ...] = Field(default_factory=_default_reasons, min_length=1)
    max_approver_notches: int = Field(default=2, ge=1, le=9)
    """Overrides moving more notches than this need the senior approver role."""
    max_notches: int = Field(default=9, ge=1, le=9)
    """No override may move more notches than this (whatever the role)."""
    min_comment_chars: int = Field(default=10, ge=1, le=1000)
    pending_days: int = Field(default=30, ge=1, le=365)
    """A proposal not decided within this many days expires."""
    validity_days: int | None = Field(default=None, ge=1, le=3650)
    """Days an approved override stays valid; None: the review frequency of its tier."""

    @model_validator(mode="after")
    def _consistent(self) -> OverrideConfig:
        codes = [r.code for r in self.reasons]
        if len(set(codes)) != len(codes):
            raise ValueError(f"reasons: codes must be unique, got {codes}")
        if self.max_approver_notches > self.max_notches:
            raise ValueError(
                f"max_approver_notches ({self.max_approver_notches}) exceeds max_notches "
                f"({self.max_notches})"
            )
        return self

    def reason(self, code: str) -> ReasonCode:
        """The reason with this code.

        Raises:
            JudgementError: ``unknown_reason``, naming the known codes.
        """
        for reason in self.reasons:
            if reason.code == code:
                return reason
        raise JudgementError(
            "unknown_reason",
            f"override reason list {self.version} has no code '{code}'; expected one of "
            f"{[r.code for r in self.reasons]}",
            "reason_code",
        )


DataSource = Literal["statement", "facility"]


class DataSufficiencyConfig(_Frozen):
    """When the model has too little to go on (see `rating.sufficiency`)."""

    max_months_since_statement: int = Field(default=18, ge=1, le=120)
    """A statement published within this many months counts as recent financial data."""
    any_of: tuple[DataSource, ...] = Field(default=("statement", "facility"), min_length=1)
    """Sufficient needs at least one of these: a recent statement, a facility history."""
    min_transaction_months: int = Field(default=0, ge=0, le=12)
    """And at least this many of the last 12 months with a transaction (0: not required)."""
    provisional_tier: Tier = Tier.HIGH
    """Tier given, until an expert rating, when the hard rules give a better one."""


class JudgementConfig(_Frozen):
    """The ``rating:`` settings of human judgement (not versioned into model bundles)."""

    qualitative: QualitativeConfig = QualitativeConfig()
    overrides: OverrideConfig = OverrideConfig()
    data_sufficiency: DataSufficiencyConfig = DataSufficiencyConfig()

    def check_scale(self, scale: MasterScale) -> None:
        """Check the notch bounds fit the master scale.

        Raises:
            ValueError: naming the key whose bound is wider than the scale.
        """
        span = scale.n_grades - 1
        for key, value in (
            ("qualitative.max_notches", self.qualitative.max_notches),
            ("qualitative.min_notches", -self.qualitative.min_notches),
        ):
            if value > span:
                raise ValueError(
                    f"{key} ({value}) exceeds the {span} notches between the best and worst "
                    f"grade of master scale {scale.version}"
                )


# --- assessments ---------------------------------------------------------------------------------


class AssessmentScore(_Frozen):
    """A scored assessment: the weighted score and the notches it gives."""

    questionnaire_version: str
    score: float
    """Weighted mean of the answers' scores, in ``[-1, 1]``."""
    notches: int
    """Notches on the model grade (positive improves), within the configured bounds."""


def score_assessment(answers: dict[str, str], config: QualitativeConfig) -> AssessmentScore:
    """Score a complete assessment: factor code -> answer code, every factor answered.

    Raises:
        JudgementError: ``unknown_factor``, ``unknown_answer`` or ``missing_factor``, naming it.
    """
    for code in answers:
        config.factor(code)
    missing = [f.code for f in config.factors if f.code not in answers]
    if missing:
        raise JudgementError(
            "missing_factor",
            f"assessment under questionnaire {config.version} lacks factor(s) {missing}",
            f"answers.{missing[0]}",
        )
    total = sum(f.weight for f in config.factors)
    score = sum(f.weight * f.answer(answers[f.code]).score for f in config.factors) / total
    score = min(1.0, max(-1.0, score))
    return AssessmentScore(
        questionnaire_version=config.version, score=score, notches=config.notches_of(score)
    )


class Assessment(_Frozen):
    """A recorded qualitative assessment of one customer."""

    assessment_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    analyst: str = Field(min_length=1)
    assessed_on: date
    valid_until: date
    """First day it is no longer valid."""
    questionnaire_version: str
    notches: int

    def valid_at(self, day: date) -> bool:
        """Whether it applies to a rating at ``day``."""
        return assessment_valid_at(self, day)


def assessment_valid_at(assessment: Assessment, day: date) -> bool:
    """Whether an assessment applies on ``day``: ``assessed_on <= day < valid_until``."""
    return assessment.assessed_on <= day < assessment.valid_until


def valid_until(
    start: date, tier: Tier | str, policy: RatingPolicy, validity_days: int | None
) -> date:
    """End of validity (exclusive) of a judgement made on ``start`` for a customer in ``tier``.

    ``validity_days`` when set, else the tier's review frequency (valid until the next review).
    """
    days = validity_days or policy.policy_of_tier(tier).review_frequency_days
    return start + timedelta(days=days)


# --- overrides and four eyes ---------------------------------------------------------------------


class Role(StrEnum):
    """Roles of people, from the least to the most authority."""

    ANALYST = "analyst"
    APPROVER = "approver"
    SENIOR_APPROVER = "senior_approver"

    @property
    def rank(self) -> int:
        """0 = analyst, 2 = senior approver."""
        return list(Role).index(self)


class OverrideKind(StrEnum):
    """An override of a rated customer, or the expert rating of one with insufficient data."""

    OVERRIDE = "override"
    EXPERT_RATING = "expert_rating"


class OverrideStatus(StrEnum):
    """Where an override stands."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class OverrideCheck(_Frozen):
    """An admissible proposal: its size and the role that must approve it."""

    base_grade: str
    proposed_grade: str
    notches: int
    """Signed notches from the base grade (positive: the proposal improves the grade)."""
    required_role: Role


def override_notches(base_grade: str, proposed_grade: str, scale: MasterScale) -> int:
    """Signed notches from ``base_grade`` to ``proposed_grade`` (positive improves)."""
    return scale.index_of(base_grade) - scale.index_of(proposed_grade)


def check_override(
    base_grade: str,
    proposed_grade: str,
    reason_code: str,
    comment: str,
    scale: MasterScale,
    config: OverrideConfig,
    proposer_role: Role = Role.ANALYST,
) -> OverrideCheck:
    """Check an override proposal against the rules.

    Args:
        base_grade: the model-plus-qualitative grade the proposal departs from.
        proposed_grade: the final grade proposed (a non-default grade: default is a status).
        reason_code: a code of the override reason list.
        comment: the proposer's explanation.
        scale: the master scale.
        config: override rules.
        proposer_role: role of the proposer (any role may propose).

    Raises:
        JudgementError: ``unknown_grade``, ``default_grade``, ``same_grade``,
            ``unknown_reason``, ``comment_required`` or ``too_many_notches``.
    """
    del proposer_role  # every role may propose; kept for the callers' symmetry
    for field, grade in (("base_grade", base_grade), ("proposed_grade", proposed_grade)):
        if grade not in scale.names:
            raise JudgementError(
                "unknown_grade",
                f"{field} '{grade}' is not on master scale {scale.version}; expected one of "
                f"{scale.names}",
                field,
            )
        if grade == scale.default_grade:
            raise JudgementError(
                "default_grade",
                f"{field} is the default grade '{grade}': default is a status, not overridden",
                field,
            )
    if proposed_grade == base_grade:
        raise JudgementError(
            "same_grade",
            f"proposed grade '{proposed_grade}' equals the model-plus-qualitative grade",
            "proposed_grade",
        )
    config.reason(reason_code)
    if len(comment.strip()) < config.min_comment_chars:
        raise JudgementError(
            "comment_required",
            f"an override needs a comment of at least {config.min_comment_chars} characters",
            "comment",
        )
    notches = override_notches(base_grade, proposed_grade, scale)
    if abs(notches) > config.max_notches:
        raise JudgementError(
            "too_many_notches",
            f"override moves {abs(notches)} notches, more than the {config.max_notches} allowed",
            "proposed_grade",
        )
    return OverrideCheck(
        base_grade=base_grade,
        proposed_grade=proposed_grade,
        notches=notches,
        required_role=required_role(notches, config),
    )


def required_role(notches: int, config: OverrideConfig) -> Role:
    """Role needed to approve an override of ``notches`` (signed or not)."""
    return Role.SENIOR_APPROVER if abs(notches) > config.max_approver_notches else Role.APPROVER


class ApprovalDecision(_Frozen):
    """Whether a person may approve (or reject) a proposal, and why not."""

    allowed: bool
    code: Literal["ok", "four_eyes", "not_an_approver", "needs_senior_approver"]
    message: str


def can_approve(
    proposer: str, approver: str, role: Role, notches: int, config: OverrideConfig
) -> ApprovalDecision:
    """Four-eyes rule: may ``approver`` (holding ``role``) decide on ``proposer``'s proposal?

    The proposer never decides on their own proposal; an analyst decides on none; an override
    beyond ``config.max_approver_notches`` needs a senior approver.
    """
    if approver.strip().casefold() == proposer.strip().casefold():
        return ApprovalDecision(
            allowed=False,
            code="four_eyes",
            message=f"'{approver}' proposed this and may not decide on it (four eyes)",
        )
    if role.rank < Role.APPROVER.rank:
        return ApprovalDecision(
            allowed=False,
            code="not_an_approver",
            message=f"role '{role}' may not approve; approver or senior_approver needed",
        )
    needed = required_role(notches, config)
    if role.rank < needed.rank:
        return ApprovalDecision(
            allowed=False,
            code="needs_senior_approver",
            message=(
                f"an override of {abs(notches)} notches exceeds the approver's limit of "
                f"{config.max_approver_notches}: a senior_approver must decide"
            ),
        )
    return ApprovalDecision(allowed=True, code="ok", message="approved under four eyes")


class Override(_Frozen):
    """A recorded override (or expert rating) and its decision."""

    override_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    kind: OverrideKind = OverrideKind.OVERRIDE
    proposer: str = Field(min_length=1)
    proposed_on: date
    base_grade: str
    proposed_grade: str
    reason_code: str
    status: OverrideStatus
    approver: str | None = None
    decided_on: date | None = None
    valid_until: date | None = None
    """First day an approved override no longer applies."""

    @model_validator(mode="after")
    def _decided(self) -> Override:
        if self.status in (OverrideStatus.APPROVED, OverrideStatus.REJECTED):
            if self.approver is None or self.decided_on is None:
                raise ValueError(f"a {self.status} override needs its approver and decided_on")
            if self.decided_on < self.proposed_on:
                raise ValueError("decided_on precedes proposed_on")
        if self.status is OverrideStatus.APPROVED and self.valid_until is None:
            raise ValueError("an approved override needs valid_until")
        return self


def override_status_at(override: Override, day: date, config: OverrideConfig) -> OverrideStatus:
    """Status on ``day`` of an override proposed on or before it.

    A proposal undecided after ``config.pending_days`` is expired; an approval is expired from
    its ``valid_until``; a decision made after ``day`` is not known yet (still proposed).
    """
    decided = override.decided_on is not None and override.decided_on <= day
    if override.status in (OverrideStatus.APPROVED, OverrideStatus.REJECTED) and decided:
        lapsed = override.valid_until is not None and day >= override.valid_until
        if override.status is OverrideStatus.APPROVED and lapsed:
            return OverrideStatus.EXPIRED
        return override.status
    if day >= override.proposed_on + timedelta(days=config.pending_days):
        return OverrideStatus.EXPIRED
    return OverrideStatus.PROPOSED


def override_valid_at(override: Override, day: date) -> bool:
    """Whether an override sets the final grade on ``day``: approved by then and not expired."""
    return (
        override.status is OverrideStatus.APPROVED
        and override.decided_on is not None
        and override.decided_on <= day
        and override.valid_until is not None
        and day < override.valid_until
    )
