"""The ``rating:`` section of params.yaml: master scale, tiers/policy and reason settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rating.judgement import (
    DataSufficiencyConfig,
    JudgementConfig,
    OverrideConfig,
    QualitativeConfig,
)
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

    scale: MasterScale = MasterScale()
    policy: RatingPolicy = RatingPolicy()
    reason_overrides: dict[str, ReasonText] = Field(default_factory=dict)
    """Feature name -> explicit reason texts replacing those derived from the spec."""
    max_reasons: int = Field(default=MAX_REASONS, ge=1, le=MAX_REASONS)
    qualitative: QualitativeConfig = QualitativeConfig()
    overrides: OverrideConfig = OverrideConfig()
    data_sufficiency: DataSufficiencyConfig = DataSufficiencyConfig()

    @property
    def judgement(self) -> JudgementConfig:
        """The human-judgement settings as one object (what the rating chain needs)."""
        return JudgementConfig(
            qualitative=self.qualitative,
            overrides=self.overrides,
            data_sufficiency=self.data_sufficiency,
        )

    @model_validator(mode="after")
    def _tiers_fit_scale(self) -> RatingConfig:
        self.policy.check_scale(self.scale)
        self.judgement.check_scale(self.scale)
        return self
