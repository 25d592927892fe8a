"""The fast contract verdict agrees with pandera: "valid" exactly when pandera finds nothing.

`features.contract_check.fast_coerce` reads every rule off the pandera schemas; when it says
valid the table is the one pandera returns, and on any failure pandera validates and reports.
Property tests break generated raw tables in every way the contract forbids (wrong types,
nulls, out-of-range values, unknown codes, duplicate keys, broken row rules, orphans across
tables) and compare the verdicts, the coerced tables and `validate_tables`' whole report with
pandera alone; unit tests cover each kind of check, and the schemas the verdict cannot read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import features.validate as validate_module
from features.contract_check import fast_coerce, plan_of
from features.schema import MAX_AMOUNT, SCHEMAS, TABLES
from features.validate import validate_tables
from reliability.hostile import AS_OF, CASES, base_tables

Tables = dict[str, pd.DataFrame]


@cache
def _base() -> Tables:
    """A small valid generated portfolio, with a default so that no table is empty."""
    tables = {name: frame.copy() for name, frame in base_tables(customers=5, seed=11).items()}
    if tables["defaults"].empty:
        first = tables["customers"].iloc[0]
        tables["defaults"] = pd.DataFrame(
            {
                "customer_id": [first["customer_id"]],
                "default_date": [pd.Timestamp(AS_OF) - pd.Timedelta(days=30)],
                "default_type": ["dpd90"],
            }
        ).astype({"customer_id": tables["customers"]["customer_id"].dtype})
    return tables


def _pandera(table: str, frame: pd.DataFrame) -> pd.DataFrame | None:
    """Pandera alone: the coerced table, or None when it finds any problem."""
    try:
        return SCHEMAS[table].validate(frame, lazy=True)
    except pa.errors.SchemaErrors:
        return None


def _assert_same_verdict(table: str, frame: pd.DataFrame) -> bool:
    fast, slow = fast_coerce(SCHEMAS[table], frame), _pandera(table, frame)
    assert (fast is not None) == (slow is not None), (table, frame)
    if fast is not None:
        pd.testing.assert_frame_equal(fast, slow)
    return fast is not None


def _pandera_only(tables: Tables) -> validate_module.ValidationReport:
    with mock.patch.object(validate_module, "fast_coerce", lambda schema, frame: None):
        return validate_tables(tables, AS_OF)


def _assert_same_report(tables: Tables) -> bool:
    fast, slow = validate_tables(tables, AS_OF), _pandera_only(tables)
    assert fast.problems == slow.problems
    assert fast.row_counts == slow.row_counts
    assert fast.tables.keys() == slow.tables.keys()
    for name in fast.tables:
        pd.testing.assert_frame_equal(fast.tables[name], slow.tables[name])
    return fast.ok


# -- faults ------------------------------------------------------------------------------------

_TEXT = st.one_of(
    st.sampled_from(["", "CNY", "USD", "micro", "huge", "in", "sideways", "dpd90", "x" * 64]),
    st.just("x" * 65),
    st.text(max_size=8),
)
_DATES = st.one_of(
    st.sampled_from(
        [
            pd.Timestamp("1900-01-01"),
            pd.Timestamp("1899-12-31 23:59:59"),
            pd.Timestamp("2200-12-31 23:59:59.999999"),
            pd.Timestamp("2201-01-01"),
            pd.Timestamp(AS_OF) + pd.Timedelta(days=1),
        ]
    ),
    st.datetimes(min_value=datetime(1850, 1, 1), max_value=datetime(2250, 1, 1)).map(pd.Timestamp),
)
_FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, -1.0, MAX_AMOUNT, MAX_AMOUNT * (1 + 1e-15), -MAX_AMOUNT, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_NULLS = st.sampled_from([None, np.nan, pd.NaT, pd.NA])


def _values(dtype: str) -> st.SearchStrategy[Any]:
    """Plausible and hostile values for a column of the contract's ``dtype``."""
    if dtype.startswith("datetime"):
        return st.one_of(_DATES, _NULLS, _TEXT)
    if dtype.startswith("float"):
        return st.one_of(_FLOATS, _NULLS, _TEXT)
    if dtype.startswith("int"):
        return st.one_of(st.integers(-3, 15), st.sampled_from([2.5, 3.0]), _NULLS, _TEXT)
    if dtype == "bool":
        return st.one_of(st.booleans(), _NULLS, st.sampled_from([0, 1, "yes"]))
    return st.one_of(_TEXT, _NULLS, st.integers(0, 9))


def _put(frame: pd.DataFrame, row: int, column: str, value: Any) -> None:
    """Set one cell, as its dtype allows or else with the column turned to objects."""
    label = frame.index[row]
    try:
        frame.loc[label, column] = value
    except (TypeError, ValueError):
        values = frame[column].astype(object)
        values.loc[label] = value
        frame[column] = values


@st.composite
def _fault(draw: st.DrawFn, table: str) -> Callable[[pd.DataFrame, Tables], None]:
    """One way to break ``table`` (the frame is changed in place; the others readable)."""
    schema = SCHEMAS[table]
    columns = list(schema.columns)
    kind = draw(
        st.sampled_from(
            ["value", "value", "value", "duplicate", "orphan", "as_text", "drop", "extra", "copy"]
        )
    )
    row = draw(st.integers(0, 10_000))
    column = draw(st.sampled_from(columns))
    value = draw(_values(str(schema.columns[column].dtype)))
    other = draw(st.sampled_from(columns))

    def apply(frame: pd.DataFrame, tables: Tables) -> None:
        note(f"{table}: {kind} {column}={value!r} (row {row}, other {other})")
        if frame.empty or not {column, other} <= set(frame.columns):
            return  # a column dropped by an earlier fault
        at = row % len(frame)
        if kind == "value":
            _put(frame, at, column, value)
        elif kind == "duplicate":  # a key (or any column set) of one row repeated on another
            source = (at + 1) % len(frame)
            for name in [n for n in [column, *_key_of(table)] if n in frame]:
                _put(frame, at, name, frame[name].iloc[source])
        elif kind == "orphan" and "customer_id" in frame:
            _put(frame, at, "customer_id", "GHOST-0001")
        elif kind == "as_text":  # the whole column as text, as a CSV reader may give it
            frame[column] = frame[column].astype(str)
        elif kind == "drop":
            frame.drop(columns=[column], inplace=True)
        elif kind == "extra":
            frame["unexpected"] = 1
        elif kind == "copy":  # another column's values: the wrong type, or a broken row rule
            frame[column] = frame[other].to_numpy()

    return apply


def _key_of(table: str) -> list[str]:
    schema = SCHEMAS[table]
    return list(schema.unique or []) or [n for n, c in schema.columns.items() if c.unique][:1]


@st.composite
def _broken_tables(draw: st.DrawFn) -> Tables:
    """The base portfolio with zero to three faults, anywhere."""
    tables = {name: frame.copy() for name, frame in _base().items()}
    for _ in range(draw(st.integers(0, 3))):
        table = draw(st.sampled_from(TABLES))
        draw(_fault(table))(tables[table], tables)
    return tables


# -- equivalence -------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=st.sampled_from(TABLES), data=st.data())
def test_given_a_table_with_random_faults_when_checked_then_fast_valid_iff_pandera_finds_nothing(
    table: str, data: st.DataObject
) -> None:
    # Given one contract table, broken in zero to three ways
    frame = _base()[table].copy()
    tables = _base()
    for _ in range(data.draw(st.integers(0, 3))):
        data.draw(_fault(table))(frame, tables)
    # When the fast verdict and pandera check it, then they agree (and so do the tables)
    event("valid" if _assert_same_verdict(table, frame) else "refused")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=_broken_tables())
def test_given_broken_portfolios_when_validated_then_the_report_is_pandera_s(
    tables: Tables,
) -> None:
    # Given a portfolio with faults in any table (cross-table orphans included)
    # When validated with the fast verdict, then the report and tables are pandera's alone
    event("valid" if _assert_same_report(tables) else "refused")


def test_given_the_valid_base_when_checked_then_every_table_takes_the_fast_path() -> None:
    # Given the valid generated portfolio, each table also as one customer's rows
    tables = _base()
    one = tables["customers"]["customer_id"].iloc[0]
    for table in TABLES:
        frame = tables[table]
        # When checked, then the fast verdict says valid (pandera is never asked)
        assert _assert_same_verdict(table, frame), table
        mine = frame[frame["customer_id"] == one].reset_index(drop=True)
        assert _assert_same_verdict(table, mine), table
        assert _assert_same_verdict(table, frame.iloc[0:0]), table


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.break_tables is not None], ids=lambda c: c.name
)
def test_given_a_hostile_case_when_validated_then_fast_and_pandera_reports_match(case) -> None:
    # Given a catalogued hostile portfolio (reliability.hostile)
    broken = case.break_tables({name: frame.copy() for name, frame in _base().items()})
    # When validated, then the report is pandera's, and it names the case's table
    _assert_same_report(broken)
    assert not validate_tables(broken, AS_OF).ok


# -- each kind of check --------------------------------------------------------------------


def _agree(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> bool:
    fast = fast_coerce(schema, frame)
    try:
        slow: pd.DataFrame | None = schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors:
        slow = None
    assert (fast is None) == (slow is None)
    if fast is not None:
        pd.testing.assert_frame_equal(fast, slow)
    return fast is not None


_KINDS: list[tuple[pa.Column, list[Any], list[Any]]] = [
    (pa.Column(float, pa.Check.eq(2.0)), [2.0, 2.0], [2.0, 3.0]),
    (pa.Column(float, pa.Check.ne(2.0)), [1.0, 3.0], [2.0]),
    (pa.Column(float, pa.Check.gt(0.0)), [0.5], [0.0]),
    (pa.Column(float, pa.Check.ge(0.0)), [0.0, 1.0], [-1e-300]),
    (pa.Column(float, pa.Check.lt(1.0)), [0.5], [1.0]),
    (pa.Column(float, pa.Check.le(1.0)), [1.0], [np.inf]),
    (pa.Column(float, pa.Check.in_range(0.0, 1.0)), [0.0, 1.0], [1.5]),
    (pa.Column(float, pa.Check.in_range(0.0, 1.0, include_min=False)), [0.1], [0.0]),
    (pa.Column(float, pa.Check.in_range(0.0, 1.0, include_max=False)), [0.9], [1.0]),
    (pa.Column(str, pa.Check.isin(["a", "b"])), ["a", "b"], ["c"]),
    (pa.Column(str, pa.Check.notin(["a"])), ["b"], ["a"]),
    (pa.Column(str, pa.Check.str_length(1, 3)), ["a", "abc"], [""]),
    (pa.Column(str, pa.Check.str_length(max_value=2)), ["ab"], ["abc"]),
    (pa.Column(int, pa.Check.ge(1)), [1, 2], [0]),
    (pa.Column("datetime64[ns]", pa.Check.ge("1900-01-01")), ["1900-01-01"], ["1899-12-31"]),
    (pa.Column("datetime64[ns]", pa.Check.le("2200-12-31")), ["2200-12-31"], ["2200-12-31 01:00"]),
    (pa.Column(float, pa.Check(lambda s: s > 0)), [1.0], [-1.0]),  # custom, on the column
    (pa.Column(float, nullable=False), [1.0], [np.nan]),
    (pa.Column(float, pa.Check.ge(0.0), nullable=True), [np.nan, 1.0], [np.nan, -1.0]),
    (pa.Column(str, unique=True), ["a", "b"], ["a", "a"]),
    (pa.Column(bool), [True, False], [True, pd.NA]),
    (pa.Column(int), [1, 2], ["two"]),
]


@pytest.mark.parametrize(("column", "good", "bad"), _KINDS, ids=lambda v: str(v)[:40])
def test_given_each_check_kind_when_checked_then_fast_verdict_matches_pandera(
    column: pa.Column, good: list[Any], bad: list[Any]
) -> None:
    # Given a one-column schema with one kind of rule
    schema = pa.DataFrameSchema({"x": column}, strict=True, coerce=True)
    # When a passing and a failing column are checked
    # Then the fast verdict passes the first (pandera's table) and refers the second to pandera
    assert _agree(schema, pd.DataFrame({"x": good}))
    assert not _agree(schema, pd.DataFrame({"x": bad}))


def test_given_table_rules_when_checked_then_row_checks_keys_and_columns_match_pandera() -> None:
    # Given a schema with a row rule, a unique column set, and strict columns
    schema = pa.DataFrameSchema(
        {"a": pa.Column(float), "b": pa.Column(float, nullable=True)},
        checks=[pa.Check(lambda df: df["a"] <= df["b"], name="a <= b")],
        unique=["a", "b"],
        strict=True,
        coerce=True,
    )
    good = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 3.0]})
    # When checked whole, broken, with a column extra or missing, or given as text
    # Then each verdict is pandera's
    assert _agree(schema, good)
    assert _agree(schema, good.astype(str))
    assert not _agree(schema, good.assign(b=[0.0, 3.0]))
    assert not _agree(schema, pd.DataFrame({"a": [1.0, 1.0], "b": [2.0, 2.0]}))
    assert not _agree(schema, good.assign(c=1))
    assert not _agree(schema, good.drop(columns=["b"]))
    # And a row of nulls only passes the row rule, as pandera's ignore_na has it
    assert not _agree(schema, pd.DataFrame({"a": [1.0], "b": [np.nan]}))


@pytest.mark.parametrize(
    "schema",
    [
        pa.DataFrameSchema({"x": pa.Column(int)}, index=pa.Index(int)),
        pa.DataFrameSchema({"x": pa.Column(int)}, ordered=True),
        pa.DataFrameSchema({"x": pa.Column(int, required=False)}),
        pa.DataFrameSchema({"x.*": pa.Column(int, regex=True)}),
        pa.DataFrameSchema({"x": pa.Column(int, pa.Check(lambda s: s > 0, groupby="x"))}),
        pa.DataFrameSchema({"x": pa.Column(int, pa.Check.str_matches("a"))}),
        pa.DataFrameSchema({"x": pa.Column(int)}, checks=[pa.Check.gt(0)]),
        pa.DataFrameSchema(
            {"x": pa.Column(int)}, checks=[pa.Check(lambda r: r["x"] > 0, element_wise=True)]
        ),
    ],
    ids=["index", "ordered", "optional", "regex", "groupby", "str_matches", "table-check", "rows"],
)
def test_given_a_rule_not_derivable_when_checked_then_pandera_always_decides(
    schema: pa.DataFrameSchema,
) -> None:
    # Given a schema holding a rule the fast verdict does not read
    # When planned and checked on data pandera would accept or refuse
    # Then there is no plan and no fast verdict: pandera validates
    assert plan_of(schema) is None
    assert fast_coerce(schema, pd.DataFrame({"x": [1, 2]})) is None


def test_given_the_contract_when_planned_then_every_schema_is_derivable() -> None:
    # Given every table of the contract (required, optional, record tables)
    # When the fast verdict reads them, then none needs pandera for its plan
    assert all(plan_of(schema) is not None for schema in SCHEMAS.values())
