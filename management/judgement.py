"""Human judgement on the rating: assessments, overrides and expert ratings, on the audit chain.

* A qualitative assessment is one event, ``assessment.recorded`` (subject: the customer),
  carrying its answers, score, notches, questionnaire version and validity.
* An override and an expert rating are four-eyes proposals (`management.proposals`) of kind
  ``override`` / ``expert_rating``: proposed by anyone from analyst up, decided by an approver
  (a senior approver beyond ``max_approver_notches``) who is not the proposer.
* The rating of a customer at a date is its latest model decision in the audit log (written by
  ``/score``, ``/explain``, ``riskgrade score --record`` and ``riskgrade monitor --record``)
  at or before that date, with the judgement valid at that date applied by the pure chain
  `rating.chain.rate_customer`.

Validity is in rating dates: an assessment or approved override made for rating date ``as_of``
applies to ratings dated ``as_of <= day < valid_until`` (``valid_until``: ``validity_days``
after ``as_of`` when set, else the review frequency of the tier it rated). The moment it was
recorded or approved is in the chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from audit import AuditStore, EventRecord, StoredDecision, StoredEvent
from management.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from management.events import Actor, IsoTime, aware, iter_events, parse_time, utc_now
from management.lifecycle import stricter_at
from management.measures import active_measures
from management.proposals import (
    Proposal,
    ProposalState,
    ProposalStatus,
    decide,
    expire_due,
    get_proposal,
    list_proposals,
    propose,
    states_from_events,
)
from rating.chain import ChainReason, ModelDecision, RatedCustomer, rate_customer
from rating.judgement import (
    EXPERT_RATING_REASON,
    Assessment,
    AssessmentScore,
    JudgementConfig,
    JudgementError,
    Override,
    OverrideCheck,
    OverrideKind,
    OverrideStatus,
    Role,
    assessment_valid_at,
    check_override,
    override_valid_at,
    required_role,
    score_assessment,
    valid_until,
)
from rating.lifecycle import CustomerStatus, LifecycleConfig, Measure
from rating.policy import CreditPolicy, HardRuleHit, RatingPolicy, Tier
from rating.scale import MasterScale
from rating.sufficiency import SUFFICIENT, Sufficiency, SufficiencyReason

ASSESSMENT_RECORDED = "assessment.recorded"
OVERRIDE_KINDS = (OverrideKind.OVERRIDE.value, OverrideKind.EXPERT_RATING.value)
"""Proposal kinds of the rating's human judgement."""
MODEL_DECISION_KINDS = ("score", "explain", "batch")
"""Audit decision kinds that are model ratings (``/score``, ``/explain``, and batch runs:
`management.batch_decisions`)."""


@dataclass(frozen=True)
class RatingRules:
    """What judging a rating needs: the served scale and policy, and the judgement settings."""

    scale: MasterScale
    policy: RatingPolicy
    judgement: JudgementConfig
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    """Each customer status's effect on the policy."""


Segment = Mapping[str, str | None]
"""A customer's ``industry``, ``region`` and ``size_class`` (what measures' scopes match)."""


def decision_segment(decision: StoredDecision) -> Segment:
    """The segment a stored decision recorded (empty for decisions recorded without one)."""
    segment = decision.payload.get("segment")
    return dict(segment) if isinstance(segment, Mapping) else {}


class AssessmentRecord(BaseModel):
    """An assessment as recorded in the chain (in a rating and a customer's history)."""

    assessment_id: str
    customer_id: str
    analyst: str
    as_of: date
    valid_until: date
    questionnaire_version: str
    answers: dict[str, str]
    score: float
    notches: int
    comment: str
    recorded_at: IsoTime
    record_id: int


class AssessmentResponse(BaseModel):
    """A recorded assessment (``POST /assessments``): its id, score, notches and validity."""

    assessment_id: str
    customer_id: str
    score: float
    notches: int
    valid_until: date
    questionnaire_version: str


class OverrideView(BaseModel):
    """An override or expert rating: its proposal and decision (decider null while it waits)."""

    override_id: str
    kind: OverrideKind
    customer_id: str
    as_of: date
    decision_id: str | None
    base_grade: str
    proposed_grade: str
    notches: int
    reason_code: str
    reason_list_version: str | None
    valid_until: date
    required_role: Role
    status: ProposalStatus
    proposer: str
    proposed_at: IsoTime
    comment: str
    expires_at: IsoTime | None
    decided_by: str | None
    decider_role: str | None
    decided_at: IsoTime | None
    decision_comment: str | None

    @classmethod
    def of(cls, state: ProposalState) -> OverrideView:
        """The view of an override or expert rating proposal."""
        p = state.payload
        return cls(
            override_id=state.proposal_id,
            kind=OverrideKind(state.kind),
            customer_id=state.subject,
            as_of=p["as_of"],
            decision_id=p.get("decision_id"),
            base_grade=p["base_grade"],
            proposed_grade=p["proposed_grade"],
            notches=p["notches"],
            reason_code=p["reason_code"],
            reason_list_version=p.get("reason_list_version"),
            valid_until=p["valid_until"],
            required_role=state.required_role,
            status=state.status,
            proposer=state.proposer,
            proposed_at=state.proposed_at,
            comment=state.comment,
            expires_at=state.expires_at,
            decided_by=state.decided_by,
            decider_role=state.decider_role,
            decided_at=state.decided_at,
            decision_comment=state.decision_comment,
        )


class CustomerRatingView(BaseModel):
    """A customer's rating at a date: the model decision and each step of the rating chain."""

    customer_id: str
    as_of: date
    decision_id: str
    decision_as_of: date
    model_version: str
    pd: float
    model_grade: str
    model_tier: Tier
    qualitative_notches: int
    assessment_id: str | None
    assessment: AssessmentRecord | None
    adjusted_grade: str
    override: OverrideView | None
    final_grade: str
    tier: Tier
    policy: CreditPolicy
    status: CustomerStatus
    measures: list[str]
    reasons: list[ChainReason]
    insufficient_data: bool
    provisional: bool
    in_default: bool
    hard_rules: list[str]


class QueueItem(BaseModel):
    """A customer needing an expert rating, with the pending ones."""

    customer_id: str
    decision_id: str
    decision_as_of: date
    pd: float
    model_grade: str
    tier: Tier
    reasons: list[ChainReason]
    """The insufficient-data reasons."""
    pending_expert_ratings: list[str]


class Queue(BaseModel):
    """The analysts' queue at a date."""

    as_of: date
    customers: list[QueueItem]


class HistoryEntry(BaseModel):
    """One rating or people's event; ``type`` is ``rating``, ``assessment`` or the event kind.

    The kind-specific details follow the common fields.
    """

    model_config = ConfigDict(extra="allow")

    type: str
    record_id: int
    at: str
    actor: str


@dataclass(frozen=True)
class RecordedAssessment:
    """A qualitative assessment as recorded."""

    assessment: Assessment
    score: float
    answers: dict[str, str]
    comment: str
    recorded_at: datetime
    record_id: int

    def view(self) -> AssessmentRecord:
        """Its view."""
        a = self.assessment
        return AssessmentRecord(
            assessment_id=a.assessment_id,
            customer_id=a.customer_id,
            analyst=a.analyst,
            as_of=a.assessed_on,
            valid_until=a.valid_until,
            questionnaire_version=a.questionnaire_version,
            answers=self.answers,
            score=self.score,
            notches=a.notches,
            comment=self.comment,
            recorded_at=self.recorded_at,
            record_id=self.record_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return self.view().model_dump(mode="json")

    def receipt(self) -> dict[str, Any]:
        """JSON-ready answer to recording it (`AssessmentResponse`: part of its view)."""
        receipt = AssessmentResponse.model_validate(self.view(), from_attributes=True)
        return receipt.model_dump(mode="json")


@dataclass(frozen=True)
class CustomerRating:
    """A customer's rating at a date: the model decision it starts from and the chain's result."""

    as_of: date
    """The date asked for (judgement valid then is applied)."""
    decision: StoredDecision
    rated: RatedCustomer
    assessment: RecordedAssessment | None
    override: ProposalState | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: the decision, the parts of the chain, the final tier and policy."""
        r = self.rated
        return CustomerRatingView(
            customer_id=r.customer_id,
            as_of=self.as_of,
            decision_id=self.decision.decision_id,
            decision_as_of=_decision_as_of(self.decision),
            model_version=self.decision.model_version,
            pd=r.pd,
            model_grade=r.model_grade,
            model_tier=r.model_tier,
            qualitative_notches=r.qualitative_notches,
            assessment_id=r.assessment_id,
            assessment=self.assessment.view() if self.assessment else None,
            adjusted_grade=r.adjusted_grade,
            override=OverrideView.of(self.override) if self.override else None,
            final_grade=r.final_grade,
            tier=r.tier,
            policy=r.policy,
            status=CustomerStatus(r.status),
            measures=list(r.measures),
            reasons=list(r.reasons),
            insufficient_data=r.insufficient_data,
            provisional=r.provisional,
            in_default=r.in_default,
            hard_rules=list(r.hard_rules),
        ).model_dump(mode="json")


# --- assessments ---------------------------------------------------------------------------------


def check_actor(actor: Actor, least: Role, what: str) -> None:
    """Check ``actor`` holds ``least`` or a role above it on the judgement ladder.

    Raises:
        ForbiddenError: ``not_an_analyst`` / ``not_an_approver``, naming what was refused.
    """
    try:
        role = Role(actor.role)
    except ValueError:
        role = None
    if role is None or role.rank < least.rank:
        raise ForbiddenError(
            "not_an_analyst" if least is Role.ANALYST else "not_an_approver",
            f"role '{actor.role}' may not {what}; {least.value} or above needed",
        )


def _check_date(as_of: date, today: date, field: str = "as_of") -> None:
    if as_of > today:
        raise InvalidInputError(
            "future_date", f"{field} {as_of.isoformat()} is after today {today.isoformat()}", field
        )


@dataclass(frozen=True)
class AssessmentInput:
    """One assessment to record (from the API or a CSV row)."""

    customer_id: str
    as_of: date
    answers: Mapping[str, str]
    comment: str = ""


def assessment_event(
    rules: RatingRules,
    actor: Actor,
    item: AssessmentInput,
    tier: Tier | str,
    at: datetime,
    assessment_id: str | None = None,
) -> EventRecord:
    """The ``assessment.recorded`` event of a valid assessment (not yet appended).

    Args:
        rules: scale, policy and judgement settings.
        actor: the analyst.
        item: the assessment.
        tier: the tier it rates (its validity is that tier's review frequency by default).
        at: when it is recorded.
        assessment_id: its id (default a fresh one).

    Raises:
        JudgementError: unknown factor or answer, or a missing factor.
    """
    config = rules.judgement.qualitative
    scored: AssessmentScore = score_assessment(dict(item.answers), config)
    until = valid_until(item.as_of, tier, rules.policy, config.validity_days)
    assessment_id = assessment_id or uuid.uuid4().hex
    return EventRecord(
        event_id=f"assessment:{assessment_id}",
        kind=ASSESSMENT_RECORDED,
        actor=actor.name,
        role=actor.role,
        subject=item.customer_id,
        reason=item.comment,
        occurred_at=at,
        payload={
            "assessment_id": assessment_id,
            "as_of": item.as_of.isoformat(),
            "valid_until": until.isoformat(),
            "questionnaire_version": scored.questionnaire_version,
            "answers": dict(item.answers),
            "score": scored.score,
            "notches": scored.notches,
            "rated_tier": Tier(tier).value,
        },
    )


def record_assessment(
    store: AuditStore,
    rules: RatingRules,
    actor: Actor,
    item: AssessmentInput,
    *,
    at: datetime | None = None,
) -> RecordedAssessment:
    """Score and record a qualitative assessment (event ``assessment.recorded``).

    Its validity runs from ``as_of`` for the review frequency of the customer's tier at
    ``as_of`` (its latest model decision then; the provisional tier when it has none).

    Raises:
        ForbiddenError: ``not_an_analyst`` for a role below analyst.
        InvalidInputError: ``future_date`` for an ``as_of`` after today.
        JudgementError: unknown factor or answer, missing factor.
        AuditUnavailableError: if the store cannot commit.
    """
    at = aware(at or utc_now())
    check_actor(actor, Role.ANALYST, "record an assessment")
    _check_date(item.as_of, at.date())
    stored = store.append_event(
        assessment_event(rules, actor, item, rated_tier(store, rules, item), at)
    )
    return assessment_of(stored)


def rated_tier(store: AuditStore, rules: RatingRules, item: AssessmentInput) -> Tier:
    """The tier an assessment rates: its customer's model tier at ``as_of``, else provisional."""
    decision = latest_decision(store, item.customer_id, item.as_of)
    if decision is None:
        return rules.judgement.data_sufficiency.provisional_tier
    return Tier(decision.tier)


def assessment_of(event: StoredEvent) -> RecordedAssessment:
    """The assessment an ``assessment.recorded`` event holds."""
    p = event.payload
    return RecordedAssessment(
        assessment=Assessment(
            assessment_id=str(p["assessment_id"]),
            customer_id=event.subject,
            analyst=event.actor,
            assessed_on=date.fromisoformat(p["as_of"]),
            valid_until=date.fromisoformat(p["valid_until"]),
            questionnaire_version=str(p["questionnaire_version"]),
            notches=int(p["notches"]),
        ),
        score=float(p["score"]),
        answers=dict(p["answers"]),
        comment=event.reason,
        recorded_at=parse_time(event.occurred_at),
        record_id=event.id,
    )


def assessments(store: AuditStore, customer_id: str | None = None) -> list[RecordedAssessment]:
    """Every recorded assessment (of one customer when given), oldest first."""
    return [
        assessment_of(e) for e in iter_events(store, kind=ASSESSMENT_RECORDED, subject=customer_id)
    ]


# --- model decisions -----------------------------------------------------------------------------


def _decision_as_of(decision: StoredDecision) -> date:
    return date.fromisoformat(str(decision.payload["response"]["as_of"]))


def latest_decision(store: AuditStore, customer_id: str, as_of: date) -> StoredDecision | None:
    """The customer's latest model decision rated at or before ``as_of``, or None.

    Latest by rating date, then by record id (the later of two ratings of one date).
    """
    found = [
        d
        for d in store.export(customer_id=customer_id, rated_to=as_of)
        if d.kind in MODEL_DECISION_KINDS and isinstance(d.payload.get("response"), dict)
    ]
    if not found:
        return None
    return max(found, key=lambda d: (_decision_as_of(d), d.id))


def model_decision(decision: StoredDecision) -> ModelDecision:
    """The chain's input from a stored ``/score`` decision.

    PD, model grade, hard rules, default status and data sufficiency, as recorded.
    """
    return decision_of_response(decision.payload["response"])


def decision_of_response(response: Mapping[str, Any]) -> ModelDecision:
    """The chain's input from a ``/score`` response body (as answered or as recorded)."""
    hard_rules = tuple(
        HardRuleHit(code=h["code"], flag=h["flag"], text_en=h["text"], text_zh=h["text"])
        for h in response.get("hard_rules") or ()
    )
    return ModelDecision(
        customer_id=str(response["customer_id"]),
        pd=float(response["pd"]),
        model_grade=str(response.get("model_grade") or response["grade"]),
        hard_rules=hard_rules,
        in_default=response.get("default") is not None,
        sufficiency=sufficiency_of_response(response),
    )


def sufficiency_view(sufficiency: Sufficiency) -> dict[str, Any]:
    """How a response records data sufficiency (``sufficiency_of_response`` reads it back)."""
    return {
        "sufficient": sufficiency.sufficient,
        "reasons": [r.model_dump(mode="json") for r in sufficiency.reasons],
    }


def judged_response(
    response: Mapping[str, Any],
    rules: RatingRules,
    events: Iterable[StoredEvent],
    sufficiency: Sufficiency,
    *,
    measures: Sequence[Measure] = (),
    segment: Segment | None = None,
) -> dict[str, Any]:
    """A ``/score`` response with the rating chain applied at its ``as_of``.

    Adds ``data_sufficiency``, ``insufficient_data``, ``provisional``, ``model_grade``,
    ``qualitative_notches``, ``assessment_id``, ``override``, ``final_grade``, ``status``,
    ``measures`` and the chain's ``judgement_reasons`` (in the response's language); ``tier``
    and ``policy`` become the final grade's, made stricter by the status and measures.
    ``grade`` stays the model's (what audit replay reproduces).

    Args:
        response: the model's response (``customer_id``, ``as_of``, ``pd``, ``grade``,
            ``hard_rules``, ``default``, ``lang``).
        rules: scale, policy and judgement settings.
        events: the customer's management events (any kinds; those valid at ``as_of`` count).
        sufficiency: the customer's data sufficiency at ``as_of``.
        measures: emergency measures (those active at ``as_of`` covering ``segment`` apply).
        segment: the customer's ``industry``, ``region`` and ``size_class``.
    """
    out = dict(response)
    out["data_sufficiency"] = sufficiency_view(sufficiency)
    day = date.fromisoformat(str(response["as_of"]))
    rated, _, override = apply_judgement(
        decision_of_response(out), rules, day, events, measures=measures, segment=segment
    )
    zh = response.get("lang") == "zh"
    out.update(
        {
            "insufficient_data": rated.insufficient_data,
            "provisional": rated.provisional,
            "model_grade": rated.model_grade,
            "qualitative_notches": rated.qualitative_notches,
            "assessment_id": rated.assessment_id,
            "override": override_view(override) if override else None,
            "final_grade": rated.final_grade,
            "tier": rated.tier.value,
            "policy": rated.policy.model_dump(mode="json"),
            "status": rated.status,
            "measures": list(rated.measures),
            "judgement_reasons": [
                {"source": r.source, "code": r.code, "text": r.text_zh if zh else r.text_en}
                for r in rated.reasons
                if r.source not in ("hard_rule", "default")
            ],
        }
    )
    return out


def sufficiency_of_response(response: Mapping[str, Any]) -> Sufficiency:
    """The data sufficiency a stored response recorded (sufficient when it recorded none)."""
    recorded = response.get("data_sufficiency")
    if not isinstance(recorded, Mapping):
        return SUFFICIENT
    return Sufficiency(
        sufficient=bool(recorded.get("sufficient", True)),
        reasons=tuple(SufficiencyReason(**r) for r in recorded.get("reasons") or ()),
    )


# --- overrides and expert ratings ----------------------------------------------------------------


def override_of(state: ProposalState) -> Override:
    """The `rating.judgement.Override` of an override or expert-rating proposal."""
    p = state.payload
    as_of = date.fromisoformat(p["as_of"])
    status = {
        ProposalStatus.PENDING: OverrideStatus.PROPOSED,
        ProposalStatus.APPROVED: OverrideStatus.APPROVED,
        ProposalStatus.REJECTED: OverrideStatus.REJECTED,
        ProposalStatus.EXPIRED: OverrideStatus.EXPIRED,
    }[state.status]
    decided = status in (OverrideStatus.APPROVED, OverrideStatus.REJECTED)
    return Override(
        override_id=state.proposal_id,
        customer_id=state.subject,
        kind=OverrideKind(state.kind),
        proposer=state.proposer,
        proposed_on=as_of,
        base_grade=p["base_grade"],
        proposed_grade=p["proposed_grade"],
        reason_code=p["reason_code"],
        status=status,
        approver=state.decided_by if decided else None,
        decided_on=as_of if decided else None,
        valid_until=date.fromisoformat(p["valid_until"])
        if status is OverrideStatus.APPROVED
        else None,
    )


def override_view(state: ProposalState) -> dict[str, Any]:
    """JSON-ready view of an override or expert rating: proposal, decision, who and why."""
    return OverrideView.of(state).model_dump(mode="json")


@dataclass(frozen=True)
class OverrideInput:
    """An override (or expert rating) to propose."""

    customer_id: str
    as_of: date
    proposed_grade: str
    reason_code: str
    comment: str
    kind: OverrideKind = OverrideKind.OVERRIDE


def _check_proposal(rules: RatingRules, item: OverrideInput, rated: RatedCustomer) -> OverrideCheck:
    config = rules.judgement.overrides
    base = rated.adjusted_grade
    if item.kind is OverrideKind.EXPERT_RATING:
        if not rated.insufficient_data:
            raise ConflictError(
                "data_sufficient",
                f"customer {item.customer_id} has enough data for the model: propose an "
                "override, not an expert rating",
            )
        if item.reason_code != EXPERT_RATING_REASON:
            raise JudgementError(
                "unknown_reason",
                f"an expert rating takes reason code {EXPERT_RATING_REASON}, got "
                f"'{item.reason_code}'",
                "reason_code",
            )
        if item.proposed_grade == base:  # an expert may confirm the model's grade
            config.reason(item.reason_code)
            if (
                item.proposed_grade not in rules.scale.names
                or item.proposed_grade == rules.scale.default_grade
            ):
                raise JudgementError(
                    "unknown_grade",
                    f"proposed_grade '{item.proposed_grade}' is not a non-default grade of "
                    f"master scale {rules.scale.version}",
                    "proposed_grade",
                )
            if len(item.comment.strip()) < config.min_comment_chars:
                raise JudgementError(
                    "comment_required",
                    f"an expert rating needs a comment of at least {config.min_comment_chars} "
                    "characters",
                    "comment",
                )
            return OverrideCheck(
                base_grade=base,
                proposed_grade=base,
                notches=0,
                required_role=required_role(0, config),
            )
    elif item.reason_code == EXPERT_RATING_REASON:
        raise JudgementError(
            "unknown_reason",
            f"reason code {EXPERT_RATING_REASON} is for expert ratings (POST with kind "
            "expert_rating from the analysts' queue)",
            "reason_code",
        )
    return check_override(
        base, item.proposed_grade, item.reason_code, item.comment, rules.scale, config
    )


def propose_override(
    store: AuditStore,
    rules: RatingRules,
    actor: Actor,
    item: OverrideInput,
    *,
    at: datetime | None = None,
) -> ProposalState:
    """Propose an override (or expert rating) of the customer's rating at ``item.as_of``.

    It departs from the model-plus-qualitative grade of the customer's latest model decision
    at ``as_of``; it needs approval by somebody else (see `decide_override`) and expires after
    ``overrides.pending_days`` undecided.

    Raises:
        ForbiddenError: ``not_an_analyst``.
        InvalidInputError: ``future_date``.
        ConflictError: ``no_model_decision`` (nothing to override yet), ``data_sufficient``
            (an expert rating of a customer the model can rate).
        JudgementError: grade, reason, comment or size against the override rules.
        AuditUnavailableError: if the store cannot commit.
    """
    at = aware(at or utc_now())
    check_actor(actor, Role.ANALYST, f"propose an {item.kind.value.replace('_', ' ')}")
    _check_date(item.as_of, at.date())
    current = rating_at(store, rules, item.customer_id, item.as_of)
    if current is None:
        raise ConflictError(
            "no_model_decision",
            f"customer {item.customer_id} has no model decision at or before "
            f"{item.as_of.isoformat()}: score it (POST /score) before proposing an "
            f"{item.kind.value.replace('_', ' ')}",
            "customer_id",
        )
    checked = _check_proposal(rules, item, current.rated)
    config = rules.judgement.overrides
    tier = rules.policy.tier_of_grade(checked.proposed_grade)
    until = valid_until(item.as_of, tier, rules.policy, config.validity_days)
    proposal = Proposal(
        kind=item.kind.value,
        subject=item.customer_id,
        payload={
            "customer_id": item.customer_id,
            "as_of": item.as_of.isoformat(),
            "decision_id": current.decision.decision_id,
            "base_grade": checked.base_grade,
            "proposed_grade": checked.proposed_grade,
            "notches": checked.notches,
            "reason_code": item.reason_code,
            "reason_list_version": config.version,
            "valid_until": until.isoformat(),
        },
        required_role=checked.required_role,
        comment=item.comment,
        expires_at=at + timedelta(days=config.pending_days),
    )
    return propose(store, proposal, actor, at=at)


def decide_override(
    store: AuditStore,
    override_id: str,
    actor: Actor,
    *,
    approve: bool,
    comment: str,
    at: datetime | None = None,
) -> ProposalState:
    """Approve or reject an override or expert rating (four eyes, role by size).

    Raises:
        NotFoundError: no such override.
        ForbiddenError: ``four_eyes``, ``not_an_approver``, ``needs_senior_approver``.
        ConflictError: ``already_decided`` or ``expired``.
        AuditUnavailableError: if the store cannot commit.
    """
    state = _find_override(store, override_id)
    return decide(
        store, override_id, actor, approve=approve, comment=comment, kind=state.kind, at=at
    )


def _find_override(store: AuditStore, override_id: str) -> ProposalState:
    state = get_proposal(store, override_id)
    if state.kind not in OVERRIDE_KINDS:
        raise NotFoundError("not_found", f"no override {override_id}")
    return state


def get_override(store: AuditStore, override_id: str) -> ProposalState:
    """One override or expert rating by id.

    Raises:
        NotFoundError: no such override.
    """
    return _find_override(store, override_id)


def overrides(
    store: AuditStore,
    *,
    customer_id: str | None = None,
    status: ProposalStatus | None = None,
    now: datetime | None = None,
) -> list[ProposalState]:
    """Every override and expert rating (of one customer, in one status), oldest first."""
    found = [
        s
        for kind in OVERRIDE_KINDS
        for s in list_proposals(store, kind, subject=customer_id, status=status, now=now)
    ]
    return sorted(found, key=lambda s: s.proposal_record)


def expire_overrides(store: AuditStore, *, now: datetime | None = None) -> list[ProposalState]:
    """Record the expiry of every override and expert rating undecided past its expiry.

    A proposal expires ``overrides.pending_days`` after it was proposed; returns those expired
    by this call (event ``<kind>.expired``, by the system).
    """
    return [s for kind in OVERRIDE_KINDS for s in expire_due(store, kind, now=now)]


# --- the rating at a date ------------------------------------------------------------------------


def _valid_assessment(found: Iterable[RecordedAssessment], day: date) -> RecordedAssessment | None:
    valid = [a for a in found if assessment_valid_at(a.assessment, day)]
    return max(valid, key=lambda a: (a.assessment.assessed_on, a.record_id), default=None)


def _valid_override(found: Iterable[ProposalState], day: date) -> ProposalState | None:
    valid = [s for s in found if override_valid_at(override_of(s), day)]
    return max(valid, key=lambda s: (s.payload["as_of"], s.decision_record or 0), default=None)


def rate(
    decision: StoredDecision,
    rules: RatingRules,
    day: date,
    events: Iterable[StoredEvent],
    measures: Sequence[Measure] = (),
) -> CustomerRating:
    """Apply the judgement among ``events`` (the customer's) valid on ``day`` to ``decision``.

    ``events`` may hold any of the customer's events; only approved overrides and expert
    ratings, and assessments, valid on ``day`` count (the latest of each).
    """
    rated, assessment, override = apply_judgement(
        model_decision(decision),
        rules,
        day,
        events,
        measures=measures,
        segment=decision_segment(decision),
    )
    return CustomerRating(day, decision, rated, assessment, override)


def apply_judgement(
    decision: ModelDecision,
    rules: RatingRules,
    day: date,
    events: Iterable[StoredEvent],
    *,
    measures: Sequence[Measure] = (),
    segment: Segment | None = None,
) -> tuple[RatedCustomer, RecordedAssessment | None, ProposalState | None]:
    """The chain on ``decision`` with the people's decisions valid on ``day``.

    The latest assessment and approved override valid then, the customer's status then, and
    the emergency measures among ``measures`` active then whose scope covers ``segment``.
    """
    events = list(events)
    found = [assessment_of(e) for e in events if e.kind == ASSESSMENT_RECORDED]
    states = [s for s in states_from_events(events) if s.kind in OVERRIDE_KINDS]
    assessment = _valid_assessment(found, day)
    override = _valid_override(states, day)
    stricter = stricter_at(
        decision.customer_id,
        events,
        day,
        rules.lifecycle,
        measures=measures,
        segment=segment,
    )
    rated = rate_customer(
        decision,
        rules.scale,
        rules.policy,
        assessment=assessment.assessment if assessment else None,
        override=override_of(override) if override else None,
        stricter=stricter,
        sufficiency=rules.judgement.data_sufficiency,
    )
    return rated, assessment, override


def rating_at(
    store: AuditStore, rules: RatingRules, customer_id: str, as_of: date
) -> CustomerRating | None:
    """The customer's rating at ``as_of``, or None when it has no model decision by then.

    Its latest model decision at or before ``as_of``, with the judgement valid then applied.
    """
    decision = latest_decision(store, customer_id, as_of)
    if decision is None:
        return None
    events = iter_events(store, subject=customer_id)
    return rate(decision, rules, as_of, events, active_measures(store, as_of))


def history(store: AuditStore, customer_id: str) -> list[dict[str, Any]]:
    """Every rating, assessment and override event of a customer, in time order (chain order).

    Each entry: ``type`` (``rating``, ``assessment``, or the event kind such as
    ``override.proposed``), ``record_id``, ``at`` (when it was recorded) and its details.
    """
    entries: list[dict[str, Any]] = []
    for d in store.export(customer_id=customer_id):
        if d.kind not in MODEL_DECISION_KINDS or not isinstance(d.payload.get("response"), dict):
            continue
        response = d.payload["response"]
        entries.append(
            {
                "type": "rating",
                "record_id": d.id,
                "at": d.created_at,
                "actor": d.caller,
                "decision_id": d.decision_id,
                "as_of": response.get("as_of"),
                "pd": d.pd,
                "model_grade": response.get("model_grade", d.grade),
                "final_grade": response.get("final_grade", d.grade),
                "tier": response.get("tier", d.tier),
                "model_version": d.model_version,
            }
        )
    for e in iter_events(store, subject=customer_id):
        entry: dict[str, Any] = {
            "type": "assessment" if e.kind == ASSESSMENT_RECORDED else e.kind,
            "record_id": e.id,
            "at": e.occurred_at,
            "actor": e.actor,
            "role": e.role,
            "comment": e.reason,
        }
        if e.kind == ASSESSMENT_RECORDED:
            entry.update(assessment_of(e).to_dict())
        elif "proposal_id" in e.payload:
            entry["override_id"] = e.payload["proposal_id"]
            entry.update(e.payload.get("data") or {})
        else:
            entry["payload"] = e.payload
        entries.append(entry)
    return sorted(entries, key=lambda x: x["record_id"])


def insufficient_customers(
    store: AuditStore, rules: RatingRules, as_of: date
) -> list[CustomerRating]:
    """The analysts' queue: customers whose latest rating at ``as_of`` is provisional.

    Provisional: insufficient data and no approved expert rating valid then. Oldest decision
    first.
    """
    latest: dict[str, StoredDecision] = {}
    for d in store.export(rated_to=as_of):
        if d.kind not in MODEL_DECISION_KINDS or not isinstance(d.payload.get("response"), dict):
            continue
        previous = latest.get(d.customer_id)
        if previous is None or (_decision_as_of(d), d.id) > (
            _decision_as_of(previous),
            previous.id,
        ):
            latest[d.customer_id] = d
    queue = []
    measures = active_measures(store, as_of)
    for customer_id, decision in latest.items():
        if sufficiency_of_response(decision.payload["response"]).sufficient:
            continue
        rating = rate(decision, rules, as_of, iter_events(store, subject=customer_id), measures)
        if rating.rated.provisional:
            queue.append(rating)
    return sorted(queue, key=lambda r: r.decision.id)


def queue_view(store: AuditStore, rules: RatingRules, as_of: date) -> dict[str, Any]:
    """The analysts' queue at ``as_of`` (JSON-ready `Queue`).

    Customers needing an expert rating (`insufficient_customers`), each with its
    insufficient-data reasons and its pending expert ratings.
    """
    by_customer: dict[str, list[str]] = {}
    for proposal in overrides(store, status=ProposalStatus.PENDING):
        if proposal.kind == OverrideKind.EXPERT_RATING.value:
            by_customer.setdefault(proposal.subject, []).append(proposal.proposal_id)
    items = [
        QueueItem(
            customer_id=r.rated.customer_id,
            decision_id=r.decision.decision_id,
            decision_as_of=_decision_as_of(r.decision),
            pd=r.rated.pd,
            model_grade=r.rated.model_grade,
            tier=r.rated.tier,
            reasons=[c for c in r.rated.reasons if c.source == "insufficient_data"],
            pending_expert_ratings=by_customer.get(r.rated.customer_id, []),
        )
        for r in insufficient_customers(store, rules, as_of)
    ]
    return Queue(as_of=as_of, customers=items).model_dump(mode="json")
