"""Point in time: the records of a raw extract known at a date, the rest left out.

A data scientist's folder always holds later history. A command at ``as_of`` reads what was
known then, with the time conventions the feature groups use (``features.groups.common``):

* customers onboarded after ``as_of`` are not customers yet: their row and every record of
  theirs in the other tables are left out;
* financial statements count from ``published_date``, facilities from ``opened`` (with their
  instalments), transactions while ``ts`` lies before the end of the as-of day, defaults from
  ``default_date``;
* an instalment stays (it may fall due after ``as_of``: the schedule is known when the
  facility opens), but a payment made after ``as_of`` is shown unpaid (``paid_date`` null,
  ``amount_paid`` 0), as it was then.

A record whose date cannot be read is kept, so that validation reports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features.schema import TABLES

_DATED: dict[str, str] = {
    "customers": "onboarding_date",
    "financial_statements": "published_date",
    "credit_facilities": "opened",
    "repayments": "paid_date",
    "transactions": "ts",
    "defaults": "default_date",
}
"""The date that makes a record known, per table (a repayment's date only unpays it)."""


def read_bounds(as_of: date) -> dict[str, str]:
    """The bounds of a read at ``as_of``, as a record of what was read states them."""
    return {
        "onboarding_date, published_date, opened, default_date, paid_date": (
            f"<= {as_of.isoformat()}"
        ),
        "ts": f"< {(as_of + timedelta(days=1)).isoformat()}",
    }


@dataclass(frozen=True)
class AsOfCut:
    """What a point-in-time read left out of a folder."""

    as_of: date
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows left out per table (dated later, or belonging to a later customer or facility)."""
    unpaid: int = 0
    """Instalments kept but shown unpaid: their payment was made after ``as_of``."""
    late_customers: frozenset[str] = frozenset()
    """Ids of the customers onboarded after ``as_of``."""

    @property
    def empty(self) -> bool:
        """True when the folder held nothing after ``as_of``."""
        return not any(self.dropped.values()) and not self.unpaid

    def summary(self) -> str:
        """One information line, e.g. ``records after 2023-06-30 ignored: 12 customers ...``."""
        if self.empty:
            return f"no record after {self.as_of.isoformat()}"
        parts = [
            f"{n:,} customers onboarded later" if table == "customers" else f"{n:,} {table}"
            for table, n in self.dropped.items()
            if n
        ]
        if self.unpaid:
            parts.append(f"{self.unpaid:,} payments made later shown unpaid")
        return f"records after {self.as_of.isoformat()} ignored: " + ", ".join(parts)


def _dates(frame: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in frame.columns:
        return None
    return pd.to_datetime(frame[column], errors="coerce")


def _ids(frame: pd.DataFrame, column: str, mask: np.ndarray) -> frozenset[str]:
    """Ids only on rows of ``mask`` (an id also on a kept row stays known)."""
    if column not in frame.columns:
        return frozenset()
    ids = frame[column]
    return frozenset(ids[mask].dropna()) - frozenset(ids[~mask].dropna())


def _in(frame: pd.DataFrame, column: str, ids: frozenset[str]) -> np.ndarray:
    if not ids or column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].isin(ids).to_numpy(dtype=bool)


class _Cut:
    """The cut of one folder, table by table in contract order.

    Customers and facilities come first, so the records of later ones go with them.
    """

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of
        self.day = pd.Timestamp(as_of)
        self.late_customers: frozenset[str] = frozenset()
        self.late_facilities: frozenset[str] = frozenset()
        self.dropped: dict[str, int] = {}
        self.unpaid = 0

    def _later(self, table: str, frame: pd.DataFrame) -> np.ndarray:
        dates = _dates(frame, _DATED[table])
        if dates is None:
            return np.zeros(len(frame), dtype=bool)
        if table == "transactions":
            return (dates >= self.day + pd.Timedelta(days=1)).to_numpy(dtype=bool)
        return (dates > self.day).to_numpy(dtype=bool)

    def masks(self, table: str, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(rows to leave out, rows to show unpaid) of one table; counts them."""
        later = self._later(table, frame)
        unpay = np.zeros(len(frame), dtype=bool)
        if table == "customers":
            self.late_customers = _ids(frame, "customer_id", later)
            drop = later
        else:
            drop = _in(frame, "customer_id", self.late_customers)
            if table == "credit_facilities":
                drop = drop | later
                self.late_facilities = _ids(frame, "facility_id", drop)
            elif table == "repayments":
                drop = drop | _in(frame, "facility_id", self.late_facilities)
                unpay = later & ~drop
            else:
                drop = drop | later
        self.dropped[table] = int(drop.sum())
        self.unpaid += int(unpay.sum())
        return drop, unpay

    def apply(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """The table as known at ``as_of`` (the frame itself when nothing changes).

        Kept rows keep their index, so a validation problem names the row of the file.
        """
        drop, unpay = self.masks(table, frame)
        if not drop.any() and not unpay.any():
            return frame
        out = frame.loc[~drop]  # a new frame (copy on write): the caller's stays as it was
        unpay = unpay[~drop]
        if unpay.any():
            out.loc[unpay, "paid_date"] = pd.NaT
            if "amount_paid" in out.columns:
                out.loc[unpay, "amount_paid"] = 0.0
        return out

    def result(self) -> AsOfCut:
        return AsOfCut(self.as_of, dict(self.dropped), self.unpaid, self.late_customers)


def _in_order(tables: Iterable[tuple[str, pd.DataFrame]]) -> Iterable[tuple[str, pd.DataFrame]]:
    last = -1
    for table, frame in tables:
        if table not in _DATED:
            raise ValueError(f"unknown table '{table}'; the contract has {', '.join(TABLES)}")
        position = TABLES.index(table)
        if position <= last:
            raise ValueError(f"tables must come in contract order ({', '.join(TABLES)})")
        last = position
        yield table, frame


def cut_tables(
    tables: Iterable[tuple[str, pd.DataFrame]], as_of: date
) -> tuple[dict[str, pd.DataFrame], AsOfCut]:
    """The tables as known at ``as_of`` and what was left out.

    Args:
        tables: ``(name, frame)`` pairs in contract order (a generator reading one file at a
            time keeps only one uncut table in memory); missing tables are skipped.
        as_of: the point in time.

    Raises:
        ValueError: if a table is unknown or out of contract order.
    """
    cut = _Cut(as_of)
    out = {table: cut.apply(table, frame) for table, frame in _in_order(tables)}
    return out, cut.result()


def count_later(tables: Iterable[tuple[str, pd.DataFrame]], as_of: date) -> AsOfCut:
    """What :func:`cut_tables` would leave out at ``as_of``, without copying any table."""
    cut = _Cut(as_of)
    for table, frame in _in_order(tables):
        cut.masks(table, frame)
    return cut.result()


_WHOLE: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "onboarding_date"),
    "credit_facilities": ("facility_id", "customer_id", "opened"),
}
"""Tables whose later ids decide other tables' rows: their columns are held, then cut whole."""


class LaterCount:
    """What :func:`count_later` finds, fed chunk by chunk in contract order.

    Customers and facilities keep only the columns that name later ids until their table
    ends; every other table is counted chunk by chunk and not kept.
    """

    def __init__(self, as_of: date) -> None:
        """Start counting what lies after ``as_of``."""
        self._cut = _Cut(as_of)
        self._dropped: dict[str, int] = {}
        self._held: dict[str, list[pd.DataFrame]] = {}
        self._unpaid: dict[str, int] = {}

    def add(self, table: str, chunk: pd.DataFrame) -> None:
        """Count one chunk of ``table`` (its tables before it must have ended)."""
        if table in _WHOLE:
            held = chunk[[c for c in _WHOLE[table] if c in chunk.columns]]
            self._held.setdefault(table, []).append(held)
            return
        _, unpay = self._cut.masks(table, chunk)
        self._dropped[table] = self._dropped.get(table, 0) + self._cut.dropped[table]
        self._unpaid[table] = self._unpaid.get(table, 0) + int(unpay.sum())

    def end(self, table: str) -> None:
        """Close ``table``: a held table is cut as a whole now."""
        held = self._held.pop(table, None)
        if held is not None:
            self._cut.masks(table, pd.concat(held))
            self._dropped[table] = self._cut.dropped[table]

    def discard(self, table: str) -> None:
        """Forget ``table`` (it could not be read to its end)."""
        self._held.pop(table, None)
        self._dropped.pop(table, None)
        self._unpaid.pop(table, None)

    def result(self) -> AsOfCut:
        """The counts, as :func:`count_later` gives them."""
        cut = self._cut
        return AsOfCut(
            cut.as_of, dict(self._dropped), sum(self._unpaid.values()), cut.late_customers
        )
