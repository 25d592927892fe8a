"""Covenant templates: the contract terms each policy tier writes into a customer's contract.

A covenant compares one point-in-time feature with a threshold: ``max_debt_ratio`` is breached
when ``debt_ratio`` lies above it, ``min_interest_coverage`` and ``min_current_ratio`` when
``interest_coverage`` or ``current_ratio`` lies below it, and ``reporting_months`` (financial
reporting every N months) when the latest known statement's period ended more than N months
plus ``reporting_grace_days`` ago. Templates are keyed by tier name (``low`` ... ``restricted``);
features knows no tiers, the caller maps a grade to its tier.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Final, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.schema import COVENANTS, SCHEMAS


class Covenant(StrEnum):
    """A covenant code of the raw contract (``contract_terms.covenant``)."""

    MAX_DEBT_RATIO = "max_debt_ratio"
    MIN_INTEREST_COVERAGE = "min_interest_coverage"
    MIN_CURRENT_RATIO = "min_current_ratio"
    REPORTING_MONTHS = "reporting_months"


assert tuple(c.value for c in Covenant) == COVENANTS  # one list of codes, two spellings

COVENANT_FEATURES: Final[dict[Covenant, tuple[str, Literal["max", "min"]]]] = {
    Covenant.MAX_DEBT_RATIO: ("debt_ratio", "max"),
    Covenant.MIN_INTEREST_COVERAGE: ("interest_coverage", "min"),
    Covenant.MIN_CURRENT_RATIO: ("current_ratio", "min"),
    Covenant.REPORTING_MONTHS: ("months_since_period_end", "max"),
}
"""Covenant -> (financial feature observed, whether the threshold is a maximum or minimum)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CovenantTemplate(_Frozen):
    """One tier's covenants; a null entry is not part of that tier's contracts."""

    max_debt_ratio: float | None = Field(default=None, gt=0.0, le=10.0)
    min_interest_coverage: float | None = Field(default=None, ge=0.0, le=1000.0)
    min_current_ratio: float | None = Field(default=None, ge=0.0, le=100.0)
    reporting_months: int | None = Field(default=None, ge=1, le=24)

    def terms(self) -> dict[Covenant, float]:
        """Covenant -> threshold of the covenants this template sets."""
        return {c: float(v) for c in Covenant if (v := getattr(self, c.value)) is not None}


def _default_templates() -> dict[str, CovenantTemplate]:
    return {
        "low": CovenantTemplate(reporting_months=12),
        "medium": CovenantTemplate(max_debt_ratio=0.9, reporting_months=12),
        "high": CovenantTemplate(
            max_debt_ratio=0.85, min_interest_coverage=0.5, reporting_months=6
        ),
        "restricted": CovenantTemplate(
            max_debt_ratio=0.8, min_interest_coverage=1.0, min_current_ratio=0.8, reporting_months=3
        ),
    }


class CovenantConfig(_Frozen):
    """The ``covenants:`` section of params.yaml: per-tier templates and the reporting grace."""

    templates: dict[str, CovenantTemplate] = Field(default_factory=_default_templates)
    """Tier name -> the covenants its contracts carry."""
    reporting_grace_days: int = Field(default=120, ge=0, le=365)
    """Days after the end of a reporting period the statement may take to be published."""


def template_terms(
    customer_ids: list[str], tiers: list[str], effective: list[date], config: CovenantConfig
) -> pd.DataFrame:
    """Contract terms from each customer's tier template (``contract_terms`` rows).

    Args:
        customer_ids: customers whose contracts take the template.
        tiers: each customer's tier when the contract is written.
        effective: the day each contract's terms take effect.
        config: the templates.

    Returns:
        One row per (customer, covenant of its tier), no expiry, validated by the contract.
    """
    rows = [
        (customer, covenant.value, threshold, pd.Timestamp(day), pd.NaT)
        for customer, tier, day in zip(customer_ids, tiers, effective, strict=True)
        for covenant, threshold in config.templates.get(tier, CovenantTemplate()).terms().items()
    ]
    columns = list(SCHEMAS["contract_terms"].columns)
    return SCHEMAS["contract_terms"].validate(pd.DataFrame(rows, columns=columns))
