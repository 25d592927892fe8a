"""Point-in-time training set: one row per (customer, snapshot date) with a 12-month label.

Snapshots are calendar period ends (quarter ends for ``quarterly``, month ends for
``monthly``). At each snapshot ``s`` the rows are the customers onboarded by ``s`` and not
already in default (no ``default_date <= s``); features are computed from what was known at
``s`` only; the label ``default_12m`` is 1 when a default falls in ``(s, s + horizon]``.
Customers with less than ``min_history_months`` of relationship are flagged (``short_history``),
not dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.catalog import FEATURE_SPEC, compute_features
from features.chunks import iter_known_chunks
from features.errors import RiskgradeError
from features.groups.common import FeatureConfig, FeatureFrames, to_frames
from features.io import (
    ChunkedFileWriter,
    RawDataError,
    RawTables,
    table_path,
    write_parquet_atomic,
)
from features.source import FolderSource, RawSource, open_raw_source

KEYS: tuple[str, str] = ("customer_id", "snapshot_date")
LABEL = "default_12m"
SHORT_HISTORY = "short_history"
DATASET_FILE = "dataset.parquet"
CARD_JSON = "card.json"
CARD_MD = "card.md"

_FREQ = {"quarterly": "QE", "monthly": "ME"}


class DatasetError(RiskgradeError, ValueError):
    """The dataset cannot be built as configured (bad snapshot range, empty data, ...)."""


class DatasetConfig(BaseModel):
    """Which snapshots to build and how to label them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_snapshot: date | None = None
    """First snapshot; default: the first period end 12 months after the earliest statement,
    facility or transaction (so the 12-month windows are filled)."""
    last_snapshot: date | None = None
    """Last snapshot; default: the last period end whose label window ends by the extract date
    (the latest event date in the data)."""
    frequency: Literal["quarterly", "monthly"] = "quarterly"
    label_horizon_months: int = Field(default=12, ge=1, le=60)
    min_history_months: int = Field(default=12, ge=0, le=240)
    features: FeatureConfig = FeatureConfig()

    @model_validator(mode="after")
    def _check_range(self) -> DatasetConfig:
        if self.first_snapshot and self.last_snapshot and self.first_snapshot > self.last_snapshot:
            raise ValueError(
                f"first_snapshot {self.first_snapshot} is after last_snapshot {self.last_snapshot}"
            )
        return self


_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("financial_statements", "published_date"),
    ("credit_facilities", "opened"),
    ("repayments", "paid_date"),
    ("transactions", "ts"),
    ("defaults", "default_date"),
    ("customers", "onboarding_date"),
)
"""The dates an extract's span is read from (due dates excluded: they may lie in the future)."""

_ACTIVITY_COLUMNS = (("financial_statements", "published_date"), ("transactions", "ts"))

Bounds = dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp]]
"""(table, column) -> (earliest, latest) date, normalised to the day; absent when all null."""


def _day(value: object) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def event_bounds(raw: RawTables) -> Bounds:
    """The earliest and latest day of each dated column of the extract."""
    bounds: Bounds = {}
    for table, column in _EVENT_COLUMNS:
        values = getattr(raw, table)[column]
        low, high = values.min(), values.max()
        if pd.notna(low) and pd.notna(high):
            bounds[(table, column)] = (_day(low), _day(high))
    return bounds


def merge_bounds(first: Bounds, second: Bounds) -> Bounds:
    """The bounds of two parts of an extract taken together."""
    merged = dict(first)
    for key, (low, high) in second.items():
        if key in merged:
            low, high = min(low, merged[key][0]), max(high, merged[key][1])
        merged[key] = (low, high)
    return merged


def _extract_date(bounds: Bounds) -> pd.Timestamp:
    """Latest event date in the data (due dates excluded: they may lie in the future)."""
    if not bounds:
        raise DatasetError("the raw tables hold no dated record: cannot derive snapshots")
    return max(high for _, high in bounds.values())


def _first_activity(bounds: Bounds) -> pd.Timestamp:
    """Start of the observed window: the latest of the earliest statement and transaction.

    An extract often carries older statements or facilities than the transaction history it
    covers; a snapshot is only comparable to later ones once every source is observed.
    """
    known = [bounds[key][0] for key in _ACTIVITY_COLUMNS if key in bounds]
    if not known:
        raise DatasetError("the raw tables hold no statement or transaction")
    return max(known)


def snapshot_dates(raw: RawTables, config: DatasetConfig) -> list[date]:
    """The snapshot dates the dataset will hold, in order.

    Raises:
        DatasetError: if the range is empty or a snapshot's label window runs past the data.
    """
    bounds = event_bounds(raw)
    return snapshot_range(_extract_date(bounds), _first_activity(bounds), config)


def snapshot_range(
    extract: pd.Timestamp, first_activity: pd.Timestamp, config: DatasetConfig
) -> list[date]:
    """The snapshot dates between the observed window's start and the extract date.

    Raises:
        DatasetError: if the range is empty or a snapshot's label window runs past the data.
    """
    horizon = pd.DateOffset(months=config.label_horizon_months)
    first = config.first_snapshot or (first_activity + pd.DateOffset(months=12)).date()
    last = config.last_snapshot or (extract - horizon).date()
    if pd.Timestamp(last) + horizon > extract:
        raise DatasetError(
            f"last_snapshot {last} + {config.label_horizon_months} months runs past the latest "
            f"record ({extract.date()}): its labels would be incomplete"
        )
    dates = [d.date() for d in pd.date_range(first, last, freq=_FREQ[config.frequency])]
    if not dates:
        raise DatasetError(f"no {config.frequency} period end between {first} and {last}")
    return dates


def build_dataset(
    raw: RawTables,
    config: DatasetConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Build the training set over all snapshots.

    Args:
        raw: The raw tables (a whole portfolio).
        config: Snapshot range, frequency, label horizon, history threshold.
        progress: Called with (snapshots done, snapshots total) after each snapshot.

    Returns:
        Columns ``customer_id``, ``snapshot_date``, the features in spec order, ``short_history``
        (0/1) and ``default_12m`` (0/1), sorted by snapshot then customer.

    Raises:
        DatasetError: if no snapshot can be built.
    """
    config = config or DatasetConfig()
    dates = snapshot_dates(raw, config)
    frames = to_frames(raw)
    parts = []
    for done, snapshot in enumerate(dates, start=1):
        parts.append(snapshot_rows(frames, raw.defaults, snapshot, config))
        if progress is not None:
            progress(done, len(dates))
    return pd.concat(parts, ignore_index=True)


def snapshot_rows(
    frames: FeatureFrames, defaults: pd.DataFrame, snapshot: date, config: DatasetConfig
) -> pd.DataFrame:
    """The training rows of one snapshot (the dataset's columns, sorted by customer).

    Args:
        frames: the raw tables (a portfolio or a customer range of it) as feature frames.
        defaults: the ``defaults`` table of the same customers.
        snapshot: the snapshot date.
        config: label horizon and history threshold.
    """
    features = compute_features(frames, snapshot, config.features)
    at = pd.Timestamp(snapshot)
    horizon = pd.DateOffset(months=config.label_horizon_months)
    defaults = defaults[["customer_id", "default_date"]]
    in_default = defaults.loc[defaults["default_date"] <= at, "customer_id"]
    window = defaults["default_date"].gt(at) & defaults["default_date"].le(at + horizon)
    defaulted = defaults.loc[window, "customer_id"]
    rows = features.loc[~features["customer_id"].isin(in_default)].rename(
        columns={"as_of": "snapshot_date"}
    )
    rows[SHORT_HISTORY] = (rows["months_as_customer"] < config.min_history_months).astype("int8")
    rows[LABEL] = rows["customer_id"].isin(defaulted).astype("int8")
    return rows[[*KEYS, *FEATURE_SPEC.names, SHORT_HISTORY, LABEL]]


def read_dataset(path: Path | str) -> pd.DataFrame:
    """A training set: a dataset folder, its Parquet file, or a Spark-written partitioned folder.

    A partitioned folder (``snapshot_date=<date>/part-*.parquet``, from ``riskgrade features
    build --engine spark``) is read into the same columns, types and row order as
    :func:`build_dataset` produces.

    Raises:
        DatasetError: if there is no dataset at ``path``.
    """
    path = Path(path)
    if path.is_dir() and (path / DATASET_FILE).is_file():
        path = path / DATASET_FILE
    if path.is_file():
        return pd.read_parquet(path)
    if not path.is_dir() or not any(path.glob("snapshot_date=*/*.parquet")):
        raise DatasetError(f"no dataset at {path} (expected a dataset folder or parquet file)")
    frame = (
        pl.scan_parquet(path / "snapshot_date=*" / "*.parquet", hive_partitioning=True)
        .with_columns(pl.col("snapshot_date").cast(pl.Date))
        .sort("snapshot_date", "customer_id")
        .collect()
    )
    out = frame.select(*KEYS, *FEATURE_SPEC.names, SHORT_HISTORY, LABEL).to_pandas()
    out["customer_id"] = out["customer_id"].astype("str")
    out["snapshot_date"] = out["snapshot_date"].astype("datetime64[ns]")
    return out.astype({SHORT_HISTORY: "int8", LABEL: "int8"})


def content_hash(dataset: pd.DataFrame) -> str:
    """SHA-256 of a canonical serialisation (column names, dtypes and row hashes, in order).

    Independent of the Parquet writer's version and metadata, unlike the file bytes.
    """
    tally = _CardTally()
    tally.add(dataset)
    return tally.digest.hexdigest()


class _CardTally:
    """A dataset card built from consecutive parts of the dataset, in row order.

    Every row hash depends on its row only, so the hash of the parts fed in order is the
    hash of the whole; the counts add up.
    """

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.columns: list[str] | None = None
        self.rows = self.defaults = self.short = 0
        self.per_snapshot: dict[pd.Timestamp, list[int]] = {}
        self.missing: dict[str, int] = {}

    def add(self, part: pd.DataFrame) -> None:
        """Count the next rows (every part has the same columns and dtypes)."""
        if self.columns is None:
            self.columns = list(part.columns)
            self.digest.update(json.dumps([[c, str(t)] for c, t in part.dtypes.items()]).encode())
            features = [c for c in part.columns if c not in (*KEYS, SHORT_HISTORY, LABEL)]
            self.missing = dict.fromkeys(features, 0)
        rows = pd.util.hash_pandas_object(part, index=False).to_numpy(dtype=np.uint64)
        self.digest.update(rows.tobytes())
        if SHORT_HISTORY not in part.columns:  # content_hash of any frame
            return
        self.rows += len(part)
        self.defaults += int(part[LABEL].sum())
        self.short += int(part[SHORT_HISTORY].sum())
        per_snapshot = part.groupby("snapshot_date", sort=True)[LABEL].agg(["size", "sum"])
        for snapshot, counts in per_snapshot.iterrows():
            seen = self.per_snapshot.setdefault(pd.Timestamp(snapshot), [0, 0])
            seen[0] += int(counts["size"])
            seen[1] += int(counts["sum"])
        for column, n in part[list(self.missing)].isna().sum().items():
            self.missing[column] += int(n)

    def card(self, customers: int) -> dict[str, object]:
        """The card of the rows counted (``customers``: distinct customer ids among them)."""
        rows = self.rows
        return {
            "rows": rows,
            "customers": customers,
            "default_rate": self.defaults / rows if rows else float("nan"),
            "short_history_share": self.short / rows if rows else 0.0,
            "feature_spec_version": FEATURE_SPEC.version,
            "snapshots": [
                {
                    "snapshot_date": str(snapshot.date()),
                    "rows": size,
                    "default_rate": defaults / size,
                }
                for snapshot, (size, defaults) in sorted(self.per_snapshot.items())
            ],
            "missing_share": {
                c: n / rows if rows else float("nan") for c, n in self.missing.items()
            },
            "content_sha256": self.digest.hexdigest(),
        }


def dataset_card(dataset: pd.DataFrame) -> dict[str, object]:
    """Summary of a dataset: size, default rate per snapshot, missing share per feature, hash."""
    tally = _CardTally()
    tally.add(dataset)
    return tally.card(int(dataset["customer_id"].nunique()))


def _card_markdown(card: dict[str, Any]) -> str:
    lines = [
        "# Dataset card",
        "",
        f"- rows: {card['rows']}, customers: {card['customers']}",
        f"- default rate: {card['default_rate']:.4f}",
        f"- short-history share: {card['short_history_share']:.4f}",
        f"- feature spec version: {card['feature_spec_version']}",
        f"- content sha256: `{card['content_sha256']}`",
        "",
        "## Rows and default rate per snapshot",
        "",
        "| snapshot | rows | default rate |",
        "|---|---:|---:|",
        *(
            f"| {s['snapshot_date']} | {s['rows']} | {s['default_rate']:.4f} |"
            for s in card["snapshots"]
        ),
        "",
        "## Missing share per feature",
        "",
        "| feature | missing |",
        "|---|---:|",
        *(f"| {n} | {v:.3f} |" for n, v in card["missing_share"].items()),
    ]
    return "\n".join(lines) + "\n"


def _write_text_atomic(text: str, path: Path) -> None:
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _write_card(card: dict[str, object], out_dir: Path) -> None:
    """Add the Parquet file's SHA-256 to the card; write ``card.json`` and ``card.md``."""
    card["file_sha256"] = _file_sha256(out_dir / DATASET_FILE)
    _write_text_atomic(json.dumps(card, indent=2, ensure_ascii=False) + "\n", out_dir / CARD_JSON)
    _write_text_atomic(_card_markdown(card), out_dir / CARD_MD)


def write_dataset(dataset: pd.DataFrame, out_dir: Path | str) -> dict[str, object]:
    """Write ``dataset.parquet``, ``card.json`` and ``card.md`` into ``out_dir`` (each atomically).

    Returns:
        The card (also written as JSON), including the Parquet file's own SHA-256.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(dataset, out_dir / DATASET_FILE)
    card = dataset_card(dataset)
    _write_card(card, out_dir)
    return card


ROW_GROUP_ROWS = 1024 * 1024
"""Rows per row group of ``dataset.parquet`` written range by range: pyarrow's default, so the
file is the one a whole-frame write gives, byte for byte, whatever the chunk size."""


def _parquet_bounds(source: RawSource) -> Bounds | None:
    """The extract's date bounds from the Parquet files' date columns alone (a lazy scan).

    None when the source is not a Parquet folder or a column is not a plain date or
    timestamp (validation then reads and reports it).
    """
    if not isinstance(source, FolderSource):
        return None
    bounds: Bounds = {}
    try:
        for table, column in _EVENT_COLUMNS:
            path = table_path(source.path, table)
            if path.suffix != ".parquet":
                return None
            scan = pl.scan_parquet(path).select(column)
            dtype = scan.collect_schema()[column]
            naive = isinstance(dtype, pl.Datetime) and dtype.time_zone is None
            if not (dtype == pl.Date or naive):
                return None
            span = scan.select(pl.col(column).min().alias("low"), pl.col(column).max())
            low, high = span.collect().row(0)
            if low is not None and high is not None:
                bounds[(table, column)] = (_day(low), _day(high))
    except (OSError, RawDataError, pl.exceptions.PolarsError):
        return None
    return bounds


def _chunk_bounds(source: RawSource, today: date, chunk_customers: int) -> Bounds:
    """The extract's date bounds from its validated customer ranges (one read of each)."""
    bounds: Bounds = {}
    for chunk in iter_known_chunks(source, today, chunk_customers, mode="strict"):
        bounds = merge_bounds(bounds, event_bounds(chunk.tables))
    return bounds


def _copy_row_groups(
    parts: list[Path], target: ChunkedFileWriter, tally: _CardTally, row_group: int
) -> None:
    """Append the parts' rows in order to ``target`` in row groups of ``row_group`` rows."""
    waiting: list[pa.Table] = []
    held = 0
    for part in parts:
        stored = pq.ParquetFile(part)
        for index in range(stored.num_row_groups):
            table = stored.read_row_group(index)
            tally.add(table.to_pandas())
            waiting.append(table)
            held += table.num_rows
            while held >= row_group:
                joined = pa.concat_tables(waiting)
                target.write(joined.slice(0, row_group).combine_chunks())
                waiting, held = [joined.slice(row_group)], held - row_group
    if held:
        target.write(pa.concat_tables(waiting).combine_chunks())


def build_dataset_chunked(
    raw: RawSource | Path | str,
    out_dir: Path | str,
    config: DatasetConfig | None = None,
    *,
    chunk_customers: int = 10_000,
    today: date | None = None,
    progress: Callable[[int], None] | None = None,
    row_group: int = ROW_GROUP_ROWS,
) -> dict[str, object]:
    """Build the training set range by range and write it as :func:`write_dataset` does.

    Each customer range is read and validated once (:func:`features.chunks.iter_known_chunks`,
    nothing may lie after ``today``, as :func:`features.validate.load_raw` requires) and its
    rows of every snapshot are computed and put aside, one file per snapshot; the snapshots
    are then copied in order into ``dataset.parquet``. Peak memory follows the range (and one
    row group of the output), not the portfolio; the files equal those of
    ``write_dataset(build_dataset(load_raw(raw)))``. The snapshot dates come from a scan of
    the Parquet files' date columns (other sources: one more read of every range).

    Args:
        raw: a raw folder or database URL (see :mod:`features.source`).
        out_dir: the dataset folder (created; its files are replaced only when complete).
        config: snapshot range, frequency, label horizon, history threshold.
        chunk_customers: customers per range.
        today: the extract's date (default: today); nothing may be dated later.
        progress: called with the number of customers done after each range.
        row_group: rows per row group of ``dataset.parquet``.

    Returns:
        The card (also written as ``card.json``), with the Parquet file's SHA-256.

    Raises:
        RawValidationError: listing every problem of the raw data (nothing is written).
        DatasetError: if no snapshot can be built.
        ValueError: if ``chunk_customers`` < 1.
    """
    config = config or DatasetConfig()
    today = today or date.today()
    if chunk_customers < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_customers}")
    source = open_raw_source(raw)
    bounds = _parquet_bounds(source)
    if bounds is None:
        bounds = _chunk_bounds(source, today, chunk_customers)
    dates = snapshot_range(_extract_date(bounds), _first_activity(bounds), config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".snapshots."))
    try:
        parts = [staging / f"{number:05d}.parquet" for number in range(len(dates))]
        writers: dict[int, ChunkedFileWriter] = {}
        empty: pd.DataFrame | None = None
        customers = done = 0
        try:
            for chunk in iter_known_chunks(source, today, chunk_customers, mode="strict"):
                frames = to_frames(chunk.tables)
                seen: set[str] = set()
                for number, snapshot in enumerate(dates):
                    rows = snapshot_rows(frames, chunk.tables.defaults, snapshot, config)
                    if rows.empty:
                        empty = rows if empty is None else empty
                        continue
                    if number not in writers:
                        writers[number] = ChunkedFileWriter(parts[number])
                    writers[number].write(rows)
                    seen.update(rows["customer_id"])
                customers += len(seen)
                done += len(chunk.tables.customers)
                if progress is not None:
                    progress(done)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():
            writer.close()
        tally = _CardTally()
        with ChunkedFileWriter(out_dir / DATASET_FILE) as target:
            _copy_row_groups([parts[n] for n in sorted(writers)], target, tally, row_group)
            if not target.rows:
                if empty is None:
                    raise DatasetError("no customer range was read: the raw data holds none")
                tally.add(empty)
                target.write(empty)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    card = tally.card(customers)
    _write_card(card, out_dir)
    return card
