"""The ``rating:`` section of params.yaml: master scale, tiers/policy and reason settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.covenants import CovenantConfig
from features.synthetic_judgement import JudgementSpec, SpecFactor, SpecGrade
from features.synthetic_records import RecordGrade, RecordsSpec
from rating.defaults import rating_section
from rating.judgement import (
    EXPERT_RATING_REASON,
    DataSufficiencyConfig,
    JudgementConfig,
    OverrideConfig,
    QualitativeConfig,
)
from rating.lifecycle import LifecycleConfig
from rating.policy import RatingPolicy
from rating.reasons import MAX_REASONS, ReasonText
from rating.scale import MasterScale


class RatingConfig(BaseModel):
    """Rating configuration; defaults work as they are.

    Scale, policy and reasons are versioned into every bundle (training copies them);
    the human-judgement settings (questionnaire, override rules, data sufficiency) are not:
    they change under their own governance, carry their own version, and every assessment
    and override records the version it was made under.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: MasterScale = Field(default_factory=MasterScale)
    policy: RatingPolicy = Field(default_factory=RatingPolicy)
    reason_overrides: dict[str, ReasonText] = Field(default_factory=dict)
    """Feature name -> explicit reason texts replacing those derived from the spec."""
    max_reasons: int = Field(default=MAX_REASONS, ge=1, le=MAX_REASONS)
    qualitative: QualitativeConfig = QualitativeConfig()
    overrides: OverrideConfig = OverrideConfig()
    data_sufficiency: DataSufficiencyConfig = DataSufficiencyConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    """Customer statuses: transitions, four eyes and each status's effect on the policy."""

    @property
    def judgement(self) -> JudgementConfig:
        """The human-judgement settings as one object (what the rating chain needs)."""
        return JudgementConfig(
            qualitative=self.qualitative,
            overrides=self.overrides,
            data_sufficiency=self.data_sufficiency,
        )

    def generator_spec(self) -> JudgementSpec:
        """What the sample generator needs to write assessments and overrides in these terms."""
        reasons = [
            r.code for r in self.overrides.reasons if r.code not in (EXPERT_RATING_REASON, "OR99")
        ]
        return JudgementSpec(
            questionnaire_version=self.qualitative.version,
            factors=tuple(
                SpecFactor(
                    code=f.code,
                    weight=f.weight,
                    answers=tuple(a.code for a in f.answers),
                    scores=tuple(a.score for a in f.answers),
                )
                for f in self.qualitative.factors
            ),
            steps=tuple((s.min_score, s.notches) for s in self.qualitative.steps),
            grades=tuple(
                SpecGrade(
                    name=g.name,
                    upper=g.upper,
                    review_days=self.policy.policy_of_tier(
                        self.policy.tier_of_grade(g.name)
                    ).review_frequency_days,
                )
                for g in self.scale.grades
            ),
            reason_codes=tuple(reasons) or (self.overrides.reasons[0].code,),
            max_approver_notches=self.overrides.max_approver_notches,
            pending_days=self.overrides.pending_days,
        )

    def records_spec(self, covenants: CovenantConfig | None = None) -> RecordsSpec:
        """What the sample generator needs to write reviews and contract terms in these terms."""
        grades = []
        for grade in self.scale.grades:
            tier = self.policy.tier_of_grade(grade.name)
            grades.append(
                RecordGrade(
                    upper=grade.upper,
                    tier=tier.value,
                    review_days=self.policy.policy_of_tier(tier).review_frequency_days,
                )
            )
        return RecordsSpec(grades=tuple(grades), covenants=covenants or CovenantConfig())

    @model_validator(mode="after")
    def _tiers_fit_scale(self) -> RatingConfig:
        self.policy.check_scale(self.scale)
        self.judgement.check_scale(self.scale)
        return self


def default_rating_config(path: Path | None = None) -> RatingConfig:
    """The ``rating:`` section of a params file (default: the project's params.yaml) as config.

    Raises:
        rating.defaults.DefaultsError: if the file is unreadable or has no ``rating:`` mapping.
        pydantic.ValidationError: if the section is invalid.
    """
    return RatingConfig.model_validate(rating_section(path))
