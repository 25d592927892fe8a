"""A fast verdict on one table against its pandera schema: "valid", or "ask pandera".

Pandera's lazy validation pays a fixed cost per table and per check (error handling, failure
cases, copies) whatever the number of rows; for the few rows of one customer that cost is most
of the work. :func:`fast_coerce` reaches the same verdict from the same schema object in one
pass over the table's columns, with vectorised pandas/numpy operations, and returns the table
as pandera would coerce it when (and only when) every check passes. On any failure or doubt it
returns ``None`` and the caller runs pandera, whose report (problems, messages, examples) is
then the answer. So the pandera schemas of `features.schema` stay the one definition of the
contract: nothing is written twice here, every rule is read off the schema.

What is read off a schema (the plan, built once per schema object):

* the columns: required names and ``strict`` (no other column), each column's dtype, coerced
  with pandera's own ``DataType.try_coerce`` and checked with its own ``DataType.check``;
  ``nullable``; ``unique``;
* the column checks: pandera's built-in checks (``equal_to``, ``not_equal_to``, ``greater_than``,
  ``greater_than_or_equal_to``, ``less_than``, ``less_than_or_equal_to``, ``in_range``,
  ``isin``, ``notin``, ``str_length``) evaluated from the Check objects' ``statistics``; any
  other (custom) check is called on the column directly, as pandera calls it (nulls dropped
  when ``ignore_na``);
* the table checks (custom, on the whole coerced frame, a null row passing when
  ``ignore_na``), then the ``unique`` column sets.

Not derivable, so that schema always goes to pandera (never silently accepted): a schema with
an index, a schema-wide dtype, ``ordered``, ``strict="filter"``, ``add_missing_columns``,
``drop_invalid_rows``, parsers, regex columns, optional columns or defaults; a check with
``groupby``, ``element_wise`` table checks, ``raise_warning`` (a warning, not a failure) or a
built-in check not listed above. A check that raises, or answers with anything but booleans,
is doubt. Pandera's validation depth settings (``PANDERA_VALIDATION_DEPTH``) are not read: with
data checks switched off pandera accepts more than this verdict, never less.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines.pandas_engine import Engine

Verdict = Callable[[pd.Series], Any]
"""A column check: the non-null values -> booleans (array, Series or bool)."""


def _compare(op: Callable[[Any, Any], Any], value: Any) -> Verdict:
    def verdict(data: pd.Series) -> Any:
        if isinstance(data.dtype, np.dtype) and data.dtype.kind in "biufM":  # numpy compares
            bound = value
            if data.dtype.kind == "M":
                bound = np.datetime64(pd.Timestamp(value).as_unit(data.dtype.str[-3:-1]))
            return op(data.to_numpy(), bound)
        return op(data, value)

    return verdict


def _in_range(stats: dict[str, Any]) -> Verdict:
    above = operator.ge if stats.get("include_min", True) else operator.gt
    below = operator.le if stats.get("include_max", True) else operator.lt
    low, high = _compare(above, stats["min_value"]), _compare(below, stats["max_value"])
    return lambda data: np.asarray(low(data), dtype=bool) & np.asarray(high(data), dtype=bool)


def _str_length(stats: dict[str, Any]) -> Verdict:
    exact, low, high = stats.get("exact_value"), stats.get("min_value"), stats.get("max_value")

    def verdict(data: pd.Series) -> Any:
        lengths = data.str.len()
        if exact is not None:
            return lengths == exact
        if low is None and high is None:  # pandera raises: a broken check, let it say so
            raise ValueError("str_length without bounds")
        passed = np.ones(len(data), dtype=bool)
        if low is not None:
            passed &= np.asarray(lengths >= low, dtype=bool)
        if high is not None:
            passed &= np.asarray(lengths <= high, dtype=bool)
        return passed

    return verdict


def _among(values: Any, *, allowed: bool) -> Verdict:
    """``isin`` (or ``notin``): decided on the column's distinct values (few, for codes)."""

    def verdict(data: pd.Series) -> Any:
        distinct = pd.Series(data.unique(), dtype=data.dtype)
        found = distinct.isin(values)
        return found if allowed else ~found

    return verdict


_BUILT_IN: dict[str, Callable[[dict[str, Any]], Verdict]] = {
    "equal_to": lambda s: _compare(operator.eq, s["value"]),
    "not_equal_to": lambda s: _compare(operator.ne, s["value"]),
    "greater_than": lambda s: _compare(operator.gt, s["min_value"]),
    "greater_than_or_equal_to": lambda s: _compare(operator.ge, s["min_value"]),
    "less_than": lambda s: _compare(operator.lt, s["max_value"]),
    "less_than_or_equal_to": lambda s: _compare(operator.le, s["max_value"]),
    "in_range": _in_range,
    "isin": lambda s: _among(s["allowed_values"], allowed=True),
    "notin": lambda s: _among(s["forbidden_values"], allowed=False),
    "str_length": _str_length,
}
"""Pandera's built-in checks this module evaluates from their statistics."""


class NotDerivableError(Exception):
    """A schema holds something the fast verdict cannot read off: pandera decides."""


@dataclass(frozen=True)
class _ColumnPlan:
    name: str
    dtype: Any
    coerce: bool
    nullable: bool
    unique: bool
    checks: tuple[tuple[Verdict, bool], ...]
    """Each check and its ``ignore_na``."""


@dataclass(frozen=True)
class _TablePlan:
    columns: tuple[_ColumnPlan, ...]
    strict: bool
    table_checks: tuple[pa.Check, ...]
    unique: tuple[tuple[str, ...], ...]


def _check_verdict(check: pa.Check) -> Verdict:
    if check.groupby is not None or check.raise_warning:
        raise NotDerivableError(f"check {check.name!r}: groupby or warning")
    if check.statistics:  # a built-in check: its arguments are its statistics
        if check.name not in _BUILT_IN:
            raise NotDerivableError(f"built-in check {check.name!r}")
        return _BUILT_IN[check.name](dict(check.statistics))
    function = check._check_fn
    if check.element_wise:
        return lambda data: data.map(function)
    return function


def _plan(schema: pa.DataFrameSchema) -> _TablePlan:
    """Read the rules of ``schema`` off it.

    Raises:
        NotDerivableError: if the schema holds a rule this module does not evaluate.
    """
    if (
        schema.index is not None
        or schema.dtype is not None
        or schema.ordered
        or schema.strict not in (True, False)
        or schema.add_missing_columns
        or schema.drop_invalid_rows
        or getattr(schema, "parsers", None)
    ):
        raise NotDerivableError(f"schema {schema.name!r}: index, dtype, order or filtering")
    columns = []
    for name, column in schema.columns.items():
        if (
            column.regex
            or not column.required
            or column.default is not None
            or column.parsers
            or column.drop_invalid_rows
            or column.dtype is None
        ):
            raise NotDerivableError(f"column {name!r}: regex, optional, default or parser")
        checks = tuple((_check_verdict(c), bool(c.ignore_na)) for c in column.checks)
        coerce = bool(schema.coerce or column.coerce)
        columns.append(
            _ColumnPlan(name, column.dtype, coerce, column.nullable, column.unique, checks)
        )
    for check in schema.checks:
        if check.groupby is not None or check.raise_warning or check.element_wise:
            raise NotDerivableError(f"table check {check.name!r}: groupby, warning or element-wise")
        if check.statistics:
            raise NotDerivableError(f"table check {check.name!r}: a built-in check on a table")
    unique: tuple[tuple[str, ...], ...] = ()
    if schema.unique:
        one = all(isinstance(x, str) for x in schema.unique)
        sets = [schema.unique] if one else schema.unique
        unique = tuple(tuple(s) for s in sets)
    return _TablePlan(tuple(columns), bool(schema.strict), tuple(schema.checks), unique)


_PLANS: dict[int, tuple[pa.DataFrameSchema, _TablePlan | None]] = {}


def plan_of(schema: pa.DataFrameSchema) -> _TablePlan | None:
    """The plan of ``schema`` (cached per schema object); ``None`` when not derivable."""
    cached = _PLANS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    try:
        plan: _TablePlan | None = _plan(schema)
    except NotDerivableError:
        plan = None
    _PLANS[id(schema)] = (schema, plan)
    return plan


def _all_true(result: Any) -> bool:
    """Pandera's reading of a check's answer: every value true (NA skipped, as ``.all()``)."""
    if isinstance(result, (bool, np.bool_)):
        return bool(result)
    if isinstance(result, np.ndarray):
        if result.dtype != bool:
            raise TypeError("a check answered with non-booleans")
        return bool(result.all())
    if isinstance(result, pd.Series):
        if result.empty:  # pandera casts an empty answer to bool: nothing fails
            return True
        if result.dtype != bool and str(result.dtype) != "boolean":
            raise TypeError("a check answered with non-booleans")
        return bool(result.all())
    raise TypeError(f"a check answered with {type(result).__name__}")


@lru_cache(maxsize=256)
def _engine_dtype(dtype: Any) -> Any:
    """Pandera's data type of a pandas dtype (a pure function of it, so cached)."""
    return Engine.dtype(dtype)


def _column_ok(column: _ColumnPlan, series: pd.Series) -> pd.Series | None:
    """The coerced column when it passes every rule of ``column``, else ``None``."""
    already = series.dtype != object and _engine_dtype(series.dtype) == column.dtype
    if column.coerce and not already:  # a typed column of the very dtype coerces to itself
        series = column.dtype.try_coerce(series)
    if not _all_true(column.dtype.check(_engine_dtype(series.dtype), series)):
        return None
    nulls = series.hasnans
    if nulls and not column.nullable:
        return None
    if column.unique and not series.is_unique:
        return None
    values = series.dropna() if nulls else series
    for verdict, ignore_na in column.checks:
        if not _all_true(verdict(values if ignore_na else series)):
            return None
    return series


def _table_check_ok(check: pa.Check, frame: pd.DataFrame) -> bool:
    result = check._check_fn(frame)
    if isinstance(result, pd.Series) and check.ignore_na and result.index.equals(frame.index):
        if frame.isna().to_numpy().all(axis=1).any():
            result = result | frame.isna().all(axis="columns")
    elif isinstance(result, pd.DataFrame):
        raise TypeError("a table check answered with a table")
    return _all_true(result)


def fast_coerce(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame | None:
    """``frame`` as ``schema`` coerces it, when it passes every rule; else ``None``.

    ``None`` means "failed or not sure": validate with pandera for the verdict and the report.
    A schema this module cannot read off (see the module docstring) always gives ``None``.
    """
    plan = plan_of(schema)
    if plan is None or not frame.columns.is_unique:
        return None
    names = [c.name for c in plan.columns]
    if not set(names) <= set(frame.columns):
        return None
    if plan.strict and len(frame.columns) != len(names):
        return None
    try:
        changed = {}
        for column in plan.columns:
            given = frame[column.name]
            series = _column_ok(column, given)
            if series is None:
                return None
            if series.dtype != given.dtype:
                changed[column.name] = series
        result = frame.copy()  # pandera's copy, with the coerced columns
        for name, series in changed.items():
            result[name] = series
        for check in plan.table_checks:
            if not _table_check_ok(check, result):
                return None
        for key in plan.unique:
            subset = [name for name in key if name in result]
            if subset and result.duplicated(subset=subset).any():
                return None
    except Exception:  # any surprise is doubt: pandera decides and reports
        return None
    return result
