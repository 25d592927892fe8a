"""The ``rating:`` section of params.yaml: master scale, tiers/policy and reason settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rating.policy import RatingPolicy
from rating.reasons import MAX_REASONS, ReasonText
from rating.scale import MasterScale


class RatingConfig(BaseModel):
    """Rating configuration, versioned into every bundle; defaults work as they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: MasterScale = MasterScale()
    policy: RatingPolicy = RatingPolicy()
    reason_overrides: dict[str, ReasonText] = Field(default_factory=dict)
    """Feature name -> explicit reason texts replacing those derived from the spec."""
    max_reasons: int = Field(default=MAX_REASONS, ge=1, le=MAX_REASONS)

    @model_validator(mode="after")
    def _tiers_fit_scale(self) -> RatingConfig:
        self.policy.check_scale(self.scale)
        return self
