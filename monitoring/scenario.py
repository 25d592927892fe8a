"""Stress scenarios: named macro shocks by industry and region, loaded from YAML.

A scenario is a list of shock entries. Each entry names the industries and regions it hits
(none named: all) and how hard, on the raw point-in-time records the features are computed
from (`monitoring.stress.apply_shocks`):

* ``revenue``: relative fall of the latest known statement's revenue; operating costs are held
  (short run), so the lost revenue comes off operating profit, net income and operating cash
  flow;
* ``operating_margin``: share of (shocked) revenue moved from profit to operating costs (price
  pressure, input costs), also off net income and operating cash flow;
* ``cash_flow``: further relative fall of operating cash flow (of its absolute value, so a
  negative cash flow gets more negative);
* the operating cash lost by these three is borrowed short term: current and total
  liabilities of the statement rise by it (assets unchanged), so debt, current and cash
  ratios worsen with the flows;
* ``overdue``: a ``share`` of the instalments due in the last ``months`` months, on facilities
  still running at the rating date, is paid ``days`` later (a payment pushed past the rating
  date is unpaid then);
* ``inflows``: relative fall of every incoming transaction. Transaction amounts are model
  features without a monotone constraint, so this shock may lower some customers' PD (the
  result counts them); the others only move features with a known risk direction.

A customer hit by several entries takes, shock by shock, the harshest value among them, so a
broad entry plus a harsher sector entry reads as "everyone at least this, the sector more".
Every shock is bounded and only ever worsens a record, so a scenario whose values are all at
least another's is harsher for every customer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.errors import RiskgradeError
from features.schema import INDUSTRIES, REGIONS

SCENARIO_DIR: Final[Path] = Path(__file__).parent / "scenarios"
"""The scenarios shipped with riskgrade (in the wheel); ``--scenario NAME`` finds them."""

SHOCK_COLUMNS: Final[tuple[str, ...]] = (
    "revenue",
    "operating_margin",
    "cash_flow",
    "overdue_share",
    "overdue_days",
    "overdue_months",
    "inflows",
)
"""Columns of the per-customer effective shock table (`customer_shocks`)."""


class ScenarioError(RiskgradeError, ValueError):
    """A scenario file is missing, unreadable or invalid (names the key and value)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OverdueShock(_Frozen):
    """Later repayments: a share of the recent instalments paid some days later.

    ``share`` of the instalments due in the last ``months`` months are paid ``days`` later;
    a smaller share hits a subset of the same instalments (a deterministic draw each).
    """

    share: float = Field(ge=0.0, le=1.0)
    days: int = Field(ge=0, le=365)
    months: int = Field(default=12, ge=1, le=12)


def _known(values: tuple[str, ...], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown} (known: {', '.join(known)})")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} listed twice: {list(values)}")
    return values


class Shock(_Frozen):
    """One shock entry: which segment, and how hard on each kind of record."""

    industries: tuple[str, ...] = ()
    """Industry codes hit (`features.schema.INDUSTRIES`); empty: every industry."""
    regions: tuple[str, ...] = ()
    """Region codes hit (`features.schema.REGIONS`); empty: every region."""
    revenue: float = Field(default=0.0, ge=0.0, le=0.9)
    operating_margin: float = Field(default=0.0, ge=0.0, le=0.5)
    cash_flow: float = Field(default=0.0, ge=0.0, le=1.0)
    overdue: OverdueShock | None = None
    inflows: float = Field(default=0.0, ge=0.0, le=0.9)

    @field_validator("industries")
    @classmethod
    def _industries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known(value, INDUSTRIES, "industry")

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known(value, REGIONS, "region")

    def segment(self) -> str:
        """Who is hit, e.g. ``real_estate, construction in east`` or ``all``."""
        industries = ", ".join(self.industries) or "all industries"
        regions = ", ".join(self.regions) or "all regions"
        return f"{industries} / {regions}"


class Scenario(_Frozen):
    """A named macro scenario: shock entries applied together at one rating date."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = Field(default="", max_length=2000)
    shocks: tuple[Shock, ...] = Field(min_length=1)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "scenario"


def parse_scenario(document: object, source: str = "scenario") -> Scenario:
    """Validate a scenario document (the parsed YAML).

    Raises:
        ScenarioError: naming the source and every bad key and value.
    """
    if not isinstance(document, dict):
        raise ScenarioError(f"{source} must hold a mapping, not {type(document).__name__}")
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        items = error.errors()
        locations = [item["loc"] for item in items]
        problems = "; ".join(
            f"{_location(item['loc'])}: {item['msg'].removeprefix('Value error, ')}"
            + (f" (got {item['input']!r})" if _shown(item) else "")
            for item in items
            # a list with a bad entry is also "too short" once that entry is dropped
            if not (
                item["type"] == "too_short"
                and any(loc[: len(item["loc"])] == item["loc"] != loc for loc in locations)
            )
        )
        raise ScenarioError(f"invalid {source}: {problems}") from None


def _shown(item: Any) -> bool:
    """Whether an error names the value it got (a plain value, not a section)."""
    return item["type"] not in ("value_error", "missing") and not isinstance(
        item["input"], dict | list | tuple
    )


def scenario_path(name_or_path: Path | str) -> Path:
    """The file of a scenario: the path itself, else a shipped scenario of that name.

    Raises:
        ScenarioError: if neither exists (listing the shipped names).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SCENARIO_DIR / f"{name_or_path}.yaml"
    if path.suffix == "" and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
    raise ScenarioError(f"scenario file {path} does not exist (shipped scenarios: {names})")


def load_scenario(name_or_path: Path | str) -> Scenario:
    """Load and validate a scenario from a YAML file or a shipped scenario's name.

    Raises:
        ScenarioError: for a missing file, bad YAML, an unknown key, an unknown industry or
            region, or a shock out of its bounds.
    """
    path = scenario_path(name_or_path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"cannot read scenario {path}: {error}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ScenarioError(f"scenario {path} is not valid YAML{line}: {problem}") from None
    return parse_scenario(document, f"scenario {path}")


def customer_shocks(customers: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Each customer's effective shock: per column the harshest of the entries hitting it.

    Args:
        customers: ``customer_id``, ``industry``, ``region``.
        scenario: the scenario.

    Returns:
        Indexed by ``customer_id``, columns `SHOCK_COLUMNS` (0 where no entry hits).
    """
    industry = customers["industry"].astype(str).to_numpy()
    region = customers["region"].astype(str).to_numpy()
    values = {c: np.zeros(len(customers)) for c in SHOCK_COLUMNS}
    for shock in scenario.shocks:
        hit = np.ones(len(customers), dtype=bool)
        if shock.industries:
            hit &= np.isin(industry, shock.industries)
        if shock.regions:
            hit &= np.isin(region, shock.regions)
        overdue = shock.overdue or OverdueShock(share=0.0, days=0, months=1)
        entry = {
            "revenue": shock.revenue,
            "operating_margin": shock.operating_margin,
            "cash_flow": shock.cash_flow,
            "overdue_share": overdue.share,
            "overdue_days": float(overdue.days),
            "overdue_months": float(overdue.months if overdue.share and overdue.days else 0),
            "inflows": shock.inflows,
        }
        for column, value in entry.items():
            values[column] = np.where(hit, np.maximum(values[column], value), values[column])
    frame = pd.DataFrame(values, index=pd.Index(customers["customer_id"].astype(str)))
    frame.index.name = "customer_id"
    return frame
