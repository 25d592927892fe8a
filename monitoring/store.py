"""The monitoring store: an embedded DuckDB file holding every rating run, so runs compare.

Tables: ``runs`` (one row per run: date, model, counts, notes), ``ratings`` (one row per run
and customer, with the full calibrated SHAP vector as a ``DOUBLE[]`` in the order of the run's
``feature_names``), ``drift`` (PSI rows of each run) and ``reviews`` (credit reviews recorded
by risk officers). A run is written in one transaction: a failed write leaves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from monitoring.config import MonitoringError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    as_of DATE NOT NULL,
    created_at TIMESTAMP NOT NULL,
    previous_run_id VARCHAR,
    model_version VARCHAR NOT NULL,
    bundle_hash VARCHAR NOT NULL,
    spec_version VARCHAR NOT NULL,
    feature_names VARCHAR NOT NULL,
    customers INTEGER NOT NULL,
    performing INTEGER NOT NULL,
    row_counts VARCHAR NOT NULL,
    notes VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    run_id VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    industry VARCHAR,
    region VARCHAR,
    size_class VARCHAR,
    onboarding_date DATE,
    in_default BOOLEAN NOT NULL,
    default_date DATE,
    pd DOUBLE NOT NULL,
    log_odds DOUBLE NOT NULL,
    score INTEGER NOT NULL,
    grade VARCHAR NOT NULL,
    grade_index INTEGER NOT NULL,
    model_tier VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    tier_rank INTEGER NOT NULL,
    hard_rules VARCHAR NOT NULL,
    reasons VARCHAR NOT NULL,
    base DOUBLE NOT NULL,
    contributions DOUBLE[] NOT NULL,
    PRIMARY KEY (run_id, customer_id)
);
CREATE TABLE IF NOT EXISTS drift (
    run_id VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    feature_group VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    n INTEGER NOT NULL,
    reference_rows INTEGER NOT NULL,
    psi DOUBLE,
    psi_noise DOUBLE,
    flag VARCHAR NOT NULL,
    missing_share DOUBLE,
    reference_missing_share DOUBLE,
    shares VARCHAR NOT NULL,
    reference_shares VARCHAR NOT NULL,
    PRIMARY KEY (run_id, feature)
);
CREATE TABLE IF NOT EXISTS reviews (
    customer_id VARCHAR NOT NULL,
    review_date DATE NOT NULL,
    source VARCHAR NOT NULL,
    PRIMARY KEY (customer_id, review_date)
);
"""

RATING_COLUMNS = [
    "customer_id",
    "industry",
    "region",
    "size_class",
    "onboarding_date",
    "in_default",
    "default_date",
    "pd",
    "log_odds",
    "score",
    "grade",
    "grade_index",
    "model_tier",
    "tier",
    "tier_rank",
    "hard_rules",
    "reasons",
    "base",
]
"""Columns of a run's ratings table (the contributions are kept apart as a matrix)."""


@dataclass(frozen=True)
class RunInfo:
    """One monitoring run's header."""

    run_id: str
    as_of: date
    created_at: datetime
    previous_run_id: str | None
    model_version: str
    bundle_hash: str
    spec_version: str
    feature_names: list[str]
    customers: int
    performing: int
    row_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoredRun:
    """A run read back: header, per-customer ratings (sorted by id) and SHAP matrix."""

    info: RunInfo
    ratings: pd.DataFrame
    """Columns `RATING_COLUMNS`, one row per customer, sorted by ``customer_id``."""
    contributions: np.ndarray
    """``(n, len(info.feature_names))`` calibrated SHAP values, row-aligned with ``ratings``."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.info.run_id

    @property
    def as_of(self) -> date:
        """The run's rating date."""
        return self.info.as_of


def _to_date(value: Any) -> date:
    return pd.Timestamp(value).date()


class MonitoringStore:
    """Read and write monitoring runs in one DuckDB file (created on first use)."""

    def __init__(self, path: Path | str) -> None:
        """Open (and create if needed) the store at ``path``; ``:memory:`` for a throwaway."""
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._memory = duckdb.connect(":memory:") if self.path == ":memory:" else None
        with self.connect() as con:
            con.execute(_SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work (DuckDB allows one writing process at a time)."""
        if self._memory is not None:
            yield self._memory
            return
        con = duckdb.connect(self.path)
        try:
            yield con
        finally:
            con.close()

    # -- runs ------------------------------------------------------------------------------
    def next_run_id(self, as_of: date) -> str:
        """A new readable id ``R<yyyymmdd>-<nn>`` (``nn`` counts runs at that date)."""
        prefix = f"R{as_of:%Y%m%d}-"
        with self.connect() as con:
            taken = {
                r[0]
                for r in con.execute(
                    "SELECT run_id FROM runs WHERE run_id LIKE ?", [prefix + "%"]
                ).fetchall()
            }
        k = 1
        while f"{prefix}{k:02d}" in taken:
            k += 1
        return f"{prefix}{k:02d}"

    def save_run(
        self,
        info: RunInfo,
        ratings: pd.DataFrame,
        contributions: np.ndarray,
        drift: pd.DataFrame | None = None,
    ) -> None:
        """Write a run (header, ratings with SHAP vectors, drift rows) in one transaction.

        Raises:
            MonitoringError: if the run id exists or the inputs do not line up.
        """
        matrix = np.ascontiguousarray(contributions, dtype=np.float64)
        if matrix.shape != (len(ratings), len(info.feature_names)):
            raise MonitoringError(
                f"contributions shape {matrix.shape} does not match "
                f"{len(ratings)} ratings x {len(info.feature_names)} features"
            )
        missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
        if missing:
            raise MonitoringError(f"ratings lack column(s) {missing}")
        table = pa.Table.from_pandas(ratings[RATING_COLUMNS], preserve_index=False)
        width = matrix.shape[1]
        offsets = pa.array(np.arange(len(ratings) + 1, dtype=np.int32) * width, pa.int32())
        table = table.append_column(
            "contributions", pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel()))
        )
        table = table.add_column(0, "run_id", pa.array([info.run_id] * len(ratings), pa.string()))
        with self.connect() as con:
            exists = con.execute(
                "SELECT count(*) FROM runs WHERE run_id = ?", [info.run_id]
            ).fetchall()
            if exists[0][0]:
                raise MonitoringError(f"run {info.run_id!r} already exists in {self.path}")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        info.run_id,
                        info.as_of,
                        info.created_at,
                        info.previous_run_id,
                        info.model_version,
                        info.bundle_hash,
                        info.spec_version,
                        json.dumps(info.feature_names),
                        info.customers,
                        info.performing,
                        json.dumps(info.row_counts, sort_keys=True),
                        json.dumps(info.notes),
                    ],
                )
                con.register("_ratings", table)
                con.execute(
                    "INSERT INTO ratings (run_id, "
                    + ", ".join(RATING_COLUMNS)
                    + ", contributions) "
                    "SELECT * FROM _ratings"
                )
                con.unregister("_ratings")
                if drift is not None and len(drift):
                    rows = drift.assign(
                        run_id=info.run_id,
                        shares=drift["shares"].map(json.dumps),
                        reference_shares=drift["reference_shares"].map(json.dumps),
                    )[
                        [
                            "run_id",
                            "feature",
                            "group",
                            "kind",
                            "n",
                            "reference_rows",
                            "psi",
                            "psi_noise",
                            "flag",
                            "missing_share",
                            "reference_missing_share",
                            "shares",
                            "reference_shares",
                        ]
                    ]
                    con.register("_drift", rows)
                    con.execute("INSERT INTO drift SELECT * FROM _drift")
                    con.unregister("_drift")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def list_runs(self) -> pd.DataFrame:
        """Every run's header, oldest first."""
        with self.connect() as con:
            return con.execute(
                "SELECT run_id, as_of, created_at, previous_run_id, model_version, customers, "
                "performing FROM runs ORDER BY as_of, run_id"
            ).df()

    def _info(self, con: duckdb.DuckDBPyConnection, run_id: str) -> RunInfo:
        rows = con.execute(
            "SELECT run_id, as_of, created_at, previous_run_id, model_version, bundle_hash, "
            "spec_version, feature_names, customers, performing, row_counts, notes "
            "FROM runs WHERE run_id = ?",
            [run_id],
        ).fetchall()
        if not rows:
            known = [
                r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()
            ]
            raise MonitoringError(f"no run {run_id!r} in {self.path}; known runs: {known[-10:]}")
        row = rows[0]
        return RunInfo(
            run_id=row[0],
            as_of=_to_date(row[1]),
            created_at=row[2],
            previous_run_id=row[3],
            model_version=row[4],
            bundle_hash=row[5],
            spec_version=row[6],
            feature_names=json.loads(row[7]),
            customers=int(row[8]),
            performing=int(row[9]),
            row_counts=json.loads(row[10]),
            notes=json.loads(row[11]),
        )

    def run_info(self, run_id: str) -> RunInfo:
        """One run's header.

        Raises:
            MonitoringError: for an unknown run id.
        """
        with self.connect() as con:
            return self._info(con, run_id)

    def load_run(self, run_id: str) -> StoredRun:
        """A stored run with its ratings and SHAP matrix.

        Raises:
            MonitoringError: for an unknown run id.
        """
        with self.connect() as con:
            info = self._info(con, run_id)
            table = con.sql(
                "SELECT " + ", ".join(RATING_COLUMNS) + ", contributions FROM ratings "
                "WHERE run_id = ? ORDER BY customer_id",
                params=[run_id],
            ).to_arrow_table()
        width = len(info.feature_names)
        column = table.column("contributions").combine_chunks()
        values = column.flatten().to_numpy(zero_copy_only=False)
        matrix = values.reshape(len(table), width) if len(table) else np.zeros((0, width))
        ratings = table.drop_columns(["contributions"]).to_pandas()
        for name in ("onboarding_date", "default_date"):
            ratings[name] = pd.to_datetime(ratings[name])
        return StoredRun(info=info, ratings=ratings, contributions=np.array(matrix, copy=True))

    def latest_before(self, as_of: date) -> str | None:
        """The latest run strictly before ``as_of`` (ties: the last created), or None."""
        with self.connect() as con:
            row = con.execute(
                "SELECT run_id FROM runs WHERE as_of < ? ORDER BY as_of DESC, run_id DESC LIMIT 1",
                [as_of],
            ).fetchall()
        return str(row[0][0]) if row else None

    def runs_up_to(self, as_of: date) -> list[RunInfo]:
        """Headers of the runs rated on or before ``as_of``, oldest first."""
        with self.connect() as con:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT run_id FROM runs WHERE as_of <= ? ORDER BY as_of, run_id", [as_of]
                ).fetchall()
            ]
            return [self._info(con, run_id) for run_id in ids]

    def drift_of(self, run_id: str) -> pd.DataFrame:
        """The drift rows of a run (``shares`` lists decoded)."""
        with self.connect() as con:
            frame = con.execute(
                "SELECT * EXCLUDE (run_id) FROM drift WHERE run_id = ? ORDER BY feature",
                [run_id],
            ).df()
        for name in ("shares", "reference_shares"):
            frame[name] = frame[name].map(json.loads)
        return frame.rename(columns={"feature_group": "group"})

    def ratings_of(self, run_ids: list[str], columns: list[str]) -> pd.DataFrame:
        """Selected rating columns (plus ``run_id``) of several runs, without SHAP vectors."""
        unknown = [c for c in columns if c not in RATING_COLUMNS]
        if unknown:
            raise MonitoringError(f"unknown rating column(s) {unknown}")
        if not run_ids:
            return pd.DataFrame(columns=["run_id", *columns])
        marks = ", ".join("?" for _ in run_ids)
        with self.connect() as con:
            return con.execute(
                f"SELECT run_id, {', '.join(columns)} FROM ratings WHERE run_id IN ({marks}) "
                "ORDER BY run_id, customer_id",
                run_ids,
            ).df()

    # -- reviews and first ratings ---------------------------------------------------------
    def record_reviews(self, reviews: pd.DataFrame, source: str = "officer") -> int:
        """Record credit reviews (``customer_id``, ``review_date``); repeats are ignored.

        Returns:
            The number of new review records.

        Raises:
            MonitoringError: if a column is missing or a date does not parse.
        """
        missing = [c for c in ("customer_id", "review_date") if c not in reviews.columns]
        if missing:
            raise MonitoringError(f"reviews lack column(s) {missing}")
        try:
            dates = pd.to_datetime(reviews["review_date"]).dt.date
        except (ValueError, TypeError) as error:
            raise MonitoringError(f"reviews.review_date does not parse as dates: {error}") from None
        frame = pd.DataFrame(
            {
                "customer_id": reviews["customer_id"].astype(str),
                "review_date": dates,
                "source": source,
            }
        ).drop_duplicates(["customer_id", "review_date"])
        with self.connect() as con:
            before = con.execute("SELECT count(*) FROM reviews").fetchall()
            con.register("_reviews", frame)
            con.execute("INSERT OR IGNORE INTO reviews SELECT * FROM _reviews")
            con.unregister("_reviews")
            after = con.execute("SELECT count(*) FROM reviews").fetchall()
        return int(after[0][0]) - int(before[0][0])

    def last_reviews(self, as_of: date, recorded_only: bool = False) -> pd.Series:
        """Per customer, the latest review on or before ``as_of``.

        A review is a recorded one, or else (unless ``recorded_only``) the date of the
        customer's first monitoring rating (the initial rating counts as a review).
        """
        first_ratings = (
            ""
            if recorded_only
            else (
                """
                    UNION ALL
                    SELECT r.customer_id, min(u.as_of) AS d FROM ratings r
                    JOIN runs u USING (run_id) WHERE u.as_of <= ? GROUP BY r.customer_id"""
            )
        )
        with self.connect() as con:
            frame = con.execute(
                """
                SELECT customer_id, max(d) AS last_review FROM (
                    SELECT customer_id, review_date AS d FROM reviews WHERE review_date <= ?"""
                + first_ratings
                + """
                ) GROUP BY customer_id ORDER BY customer_id
                """,
                [as_of] if recorded_only else [as_of, as_of],
            ).df()
        return pd.Series(
            pd.to_datetime(frame["last_review"]).to_numpy(),
            index=frame["customer_id"].to_numpy(),
            name="last_review",
        )
