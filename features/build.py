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
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.catalog import FEATURE_SPEC, compute_features
from features.errors import RiskgradeError
from features.groups.common import FeatureConfig, to_frames
from features.io import RawTables, write_parquet_atomic

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


def _extract_date(raw: RawTables) -> pd.Timestamp:
    """Latest event date in the data (due dates excluded: they may lie in the future)."""
    candidates = [
        raw.financial_statements["published_date"].max(),
        raw.credit_facilities["opened"].max(),
        raw.repayments["paid_date"].max(),
        raw.transactions["ts"].max(),
        raw.defaults["default_date"].max(),
        raw.customers["onboarding_date"].max(),
    ]
    known = [pd.Timestamp(c).normalize() for c in candidates if pd.notna(c)]
    if not known:
        raise DatasetError("the raw tables hold no dated record: cannot derive snapshots")
    return max(known)


def _first_activity(raw: RawTables) -> pd.Timestamp:
    """Start of the observed window: the latest of the earliest statement and transaction.

    An extract often carries older statements or facilities than the transaction history it
    covers; a snapshot is only comparable to later ones once every source is observed.
    """
    candidates = [
        raw.financial_statements["published_date"].min(),
        raw.transactions["ts"].min(),
    ]
    known = [pd.Timestamp(c).normalize() for c in candidates if pd.notna(c)]
    if not known:
        raise DatasetError("the raw tables hold no statement or transaction")
    return max(known)


def snapshot_dates(raw: RawTables, config: DatasetConfig) -> list[date]:
    """The snapshot dates the dataset will hold, in order.

    Raises:
        DatasetError: if the range is empty or a snapshot's label window runs past the data.
    """
    return snapshot_range(_extract_date(raw), _first_activity(raw), config)


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
    defaults = raw.defaults[["customer_id", "default_date"]]
    horizon = pd.DateOffset(months=config.label_horizon_months)
    parts = []
    for done, snapshot in enumerate(dates, start=1):
        features = compute_features(frames, snapshot, config.features)
        at = pd.Timestamp(snapshot)
        in_default = defaults.loc[defaults["default_date"] <= at, "customer_id"]
        window = defaults["default_date"].gt(at) & defaults["default_date"].le(at + horizon)
        defaulted = defaults.loc[window, "customer_id"]
        rows = features.loc[~features["customer_id"].isin(in_default)].rename(
            columns={"as_of": "snapshot_date"}
        )
        rows[SHORT_HISTORY] = (rows["months_as_customer"] < config.min_history_months).astype(
            "int8"
        )
        rows[LABEL] = rows["customer_id"].isin(defaulted).astype("int8")
        parts.append(rows)
        if progress is not None:
            progress(done, len(dates))
    dataset = pd.concat(parts, ignore_index=True)
    return dataset[[*KEYS, *FEATURE_SPEC.names, SHORT_HISTORY, LABEL]]


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
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(t)] for c, t in dataset.dtypes.items()]).encode())
    rows = pd.util.hash_pandas_object(dataset, index=False).to_numpy(dtype=np.uint64)
    digest.update(rows.tobytes())
    return digest.hexdigest()


def dataset_card(dataset: pd.DataFrame) -> dict[str, object]:
    """Summary of a dataset: size, default rate per snapshot, missing share per feature, hash."""
    per_snapshot = dataset.groupby("snapshot_date", sort=True)[LABEL].agg(["size", "mean"])
    features = [c for c in dataset.columns if c not in (*KEYS, SHORT_HISTORY, LABEL)]
    return {
        "rows": len(dataset),
        "customers": int(dataset["customer_id"].nunique()),
        "default_rate": float(dataset[LABEL].mean()) if len(dataset) else float("nan"),
        "short_history_share": float(dataset[SHORT_HISTORY].mean()) if len(dataset) else 0.0,
        "feature_spec_version": FEATURE_SPEC.version,
        "snapshots": [
            {
                "snapshot_date": str(s.date()),
                "rows": int(r["size"]),
                "default_rate": float(r["mean"]),
            }
            for s, r in per_snapshot.iterrows()
        ],
        "missing_share": {c: float(dataset[c].isna().mean()) for c in features},
        "content_sha256": content_hash(dataset),
    }


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


def write_dataset(dataset: pd.DataFrame, out_dir: Path | str) -> dict[str, object]:
    """Write ``dataset.parquet``, ``card.json`` and ``card.md`` into ``out_dir`` (each atomically).

    Returns:
        The card (also written as JSON), including the Parquet file's own SHA-256.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(dataset, out_dir / DATASET_FILE)
    card = dataset_card(dataset)
    card["file_sha256"] = hashlib.sha256((out_dir / DATASET_FILE).read_bytes()).hexdigest()
    _write_text_atomic(json.dumps(card, indent=2, ensure_ascii=False) + "\n", out_dir / CARD_JSON)
    _write_text_atomic(_card_markdown(card), out_dir / CARD_MD)
    return card
