"""Reading and writing raw folders: one Parquet (or CSV) file per table."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import RiskgradeError
from features.schema import SCHEMAS, TABLES


class RawDataError(RiskgradeError, ValueError):
    """A raw folder or file cannot be read as the raw-data contract demands."""


@dataclass(frozen=True)
class RawTables:
    """The six raw tables of the contract, as pandas frames."""

    customers: pd.DataFrame
    financial_statements: pd.DataFrame
    credit_facilities: pd.DataFrame
    repayments: pd.DataFrame
    transactions: pd.DataFrame
    defaults: pd.DataFrame

    def items(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """Yield (table name, frame) in contract order."""
        for field in fields(self):
            yield field.name, getattr(self, field.name)

    @classmethod
    def from_mapping(cls, tables: Mapping[str, pd.DataFrame]) -> RawTables:
        """Build from a name -> frame mapping; every contract table must be present."""
        missing = [name for name in TABLES if name not in tables]
        if missing:
            raise RawDataError(f"missing tables: {', '.join(missing)}")
        return cls(**{name: tables[name] for name in TABLES})

    def row_counts(self) -> dict[str, int]:
        """Number of rows per table."""
        return {name: len(frame) for name, frame in self.items()}


def table_path(raw_dir: Path, table: str) -> Path:
    """Locate a table's file in a raw folder: ``<table>.parquet`` first, else ``<table>.csv``.

    Raises:
        RawDataError: if neither file exists.
    """
    for suffix in (".parquet", ".csv"):
        candidate = raw_dir / f"{table}{suffix}"
        if candidate.is_file():
            return candidate
    raise RawDataError(
        f"table '{table}' is missing: expected {raw_dir / (table + '.parquet')} "
        f"or {raw_dir / (table + '.csv')}"
    )


def _csv_dtypes(table: str) -> dict[str, str]:
    """Read id and code columns of a CSV as strings so '007' stays '007'."""
    schema = SCHEMAS[table]
    return {name: "string" for name, column in schema.columns.items() if column.dtype.type is str}


def read_table(raw_dir: Path, table: str) -> pd.DataFrame:
    """Read one raw table without validating it.

    Raises:
        RawDataError: if the file is missing, unreadable or not a table.
    """
    if table not in SCHEMAS:
        raise RawDataError(f"unknown table '{table}'; the contract has {', '.join(TABLES)}")
    path = table_path(raw_dir, table)
    try:
        if path.suffix == ".parquet":
            return pq.ParquetFile(path).read().to_pandas()
        return pd.read_csv(path, **_csv_options(table))
    except _READ_ERRORS as error:
        raise RawDataError(f"cannot read {path}: {error}") from error


_READ_ERRORS = (OSError, ValueError, pa.ArrowException, pd.errors.ParserError)


def _csv_options(table: str) -> dict[str, Any]:
    """How a table's CSV is parsed: ids as strings, contract dates as dates."""
    date_columns = [
        name
        for name, column in SCHEMAS[table].columns.items()
        if str(column.dtype).startswith("datetime64")
    ]
    return {"dtype": _csv_dtypes(table), "parse_dates": date_columns}


def iter_table(raw_dir: Path, table: str, rows: int) -> Iterator[pd.DataFrame]:
    """Read one raw table in chunks of at most ``rows`` rows, as :func:`read_table` types them.

    Each chunk is indexed by its row numbers in the file (the first chunk from 0); an empty
    table yields one empty chunk, so its columns are still seen.

    Raises:
        RawDataError: if the file is missing or unreadable (possibly after some chunks).
    """
    if table not in SCHEMAS:
        raise RawDataError(f"unknown table '{table}'; the contract has {', '.join(TABLES)}")
    path = table_path(raw_dir, table)
    start = 0
    try:
        if path.suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            schema = parquet.schema_arrow
            chunks = (  # one row group at a time: the reader frees what it read before
                pa.Table.from_batches([batch], schema=schema).to_pandas()
                for group in range(parquet.num_row_groups)
                for batch in parquet.iter_batches(batch_size=rows, row_groups=[group])
            )
            empty = schema.empty_table().to_pandas()
        else:
            reader = pd.read_csv(path, chunksize=rows, **_csv_options(table))
            chunks, empty = iter(reader), None
        for chunk in chunks:
            if isinstance(chunk.index, pd.RangeIndex):
                chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk
    except _READ_ERRORS as error:
        raise RawDataError(f"cannot read {path}: {error}") from error
    if start == 0:  # no chunk came: the file holds no row
        yield empty if empty is not None else read_table(raw_dir, table)


def read_raw(raw_dir: Path | str) -> RawTables:
    """Read every table of a raw folder (no validation; see ``features.validate``).

    Raises:
        RawDataError: if the folder or a table is missing or unreadable.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise RawDataError(f"raw folder {raw_dir} does not exist or is not a folder")
    return RawTables.from_mapping({table: read_table(raw_dir, table) for table in TABLES})


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame to Parquet via a temp file and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_parquet(tmp_name, index=False, engine="pyarrow")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_raw(tables: RawTables, raw_dir: Path | str) -> None:
    """Write all tables into ``raw_dir`` atomically: a staging folder renamed into place.

    An existing folder is replaced only after the new one is fully written.
    """
    raw_dir = Path(raw_dir)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=raw_dir.parent, prefix=f".{raw_dir.name}.staging."))
    try:
        for name, frame in tables.items():
            frame.to_parquet(staging / f"{name}.parquet", index=False, engine="pyarrow")
        replace_dir(staging, raw_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written staging folder to ``target``, replacing the folder there.

    Raises:
        NotADirectoryError: if ``target`` is a file (it is never replaced by a folder).
    """
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a folder")
    if target.exists():
        trash = target.with_name(f".{target.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(target, trash)
        os.replace(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, target)


class ChunkedFileWriter:
    """Write a table chunk by chunk to Parquet or CSV; the file appears only when complete.

    Chunks go to a temporary file beside ``path`` (Parquet: one row group per chunk; CSV: the
    header once) that :meth:`close` renames onto ``path``; :meth:`abort`, or leaving the
    ``with`` block by an exception, deletes it, so readers never see half a file. Every
    Parquet chunk is cast to one schema: ``schema`` when given (columns that may be all
    null in a chunk need it), else the first chunk's.
    """

    def __init__(self, path: Path, schema: pa.Schema | None = None) -> None:
        """Open the temporary file beside ``path`` (its folder is created)."""
        self.path = path
        self.schema = schema
        self.rows = 0
        self._csv = path.suffix == ".csv"
        self._writer: pq.ParquetWriter | None = None
        self._started = False
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        self._tmp = Path(name)

    def write(self, frame: pd.DataFrame | pa.Table) -> None:
        """Append one chunk (same columns, in the same order, as every other).

        An Arrow table (Parquet only) is written as it is: one row group.
        """
        if self._csv:
            if isinstance(frame, pa.Table):
                raise TypeError("a CSV file takes pandas chunks")
            frame.to_csv(self._tmp, mode="a", header=not self._started, index=False)
        else:
            table = (
                frame
                if isinstance(frame, pa.Table)
                else pa.Table.from_pandas(frame, preserve_index=False)
            )
            if self.schema is None:
                self.schema = table.schema
            elif not self._started:  # the given types, with the first chunk's pandas metadata
                self.schema = self.schema.with_metadata(table.schema.metadata)
            table = table.cast(self.schema)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._tmp, self.schema)
            self._writer.write_table(table)
        self._started = True
        self.rows += len(frame)

    def close(self) -> None:
        """Finish the file and move it onto ``path`` (an empty table when nothing was written)."""
        if self._csv:
            if not self._started:
                raise ValueError("a CSV file needs at least one chunk (its header)")
        elif self._writer is None:
            if self.schema is None:
                raise ValueError("a Parquet file needs a schema or at least one chunk")
            pq.write_table(self.schema.empty_table(), self._tmp)
        else:
            self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Delete the temporary file; ``path`` is left as it was."""
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ChunkedFileWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
