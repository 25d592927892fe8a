"""Terminal rendering helpers for the CLI: rich tables from frames and reports."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _cell(value: object, float_format: str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, float_format)
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
