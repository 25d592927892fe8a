"""HTML reports from jinja2 templates: one base page, one set of macros, section blocks.

Every HTML report of the packages (feature quality, validation, monitoring) is rendered here
from templates shipped inside the packages (``<package>/templates/*.html.j2``), with
autoescape on: values are escaped by the template engine, never by hand. A report is either
its own template extending ``base.html.j2`` (the validation report) or a list of
:class:`Section` of blocks rendered by ``sections.html.j2`` (monitoring, feature quality).

It lives in ``features`` because every package may import ``features``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined


def display_value(value: Any) -> str:
    """A value as shown in a report cell (escaping is the template's job).

    Booleans read yes/no, floats keep 4 significant digits, missing values (None, NaN, NaT)
    are blank, timestamps are ISO dates, lists are joined with ``"; "``.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, list | tuple | np.ndarray):
        return "; ".join(display_value(v) for v in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


@dataclass(frozen=True)
class Table:
    """A table block: header, rows of raw values, an optional CSS class per row."""

    kind: ClassVar[str] = "table"
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    row_classes: tuple[str | None, ...] = ()
    more: int = 0
    """Rows left out of the page (shown as a note)."""
    css: str | None = None
    header_column: bool = False
    """Key-value layout: the first cell of each row is a header cell."""


@dataclass(frozen=True)
class Figure:
    """A PNG figure embedded as base64 (the page needs no external resource)."""

    kind: ClassVar[str] = "figure"
    png: bytes
    alt: str

    @property
    def data_uri(self) -> str:
        """``data:image/png;base64,...``."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (``muted`` for notes such as "none")."""

    kind: ClassVar[str] = "text"
    text: str
    muted: bool = False


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    kind: ClassVar[str] = "heading"
    text: str


@dataclass(frozen=True)
class Items:
    """A bulleted list of plain-text items."""

    kind: ClassVar[str] = "items"
    items: tuple[str, ...]


Block = Table | Figure | Text | Heading | Items


@dataclass(frozen=True)
class Section:
    """A titled section (``<h2>``) of blocks, in order."""

    title: str
    blocks: tuple[Block, ...] = field(default_factory=tuple)


def table(
    frame: pd.DataFrame | None,
    *,
    limit: int | None = None,
    row_class: str | None = None,
    empty: str = "none",
) -> Table | Text:
    """A table block of a data frame (a muted ``empty`` text when there is no row).

    Args:
        frame: the rows to show (index ignored).
        limit: most rows shown; the rest are counted in a note.
        row_class: column whose value (spaces as dashes) becomes each row's CSS class.
        empty: text shown instead of an empty table.
    """
    if frame is None or frame.empty:
        return Text(empty, muted=True)
    shown = frame if limit is None else frame.head(limit)
    classes: tuple[str | None, ...] = ()
    if row_class is not None:
        classes = tuple(str(v).replace(" ", "-") for v in shown[row_class])
    return Table(
        columns=tuple(str(c) for c in shown.columns),
        rows=tuple(tuple(row) for row in shown.itertuples(index=False, name=None)),
        row_classes=classes,
        more=len(frame) - len(shown),
    )


def key_values(items: Mapping[str, Any]) -> Table:
    """A two-column table of names (header cells) and values."""
    return Table(
        columns=(),
        rows=tuple((str(k), v) for k, v in items.items()),
        css="kv",
        header_column=True,
    )


def figure(png: bytes, alt: str) -> Figure:
    """A figure block of PNG bytes."""
    return Figure(png=png, alt=alt)


def items(texts: Iterable[str]) -> Items:
    """A bulleted list block."""
    return Items(tuple(texts))


@lru_cache(maxsize=8)
def _environment(packages: tuple[str, ...]) -> Environment:
    loaders = [PackageLoader(p, "templates") for p in (*packages, "features")]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = display_value
    return env


def render(template: str, *, package: str = "features", **context: Any) -> str:
    """Render a template of ``package`` (falling back on the shared ``features`` templates).

    Args:
        template: file name inside ``<package>/templates``.
        package: the package whose templates come first.
        **context: the template's variables.
    """
    packages = () if package == "features" else (package,)
    return _environment(packages).get_template(template).render(**context)


def render_sections(title: str, sections: Sequence[Section], **context: Any) -> str:
    """One self-contained page: ``<h1>title</h1>`` then every section in order."""
    return render("sections.html.j2", title=title, sections=sections, **context)
