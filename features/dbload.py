"""Write a raw folder into a database (``riskgrade load``): contract types, keys and indexes.

The folder is validated first (the whole contract, judgement tables included): a database
written here holds only data that passes it. All tables are written in one transaction, so a
failure leaves the database as it was; tables that exist already are replaced only when asked.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from features.io import RawDataError
from features.judgement import load_judgement
from features.schema import OPTIONAL_TABLES, SCHEMAS, TABLES, arrow_schema
from features.source import DATED, DatabaseSource, primary_key, quote, sql_type
from features.validate import RawInput, load_raw

BATCH_ROWS = 100_000
"""Rows sent to the database per batch."""

Progress = Callable[[str, int, int], None]
"""Called with (table, rows written, rows of the table) as a load goes on."""


@dataclass(frozen=True)
class LoadSummary:
    """What a load wrote."""

    target: str
    row_counts: dict[str, int]
    replaced: tuple[str, ...]


def create_table_sql(table: str) -> str:
    """``CREATE TABLE`` of a contract table: contract types, NOT NULL, primary key."""
    schema = SCHEMAS[table]
    columns = [
        f"{quote(name)} {sql_type(table, name)}{'' if column.nullable else ' NOT NULL'}"
        for name, column in schema.columns.items()
    ]
    key = ", ".join(quote(name) for name in primary_key(table))
    return f"CREATE TABLE {quote(table)} ({', '.join(columns)}, PRIMARY KEY ({key}))"


def index_columns(table: str) -> list[tuple[str, ...]]:
    """Indexed column lists of a table: (customer_id, its as-of date) and the date alone.

    The first serves a customer's records up to a date, the second a portfolio's as-of cut;
    an index that the primary key already gives is left out.
    """
    names = set(SCHEMAS[table].columns)
    key = primary_key(table)
    dated = DATED[table]
    wanted: list[tuple[str, ...]] = []
    if "customer_id" in names and table != "customers":
        wanted.append(("customer_id", dated))
    wanted.append((dated,))
    return [columns for columns in wanted if key[: len(columns)] != columns]


def create_index_sql(table: str) -> list[str]:
    """``CREATE INDEX`` statements of a contract table."""
    return [
        f"CREATE INDEX {quote('ix_' + table + '_' + '_'.join(columns))} ON {quote(table)} "
        f"({', '.join(quote(c) for c in columns)})"
        for columns in index_columns(table)
    ]


def _arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    schema = arrow_schema(table)
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def _existing(target: DatabaseSource) -> list[str]:
    if target.backend == "duckdb" and not target.duckdb_path.exists():
        return []
    present = target.columns()
    return [table for table in (*TABLES, *OPTIONAL_TABLES) if table in present]


def _batches(data: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, max(data.num_rows, 1), BATCH_ROWS):
        yield data.slice(start, BATCH_ROWS)


def _write_duckdb(
    connection: Any, table: str, data: pa.Table, report: Callable[[int], None]
) -> None:
    done = 0
    for batch in _batches(data):
        connection.register("riskgrade_incoming", batch)
        connection.execute(f"INSERT INTO {quote(table)} SELECT * FROM riskgrade_incoming")
        connection.unregister("riskgrade_incoming")
        done += batch.num_rows
        report(done)


def _write_postgresql(
    connection: Any, table: str, data: pa.Table, report: Callable[[int], None]
) -> None:
    columns = ", ".join(quote(name) for name in data.schema.names)
    options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    done = 0
    with connection.cursor() as cursor:
        for batch in _batches(data):
            buffer = io.BytesIO()
            pa_csv.write_csv(batch, buffer, options)  # nulls unquoted, "" an empty text
            with cursor.copy(
                f"COPY {quote(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
            ) as copy:
                copy.write(buffer.getvalue())
            done += batch.num_rows
            report(done)


def load_folder(
    raw_dir: RawInput, url: str, *, replace: bool = False, progress: Progress | None = None
) -> LoadSummary:
    """Validate a raw folder and write it into the database at ``url``.

    Args:
        raw_dir: the raw folder (or another source) to copy.
        url: ``postgresql://...`` or ``duckdb:///file.duckdb`` (created when missing).
        replace: replace contract tables the database already holds (else refuse).
        progress: told the rows written per table.

    Raises:
        RawValidationError: if the folder breaks the contract (nothing is written).
        RawDataError: if the database holds contract tables and ``replace`` is off, or cannot
            be written.
    """
    target = DatabaseSource(url)
    existing = _existing(target)
    if existing and not replace:
        raise RawDataError(
            f"{target.label} already holds table(s) {', '.join(existing)}: "
            "pass --replace to overwrite them"
        )
    raw = load_raw(raw_dir)
    judgement = load_judgement(raw_dir, None, raw.customers["customer_id"])
    frames: dict[str, pd.DataFrame] = dict(raw.items())
    if judgement is not None:
        frames.update(dict(judgement.items()))
    data = {table: _arrow(table, frame) for table, frame in frames.items()}
    write = _write_duckdb if target.backend == "duckdb" else _write_postgresql
    with target.connect(write=True) as connection:
        try:
            if target.backend == "duckdb":
                connection.execute("BEGIN TRANSACTION")
            for table in existing:
                connection.execute(f"DROP TABLE {quote(table)}")
            for table, rows in data.items():
                connection.execute(create_table_sql(table))

                def report(done: int, table: str = table, total: int = rows.num_rows) -> None:
                    if progress is not None:
                        progress(table, done, total)

                write(connection, table, rows, report)
                for statement in create_index_sql(table):
                    connection.execute(statement)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
    return LoadSummary(
        target.label, {table: rows.num_rows for table, rows in data.items()}, tuple(existing)
    )
