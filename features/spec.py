"""The feature spec: one entry per model feature, shared by training, rating and serving.

Training takes monotone constraints (from ``risk_direction``) and categorical columns
from it; rating takes reason texts and feature groups from it; serving orders the
feature vector by it. It is serialised to JSON inside every model bundle.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class FeatureGroup(StrEnum):
    """The four feature groups of the rating (source document: rating dimensions)."""

    PROFILE = "profile"
    FINANCIAL = "financial"
    CREDIT = "credit"
    TRANSACTION = "transaction"


class RiskDirection(StrEnum):
    """Which way of the feature is riskier, used for monotone constraints and reasons."""

    UP = "up"
    """Higher values mean higher risk (monotone constraint +1)."""
    DOWN = "down"
    """Lower values mean higher risk (monotone constraint -1)."""
    NONE = "none"
    """No known direction (unconstrained)."""


class FeatureKind(StrEnum):
    """Storage kind of a feature value."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    FLAG = "flag"


class FeatureDef(BaseModel):
    """Definition of one model feature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    group: FeatureGroup
    description: str
    description_zh: str
    unit: str
    risk_direction: RiskDirection
    kind: FeatureKind = FeatureKind.NUMERIC
    categories: tuple[str, ...] = ()
    """Allowed levels of a categorical feature, in code order (index = integer code)."""
    protected: bool = False
    """A protected attribute: never used in the model nor named in a reason."""

    def category_label(self, value: float | None) -> str | None:
        """The level name of a categorical feature's value (its integer code), else None."""
        if not self.categories or value is None or not math.isfinite(value):
            return None
        code = int(value)
        return self.categories[code] if code == value and 0 <= code < len(self.categories) else None

    @property
    def monotone_constraint(self) -> int:
        """LightGBM monotone constraint: +1 riskier when up, -1 riskier when down, else 0."""
        return {RiskDirection.UP: 1, RiskDirection.DOWN: -1}.get(self.risk_direction, 0)


class FeatureSpec(BaseModel):
    """An ordered list of feature definitions; the order is the model's column order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    features: tuple[FeatureDef, ...]

    @property
    def names(self) -> list[str]:
        """Feature names in model order."""
        return [feature.name for feature in self.features]

    def by_name(self, name: str) -> FeatureDef:
        """Look up one feature definition.

        Raises:
            KeyError: if the spec has no feature of that name.
        """
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"feature '{name}' is not in the feature spec")

    def select(self, names: list[str]) -> FeatureSpec:
        """A spec restricted to ``names``, kept in the given order."""
        return FeatureSpec(version=self.version, features=tuple(self.by_name(n) for n in names))

    def to_json(self, path: Path) -> None:
        """Write the spec as indented JSON."""
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, path: Path) -> FeatureSpec:
        """Read a spec written by ``to_json``."""
        return cls.model_validate_json(path.read_text())
