"""Mechanical translation of a polars query plan into a PySpark DataFrame.

The feature definitions are written once, as polars expressions. The batch query of all
features (:func:`features.catalog.feature_plan`), built over empty frames, is serialised by
polars (``LazyFrame.serialize(format="json")``) and walked node by node: each plan node
(scan, filter, select, group-by, join) and each expression node (column, literal, arithmetic,
comparison, ``when/then``, date parts, casts, aggregations, windows) has exactly one PySpark
equivalent here, and anything else fails loudly (:class:`UntranslatableError`) instead of
guessing. No feature is written twice: a new feature made of known constructs runs on Spark
unchanged; one using a new construct gets one new translation rule.

The constructs without a one-to-one Spark function, each translated once (and tested):

* ``col.get(key.arg_max())`` (the row holding a maximum) -> ``max_by(col, key)``;
  ``arg_min`` -> ``min_by``. Ties: polars takes the first such row, Spark any one of them;
  the feature groups only use unique keys (one statement per customer and period end).
* ``col.sort_by([k1, k2], descending, nulls_last).first()`` -> ``min_by(col, struct(...))``
  over a struct ordering key: per sort key a null flag (nulls last or first) and the value,
  negated when descending (dates as day numbers).
* ``date.dt.offset_by("-12mo")`` -> ``add_months(date, -12)`` (both clamp to the month's last
  day, e.g. 29 February - 12 months = 28 February); ``"Ny"`` -> ``add_months(date, 12N)``.
* ``replace_strict(levels, codes, default=None)`` (category codes) -> ``CASE WHEN``.
* ``(a - b).dt.total_days()`` on dates -> ``datediff(a, b)``.
* ``round()`` (polars rounds half to even) -> ``bround``; ``clip`` -> ``CASE WHEN`` (null stays
  null, where Spark's ``greatest``/``least`` would skip it); ``sum`` -> ``coalesce(sum, 0)``
  (polars sums an all-null group to 0, Spark to null), booleans summed as integers.
* ``Int128`` (exact sums of squared amounts) -> ``DECIMAL(38, 0)``.

Polars' JSON plan format is not a stable interface: the locked polars version is the one
this module is tested against (``tests/features/test_spark_engine.py``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F  # noqa: N812 - the conventional PySpark alias
from pyspark.sql import types as T  # noqa: N812

Node = Any
"""A node of polars' JSON plan (a dict, a list or a string)."""

_EPOCH = date(1970, 1, 1)

_SPARK_TYPES: dict[str, str] = {
    "Float64": "double",
    "Float32": "float",
    "Int64": "bigint",
    "Int32": "int",
    "UInt32": "bigint",
    "Int128": "decimal(38,0)",
    "Boolean": "boolean",
    "String": "string",
    "Date": "date",
}
"""Polars dtype name -> Spark SQL type of a cast."""

_BINARY: dict[str, Callable[[Column, Column], Column]] = {
    "Plus": lambda a, b: a + b,
    "Minus": lambda a, b: a - b,
    "Multiply": lambda a, b: a * b,
    "TrueDivide": lambda a, b: a / b,
    "Eq": lambda a, b: a == b,
    "NotEq": lambda a, b: a != b,
    "Lt": lambda a, b: a < b,
    "LtEq": lambda a, b: a <= b,
    "Gt": lambda a, b: a > b,
    "GtEq": lambda a, b: a >= b,
    "And": lambda a, b: a & b,
    "Or": lambda a, b: a | b,
}
_PREDICATES = {"Eq", "NotEq", "Lt", "LtEq", "Gt", "GtEq", "And", "Or"}

_TEMPORAL_PARTS: dict[str, Callable[[Column], Column]] = {
    "Year": F.year,
    "Month": F.month,
    "Day": F.dayofmonth,
}

_OFFSET = re.compile(r"^(-?)(\d+)(mo|y)$")


class UntranslatableError(NotImplementedError):
    """A polars construct without a translation rule (add one rule, never a feature copy)."""


def _single(node: Node) -> tuple[str, Any]:
    if isinstance(node, str):
        return node, None
    if not isinstance(node, dict) or len(node) != 1:
        raise UntranslatableError(f"unexpected plan node {str(node)[:200]}")
    return next(iter(node.items()))


def output_name(node: Node) -> str:
    """The name polars gives an expression's output (its alias, else its leftmost column)."""
    kind, body = _single(node)
    if kind == "Column":
        return body
    if kind == "Alias":
        return body[1]
    if kind == "Len":
        return "len"
    if kind == "Literal":
        return "literal"
    if kind in ("Cast", "SortBy", "Gather"):
        return output_name(body["expr"])
    if kind == "Ternary":
        return output_name(body["truthy"])
    if kind == "BinaryExpr":
        return output_name(body["left"])
    if kind == "Function":
        return output_name(body["input"][0])
    if kind == "Agg":
        return output_name(_agg_input(body))
    if kind == "Over":
        return output_name(body["function"])
    raise UntranslatableError(f"no output name rule for {kind}")


def _agg_input(body: Mapping[str, Any]) -> Node:
    _, inner = _single(body)
    return inner["input"] if isinstance(inner, dict) and "input" in inner else inner


def _series_literal(payload: list[int]) -> list[Any]:
    """A list literal: polars stores its values as an Arrow IPC stream."""
    frame = pl.read_ipc_stream(io.BytesIO(bytes(payload)))
    return frame.to_series(0).to_list()


def _literal(body: Mapping[str, Any]) -> Column | list[Any]:
    kind, value = _single(body)
    if kind == "Dyn":
        _, number = _single(value)
        return F.lit(number)
    if kind != "Scalar":
        raise UntranslatableError(f"literal {kind}")
    dtype, value = _single(value)
    if dtype == "Null":
        return F.lit(None)
    if dtype == "Date":
        return F.lit(_EPOCH + timedelta(days=value))
    if dtype == "Datetime":
        micros, unit, zone = value
        if unit != "Microseconds" or zone is not None:
            raise UntranslatableError(f"datetime literal in {unit}, zone {zone}")
        moment = datetime(1970, 1, 1) + timedelta(microseconds=micros)
        return F.expr(f"TIMESTAMP_NTZ '{moment.isoformat(sep=' ')}'")
    if dtype == "List":
        return _series_literal(value)
    if dtype in ("String", "Boolean", "Float64", "Int64", "Int32"):
        return F.lit(value)
    raise UntranslatableError(f"literal of type {dtype}")


class _Expressions:
    """Expression translation against one input's column types."""

    def __init__(self, types: Mapping[str, T.DataType]) -> None:
        self.types = types

    def is_bool(self, node: Node) -> bool:
        kind, body = _single(node)
        if kind == "Column":
            return isinstance(self.types.get(body), T.BooleanType)
        if kind == "Alias":
            return self.is_bool(body[0])
        if kind == "BinaryExpr":
            return body["op"] in _PREDICATES
        if kind == "Function":
            return isinstance(body["function"], dict) and "Boolean" in body["function"]
        if kind == "Ternary":
            return self.is_bool(body["truthy"])
        if kind == "Cast":
            return body["dtype"] == {"Literal": "Boolean"}
        return False

    def named(self, node: Node) -> Column:
        """The expression with its polars output name."""
        return self.expr(node).alias(output_name(node))

    def expr(self, node: Node, window: Any = None) -> Column:
        kind, body = _single(node)
        if kind == "Column":
            return F.col(body)
        if kind == "Alias":
            return self.expr(body[0], window)
        if kind == "Literal":
            value = _literal(body)
            if isinstance(value, list):
                raise UntranslatableError("a list literal outside replace_strict")
            return value
        if kind == "BinaryExpr":
            op = _BINARY.get(body["op"])
            if op is None:
                raise UntranslatableError(f"binary operator {body['op']}")
            return op(self.expr(body["left"], window), self.expr(body["right"], window))
        if kind == "Cast":
            dtype = _single(body["dtype"])[1]
            if dtype not in _SPARK_TYPES:
                raise UntranslatableError(f"cast to {dtype}")
            return self.expr(body["expr"], window).cast(_SPARK_TYPES[dtype])
        if kind == "Ternary":
            return F.when(
                self.expr(body["predicate"], window), self.expr(body["truthy"], window)
            ).otherwise(self.expr(body["falsy"], window))
        if kind == "Function":
            return self.function(body["function"], body["input"], window)
        if kind in ("Agg", "Gather", "Len"):
            return self.aggregate(node, window)
        if kind == "Over":
            if body.get("order_by") is not None or body.get("mapping") != "GroupsToRows":
                raise UntranslatableError("an ordered or non-broadcast window")
            keys = [self.expr(key) for key in body["partition_by"]]
            return self.expr(body["function"], Window.partitionBy(*keys))
        raise UntranslatableError(f"expression {kind}")

    def function(self, function: Node, inputs: list[Node], window: Any) -> Column:
        name, options = _single(function)
        args = [self.expr(node, window) for node in inputs if name != "ReplaceStrict"]
        if name == "Boolean":
            rules = {
                "IsNull": Column.isNull,
                "IsNotNull": Column.isNotNull,
                "Not": Column.__invert__,
            }
            if options not in rules:
                raise UntranslatableError(f"boolean function {options}")
            return rules[options](args[0])
        if name == "Abs":
            return F.abs(args[0])
        if name == "FillNull":
            return F.coalesce(args[0], args[1])
        if name == "Pow" and options == "Sqrt":
            return F.sqrt(args[0])
        if name == "Round":
            if options["mode"] == "HalfToEven":
                return F.bround(args[0], options["decimals"])
            return F.round(args[0], options["decimals"])
        if name == "Clip":
            return _clip(args, has_min=options["has_min"], has_max=options["has_max"])
        if name == "ReplaceStrict":
            return self.replace_strict(inputs, options)
        if name == "TemporalExpr":
            return self.temporal(options, inputs, args)
        raise UntranslatableError(f"function {name} {options}")

    def temporal(self, options: Node, inputs: list[Node], args: list[Column]) -> Column:
        part, detail = _single(options)
        if part in _TEMPORAL_PARTS:
            return _TEMPORAL_PARTS[part](args[0])
        if part == "OffsetBy":
            return offset_by(args[0], _single(_single(inputs[1])[1])[1]["String"])
        if part == "TotalDays" and not detail["fractional"]:
            kind, difference = _single(inputs[0])
            if kind != "BinaryExpr" or difference["op"] != "Minus":
                raise UntranslatableError("total_days of anything but a date difference")
            return F.datediff(self.expr(difference["left"]), self.expr(difference["right"]))
        raise UntranslatableError(f"temporal function {options}")

    def replace_strict(self, inputs: list[Node], options: Mapping[str, Any]) -> Column:
        column = self.expr(inputs[0])
        old, new = (_literal(_single(node)[1]) for node in inputs[1:3])
        default = self.expr(inputs[3]) if len(inputs) > 3 and inputs[3] else F.lit(None)
        if not isinstance(old, list) or not isinstance(new, list):
            raise UntranslatableError("replace_strict without list literals")
        codes = category_codes(column, dict(zip(old, new, strict=True)), default)
        if options.get("return_dtype") is None:
            return codes
        return codes.cast(_SPARK_TYPES[_single(options["return_dtype"])[1]])

    def aggregate(self, node: Node, window: Any) -> Column:
        def over(column: Column) -> Column:
            return column.over(window) if window is not None else column

        kind, body = _single(node)
        if kind == "Len":
            return over(F.count(F.lit(1)))
        if kind == "Gather":
            return self.gather(body, window)
        agg, inner = _single(body)
        if agg in ("Max", "Min"):
            rule = F.max if agg == "Max" else F.min
            return over(rule(self.expr(inner["input"])))
        if agg == "Mean":
            return over(F.avg(self.expr(inner)))
        if agg == "Sum":
            value = self.expr(inner)
            if self.is_bool(inner):
                value = value.cast("bigint")
            return F.coalesce(over(F.sum(value)), F.lit(0))
        if agg == "First" and _single(inner)[0] == "SortBy":
            return over(self.first_sorted(_single(inner)[1]))
        raise UntranslatableError(f"aggregation {agg}")

    def gather(self, body: Mapping[str, Any], window: Any) -> Column:
        kind, index = _single(body["idx"])
        position = _single(index["function"])[0] if kind == "Function" else None
        if position not in ("ArgMax", "ArgMin") or not body["returns_scalar"]:
            raise UntranslatableError("gather by anything but arg_max / arg_min")
        rule = F.max_by if position == "ArgMax" else F.min_by
        value = rule(self.expr(body["expr"]), self.expr(index["input"][0]))
        return value.over(window) if window is not None else value

    def first_sorted(self, body: Mapping[str, Any]) -> Column:
        keys = body["by"]
        options = body["sort_options"]
        descending = _broadcast(options["descending"], len(keys))
        nulls_last = _broadcast(options["nulls_last"], len(keys))
        fields = []
        for i, (key, desc, last) in enumerate(zip(keys, descending, nulls_last, strict=True)):
            fields += self.sort_key(key, desc=desc, nulls_last=last, position=i)
        return F.min_by(self.expr(body["expr"]), F.struct(*fields))

    def sort_key(self, key: Node, *, desc: bool, nulls_last: bool, position: int) -> list[Column]:
        """Struct fields ordering like ``sort_by``: ascending struct order = the sort order."""
        column = self.expr(key)
        flag = (column.isNull() if nulls_last else column.isNotNull()).alias(f"n{position}")
        if desc:
            kind, name = _single(key)
            dtype = self.types.get(name) if kind == "Column" else None
            if isinstance(dtype, T.DateType):
                column = -F.unix_date(column)
            elif isinstance(dtype, T.TimestampNTZType | T.TimestampType):
                column = -F.unix_micros(column)
            elif isinstance(dtype, T.NumericType):
                column = -column
            else:
                raise UntranslatableError(f"descending sort on {dtype}")
        return [flag, column.alias(f"v{position}")]


def _broadcast(values: list[bool], n: int) -> list[bool]:
    return values * n if len(values) == 1 else values


def _clip(args: list[Column], *, has_min: bool, has_max: bool) -> Column:
    value, bounds = args[0], list(args[1:])
    if has_min:
        low = bounds.pop(0)
        value = F.when(value < low, low).otherwise(value)
    if has_max:
        high = bounds.pop(0)
        value = F.when(value > high, high).otherwise(value)
    return value


def offset_by(column: Column, offset: str) -> Column:
    """Polars ``dt.offset_by`` for whole months or years (``"-12mo"``, ``"1y"``) on dates."""
    match = _OFFSET.match(offset)
    if match is None:
        raise UntranslatableError(f"offset_by({offset!r}): only whole months or years")
    sign, count, unit = match.groups()
    months = int(count) * (12 if unit == "y" else 1) * (-1 if sign else 1)
    return F.add_months(column, months)


def category_codes(column: Column, mapping: Mapping[Any, Any], default: Column) -> Column:
    """Polars ``replace_strict(mapping, default=...)`` as one ``CASE WHEN``."""
    if not mapping:
        return default
    items = iter(mapping.items())
    level, code = next(items)
    case = F.when(column == F.lit(level), F.lit(code))
    for level, code in items:
        case = case.when(column == F.lit(level), F.lit(code))
    return case.otherwise(default)


class PlanTranslator:
    """Translate a polars JSON plan over the feature tables into a Spark DataFrame.

    A scan of a polars frame reads the Spark table with the same column names, in order.

    Args:
        tables: Spark DataFrames by name, e.g. the feature tables (``FRAME_TABLES``) with the
            normalised columns and types of :func:`features.groups.common.frame_schema`.
    """

    def __init__(self, tables: Mapping[str, DataFrame]) -> None:
        self.tables = tables
        self._by_columns = {tuple(frame.columns): name for name, frame in tables.items()}

    def translate(self, plan: Node) -> DataFrame:
        """The Spark DataFrame computing ``plan``."""
        kind, body = _single(plan)
        if kind == "DataFrameScan":
            columns = tuple(body["schema"]["fields"])
            if columns not in self._by_columns:
                raise UntranslatableError(f"a scan of an unknown frame with columns {columns}")
            return self.tables[self._by_columns[columns]]
        if kind == "Sort":  # Spark rows have no order; writers sort within partitions
            return self.translate(body["input"])
        if kind == "Join":
            return self._join(body)
        source = self.translate(body["input"])
        if kind == "Filter":
            return source.filter(self._exprs(source).expr(body["predicate"]))
        if kind == "Select":
            exprs = self._exprs(source)
            return source.select(*(exprs.named(node) for node in body["expr"]))
        if kind == "GroupBy":
            if body.get("apply") is not None or any(
                body["options"].get(k) for k in ("dynamic", "rolling")
            ):
                raise UntranslatableError("a dynamic, rolling or custom group-by")
            exprs = self._exprs(source)
            keys = [exprs.named(node) for node in body["keys"]]
            return source.groupBy(*keys).agg(*(exprs.named(node) for node in body["aggs"]))
        raise UntranslatableError(f"plan node {kind}")

    def _exprs(self, frame: DataFrame) -> _Expressions:
        return _Expressions({field.name: field.dataType for field in frame.schema.fields})

    def _join(self, body: Mapping[str, Any]) -> DataFrame:
        left, right = self.translate(body["input_left"]), self.translate(body["input_right"])
        kind, condition = _single(body["condition"])
        args = body["options"]["args"]
        how = {"Left": "left", "Inner": "inner", "Full": "full"}.get(args["how"])
        if kind != "Equi" or how is None:
            raise UntranslatableError(f"{kind} {args['how']} join")
        on = [output_name(node) for node in condition["left_on"]]
        if on != [output_name(node) for node in condition["right_on"]]:
            raise UntranslatableError("a join on differently named keys")
        clash = (set(left.columns) & set(right.columns)) - set(on)
        if clash:
            raise UntranslatableError(f"a join whose sides share columns {sorted(clash)}")
        return left.join(right, on=on, how=how)


def plan_json(plan: pl.LazyFrame) -> Node:
    """Polars' JSON form of a lazy query (the input of :class:`PlanTranslator`)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "json serialization is deprecated"
        text = plan.serialize(format="json")
    return json.loads(text)
