"""Terminal rendering helpers for the CLI: rich tables from frames and reports."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from training.gates import GateResult

console = Console()
err_console = Console(stderr=True)


def _cell(value: object, float_format: str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, float_format)
    if isinstance(value, datetime) and value == datetime.combine(value.date(), datetime.min.time()):
        return value.date().isoformat()  # a day, not midnight (pandas keeps dates as datetimes)
    return str(value)


def frame_table(
    frame: pd.DataFrame, title: str, *, float_format: str = ".4f", index: bool = False
) -> Table:
    """A rich table showing a frame (optionally with its index as the first column)."""
    table = Table(title=title, title_justify="left")
    shown = frame.reset_index() if index else frame
    for column in shown.columns:
        numeric = pd.api.types.is_numeric_dtype(shown[column])
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in shown.itertuples(index=False):
        table.add_row(*(_cell(value, float_format) for value in row))
    return table


def rows_table(title: str, columns: Iterable[str], rows: Iterable[Iterable[object]]) -> Table:
    """A rich table from plain rows."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def compact_table(
    title: str,
    columns: Iterable[str],
    rows: Iterable[Iterable[object]],
    *,
    last_fits: bool = False,
    wrap: Iterable[str] = (),
) -> Table:
    """A table for narrow terminals: no outer frame, one line per row, no cell cut short.

    Every cell is kept whole on one line; with ``last_fits`` the last column alone gives way
    when the terminal is too narrow (its cells end in an ellipsis instead of wrapping). The
    columns named in ``wrap`` (free text) wrap at word boundaries instead, with a line between
    rows so that each row reads as one.
    """
    wrapped = set(wrap)
    names = list(columns)
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        show_lines=bool(wrapped),
    )
    for i, name in enumerate(names):
        last = i == len(names) - 1
        table.add_column(name, no_wrap=not (last and last_fits) and name not in wrapped)
    for row in rows:
        cells: list[str | Text] = [str(cell) for cell in row]
        if last_fits:
            cells[-1] = Text(str(cells[-1]), no_wrap=True, overflow="ellipsis")
        table.add_row(*cells)
    return table


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def gate_table(gates: Iterable[GateResult], title: str) -> Table:
    """Gates as rows: name, passed, value, threshold, how it was judged."""
    return rows_table(
        title,
        ["gate", "passed", "value", "threshold", "how"],
        [
            (
                gate.name,
                "yes" if gate.passed else "[bold red]NO[/]",
                _fmt(gate.value),
                _fmt(gate.threshold),
                gate.note,
            )
            for gate in gates
        ],
    )


def test_window_name(split_kind: object) -> str:
    """How a training run's test window is called: out of time, or a random sample."""
    return "out-of-time test" if split_kind == "out_of_time" else "random test sample"


def grade_table(grades: pd.DataFrame, title: str = "Grades on the out-of-time test") -> Table:
    """The per-grade validation table: band, customers, observed against predicted, light."""
    table = Table(title=title, title_justify="left")
    for column in ("grade", "PD band", "customers", "share", "observed DR", "mean PD", "test"):
        table.add_column(column, justify="left" if column in ("grade", "test") else "right")
    colours = {"green": "green", "yellow": "yellow", "red": "bold red"}
    for row in grades.itertuples(index=False):
        light = str(row.traffic_light)
        table.add_row(
            f"{row.grade} {row.label}",
            f"{row.pd_lower:.2%}-{row.pd_upper:.2%}",
            f"{int(row.customers):,}",
            f"{row.share:.1%}",
            "" if pd.isna(row.observed_dr) else f"{row.observed_dr:.2%}",
            "" if pd.isna(row.mean_pd) else f"{row.mean_pd:.2%}",
            f"[{colours.get(light, 'dim')}]{light}[/]",
        )
    return table
