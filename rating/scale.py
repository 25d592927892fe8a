"""The rating master scale: PD bands per grade, plus a points (PDO) scorecard scale.

Grades are ordered from best to worst; the grade index is the position in that order, the
default grade ``D`` comes last. A PD maps onto a non-default grade only: ``D`` is a status
(the customer is in default), assigned from observed defaults, never from a model PD.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import logit

from rating.defaults import default_section


class ScaleError(ValueError):
    """The master scale configuration or a PD given to it is invalid."""


class Grade(BaseModel):
    """One non-default grade: a PD band ``[lower, upper)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=8)
    label: str = Field(min_length=1, max_length=16)
    """Agency-style label shown next to the name, e.g. ``BBB``."""
    lower: float = Field(ge=0.0, lt=1.0)
    upper: float = Field(gt=0.0, le=1.0)


class PointsScale(BaseModel):
    """A PDO scorecard scale: ``points = offset - factor * log_odds(PD)``.

    ``base_points`` is the score at good:bad odds of ``base_odds``; every ``pdo`` points
    the odds of being good double.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_points: float
    base_odds: float = Field(gt=0.0)
    pdo: float = Field(gt=0.0)

    @property
    def factor(self) -> float:
        """Points per unit of log-odds."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """Points at even odds (log-odds 0)."""
        return self.base_points - self.factor * math.log(self.base_odds)

    def points(self, log_odds: np.ndarray) -> np.ndarray:
        """Scorecard points of default log-odds (higher points = lower risk), rounded."""
        return np.rint(self.offset - self.factor * np.asarray(log_odds, dtype=np.float64))


class MasterScale(BaseModel):
    """Master scale: contiguous increasing PD bands covering ``[pd_floor, 1)``, then ``D``.

    Fields not given come from the ``rating.scale`` section of the project's params.yaml
    (`rating.defaults`), the one place the default scale is written down.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    pd_floor: float = Field(gt=0.0, lt=1.0)
    """Regulatory PD floor."""
    grades: tuple[Grade, ...]
    default_grade: str = Field(min_length=1, max_length=8)
    """Grade of customers in default (status, not a PD band)."""
    points: PointsScale

    if TYPE_CHECKING:  # any subset of the fields: ``_fill_defaults`` completes it

        def __init__(self, **data: Any) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(cls.model_fields) - data.keys():
            return {**default_section("scale"), **data}
        return data

    @model_validator(mode="after")
    def _check_bands(self) -> MasterScale:
        if len(self.grades) < 7:
            raise ScaleError(
                f"master scale needs at least 7 non-default grades, got {len(self.grades)}"
            )
        names = [g.name for g in self.grades] + [self.default_grade]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ScaleError(f"grade names must be unique, repeated: {duplicates}")
        first, last = self.grades[0], self.grades[-1]
        if first.lower != self.pd_floor:
            raise ScaleError(
                f"grade '{first.name}' starts at {first.lower}, not at the PD floor {self.pd_floor}"
            )
        if last.upper != 1.0:
            raise ScaleError(
                f"grade '{last.name}' ends at {last.upper}; the last band must end at 1"
            )
        for grade in self.grades:
            if not grade.lower < grade.upper:
                raise ScaleError(
                    f"grade '{grade.name}' band [{grade.lower}, {grade.upper}) is empty or reversed"
                )
        for prev, nxt in itertools.pairwise(self.grades):
            if prev.upper != nxt.lower:
                raise ScaleError(
                    f"bands not contiguous: grade '{prev.name}' ends at {prev.upper} "
                    f"but grade '{nxt.name}' starts at {nxt.lower}"
                )
        return self

    @property
    def names(self) -> list[str]:
        """All grade names, best to worst, the default grade last."""
        return [g.name for g in self.grades] + [self.default_grade]

    @property
    def n_grades(self) -> int:
        """Number of non-default grades."""
        return len(self.grades)

    @property
    def default_index(self) -> int:
        """Grade index of the default grade (the worst)."""
        return len(self.grades)

    def index_of(self, name: str) -> int:
        """Grade index of a grade name (0 = best).

        Raises:
            ScaleError: if the scale has no such grade.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise ScaleError(f"grade '{name}' is not on master scale {self.version}") from None

    def upper_bounds(self) -> np.ndarray:
        """PD upper bounds of the non-default grades but the last (the inner boundaries)."""
        return np.array([g.upper for g in self.grades[:-1]], dtype=np.float64)

    def log_odds_boundaries(self) -> np.ndarray:
        """Inner grade boundaries in log-odds: boundary ``i`` separates grade ``i`` and ``i+1``."""
        return logit(self.upper_bounds())

    def floor_pd(self, pd: np.ndarray) -> np.ndarray:
        """PD raised to the floor, after checking it is a probability.

        Raises:
            ScaleError: if any PD is NaN or outside ``[0, 1]``.
        """
        values = np.asarray(pd, dtype=np.float64)
        bad = ~((values >= 0.0) & (values <= 1.0))  # also catches NaN
        if bad.any():
            first = int(np.flatnonzero(bad.ravel())[0])
            raise ScaleError(
                f"{int(bad.sum())} PD value(s) not in [0, 1] (first at position {first}: "
                f"{float(values.ravel()[first])})"
            )
        return np.maximum(values, self.pd_floor)

    def grade_index(self, pd: np.ndarray) -> np.ndarray:
        """Vectorised grade index of PDs (0 = best); PD 1.0 falls in the last band.

        Raises:
            ScaleError: if any PD is NaN or outside ``[0, 1]``.
        """
        floored = self.floor_pd(pd)
        index = np.searchsorted(self.upper_bounds(), floored, side="right")
        return index.astype(np.int64)

    def grade_of(self, pd: np.ndarray) -> np.ndarray:
        """Vectorised grade names of PDs (never the default grade).

        Raises:
            ScaleError: if any PD is NaN or outside ``[0, 1]``.
        """
        return np.asarray(self.names, dtype=object)[self.grade_index(pd)]
