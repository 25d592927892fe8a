"""Policy tiers over the master scale, the credit policy of each tier, and compliance hard rules.

Tiers follow the source document's risk classes: low, medium, high, and restricted (the worst
grades, the default grade, and any customer hit by a compliance hard rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.schema import DEFAULT_TYPES
from rating.defaults import default_section
from rating.scale import MasterScale


class PolicyError(ValueError):
    """The tier/policy configuration, or an input given to it, is invalid."""


class Tier(StrEnum):
    """Policy tiers, declared from the best to the worst."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        """Position in the tier order (0 = low risk, 3 = restricted)."""
        return TIER_ORDER.index(self)


TIER_ORDER: tuple[Tier, ...] = tuple(Tier)
"""Tiers from the best to the worst: low < medium < high < restricted."""


class CreditPolicy(BaseModel):
    """Credit conditions granted to customers of one tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credit_limit_factor: float = Field(ge=0.0, le=10.0)
    """Multiplier on the customer's standard credit limit (0 = no unsecured credit)."""
    max_payment_term_days: int = Field(ge=0, le=3650)
    collateral_required: bool
    guarantee_required: bool
    review_frequency_days: int = Field(gt=0, le=3650)
    new_credit_allowed: bool
    exit_review: bool
    """The relationship goes through the exit mechanism review."""


class TierDef(BaseModel):
    """One tier: its grades (contiguous on the master scale) and its credit policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: Tier
    label_en: str
    label_zh: str
    grades: tuple[str, ...] = Field(min_length=1)
    policy: CreditPolicy


class HardRule(BaseModel):
    """A compliance fact that forces the restricted tier whatever the PD."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^HR[0-9]{2}$")
    flag: str = Field(pattern=r"^flag_[a-z0-9_]+$")
    """Name of the 0/1 flag feature that fires the rule."""
    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)


class HardRuleHit(BaseModel):
    """A hard rule that fired for one customer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    flag: str
    text_en: str
    text_zh: str


class DefaultStatus(BaseModel):
    """A customer in default at the rating date: its first default on or before that date.

    A customer in default gets the master scale's default grade and the restricted tier
    whatever its model PD (the default grade is a status, not a PD band).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_date: date
    default_type: Literal[DEFAULT_TYPES]  # type: ignore[valid-type]  # values: the one tuple


def default_status(defaults: Iterable[tuple[date, str]], as_of: date) -> DefaultStatus | None:
    """Whether one customer is in default at ``as_of``, from its ``(default_date, type)`` records.

    Only defaults on or before ``as_of`` count; the first of them is the status (the customer
    has been in default since then). None: not in default.
    """
    known = [(day, kind) for day, kind in defaults if day <= as_of]
    if not known:
        return None
    day, kind = min(known)
    return DefaultStatus(default_date=day, default_type=kind)


class RatingPolicy(BaseModel):
    """Tiers (in order low, medium, high, restricted), their credit policies and hard rules.

    Fields not given come from the ``rating.policy`` section of the project's params.yaml
    (`rating.defaults`), the one place the default policy is written down.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    tiers: tuple[TierDef, ...]
    hard_rules: tuple[HardRule, ...]

    if TYPE_CHECKING:  # any subset of the fields: ``_fill_defaults`` completes it

        def __init__(self, **data: Any) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(cls.model_fields) - data.keys():
            return {**default_section("policy"), **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> RatingPolicy:
        found = tuple(t.tier for t in self.tiers)
        if found != TIER_ORDER:
            raise PolicyError(
                f"tiers must be exactly {[t.value for t in TIER_ORDER]} in that order, "
                f"got {[t.value for t in found]}"
            )
        grades = [g for t in self.tiers for g in t.grades]
        repeated = sorted({g for g in grades if grades.count(g) > 1})
        if repeated:
            raise PolicyError(f"grades assigned to more than one tier: {repeated}")
        for field in ("code", "flag"):
            values = [getattr(r, field) for r in self.hard_rules]
            if len(set(values)) != len(values):
                raise PolicyError(f"hard rule {field}s must be unique, got {values}")
        return self

    def check_scale(self, scale: MasterScale) -> None:
        """Check that the tiers partition the scale into contiguous runs of grades.

        Every grade belongs to exactly one tier, tiers follow the grade order, and the
        restricted tier holds the worst grades and the default grade.

        Raises:
            PolicyError: naming the first grade or tier that breaks this.
        """
        tier_grades = [g for t in self.tiers for g in t.grades]
        unknown = [g for g in tier_grades if g not in scale.names]
        if unknown:
            raise PolicyError(f"tiers name grades not on master scale {scale.version}: {unknown}")
        missing = [g for g in scale.names if g not in tier_grades]
        if missing:
            raise PolicyError(f"grades of master scale {scale.version} in no tier: {missing}")
        if tier_grades != scale.names:
            for tier in self.tiers:
                indices = [scale.index_of(g) for g in tier.grades]
                if indices != list(range(indices[0], indices[0] + len(indices))):
                    raise PolicyError(
                        f"tier '{tier.tier}' grades {list(tier.grades)} are not a contiguous "
                        f"run of the master scale in best-to-worst order"
                    )
            raise PolicyError(f"tiers are not ordered along the master scale: {tier_grades}")
        for tier in self.tiers:
            if tier.grades == (scale.default_grade,):
                raise PolicyError(
                    f"tier '{tier.tier}' holds only the default grade; every tier needs a PD band"
                )

    def tier_def(self, tier: Tier | str) -> TierDef:
        """Definition of one tier.

        Raises:
            PolicyError: for an unknown tier name.
        """
        for definition in self.tiers:
            if definition.tier == tier:
                return definition
        raise PolicyError(f"unknown tier '{tier}', expected one of {[t.value for t in TIER_ORDER]}")

    def policy_of_tier(self, tier: Tier | str) -> CreditPolicy:
        """Credit policy of a tier.

        Raises:
            PolicyError: for an unknown tier name.
        """
        return self.tier_def(tier).policy

    def tier_of_grade(self, grade: str) -> Tier:
        """Tier holding a grade.

        Raises:
            PolicyError: for a grade in no tier.
        """
        for definition in self.tiers:
            if grade in definition.grades:
                return definition.tier
        raise PolicyError(f"grade '{grade}' is in no tier of policy {self.version}")

    def tier_index_of_grade_index(self, scale: MasterScale) -> np.ndarray:
        """Lookup table: grade index on ``scale`` -> tier rank, for vectorised mapping."""
        return np.array([self.tier_of_grade(g).rank for g in scale.names], dtype=np.int64)

    def apply_hard_rules(self, flags: Mapping[str, float | bool | int]) -> list[HardRuleHit]:
        """Hard rules fired by one customer's flags, in rule order.

        Args:
            flags: flag name -> 0/1 (bool, int or float) for at least every rule's flag.

        Raises:
            PolicyError: if a rule's flag is missing or not 0/1.
        """
        columns = {name: np.asarray([value], dtype=np.float64) for name, value in flags.items()}
        return self.hard_rule_hits(columns)[0]

    def hard_rule_mask(
        self, flags: Mapping[str, np.ndarray], n_rows: int | None = None
    ) -> np.ndarray:
        """Vectorised hard rules: boolean matrix (customers x rules), True where a rule fires.

        Args:
            flags: flag name -> 1-D array of 0/1 values, one per customer.
            n_rows: expected number of customers (checked when given).

        Raises:
            PolicyError: if a rule's flag is missing, of the wrong length, or not 0/1 (NaN
                included: an unknown compliance status is an input error, not a pass).
        """
        columns = []
        lengths = {int(np.asarray(v).size) for v in flags.values()}
        if n_rows is not None:
            lengths.add(n_rows)
        if len(lengths) > 1:
            raise PolicyError(f"flag arrays differ in length (or from the rows): {sorted(lengths)}")
        n_rows = lengths.pop() if lengths else 0
        for rule in self.hard_rules:
            if rule.flag not in flags:
                raise PolicyError(
                    f"hard rule {rule.code} needs flag '{rule.flag}', which is missing"
                )
            values = np.asarray(flags[rule.flag], dtype=np.float64).reshape(-1)
            bad = ~np.isin(values, (0.0, 1.0))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise PolicyError(
                    f"flag '{rule.flag}' must be 0 or 1, got {float(values[row])} at row {row}"
                )
            columns.append(values == 1.0)
        if not columns:
            return np.zeros((n_rows, 0), dtype=bool)
        return np.column_stack(columns)

    def hard_rule_hits(
        self, flags: Mapping[str, np.ndarray], n_rows: int | None = None
    ) -> list[list[HardRuleHit]]:
        """Per customer, the hard rules fired (see `hard_rule_mask`)."""
        mask = self.hard_rule_mask(flags, n_rows)
        hits = [
            HardRuleHit(code=r.code, flag=r.flag, text_en=r.text_en, text_zh=r.text_zh)
            for r in self.hard_rules
        ]
        result: list[list[HardRuleHit]] = [[] for _ in range(mask.shape[0])]
        for i, j in np.argwhere(mask):  # row-major: rules stay in rule order
            result[i].append(hits[j])
        return result

    @property
    def flag_names(self) -> list[str]:
        """Flags the hard rules read."""
        return [r.flag for r in self.hard_rules]
