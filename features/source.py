"""Where raw tables come from: a folder of files, or a database (PostgreSQL or DuckDB).

``--raw`` of every command names a :class:`RawSource`: a folder (one Parquet or CSV file per
table, see :mod:`features.io`) or a SQLAlchemy-style URL, ``postgresql://user@host/db`` or
``duckdb:///file.duckdb`` (a relative path; ``duckdb:////abs/file.duckdb`` for an absolute
one). A database holds one table per contract table, with the contract's names and columns
(``riskgrade load`` writes one; extra columns are ignored). Either way the reader hands the
same pandas frames to validation: a database column is read as its contract type (Arrow types
of :func:`features.schema.arrow_schema`), timestamps at microsecond resolution.

Read at an as-of date, a database applies the point-in-time cut of :mod:`features.asof` in the
query itself (``WHERE published_date <= as_of`` and so on): later records are never fetched;
only their number is counted, for the same information line as a folder's.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from features.asof import AsOfCut, cut_tables
from features.io import RawDataError, iter_table, read_table, table_path
from features.schema import OPTIONAL_TABLES, SCHEMAS, TABLES, arrow_schema

OnError = Callable[[str, RawDataError], None]
"""Called with (table, error) for a table that cannot be read; the table is then skipped."""


class RawSource(ABC):
    """The raw tables of one extract, wherever they are kept."""

    @property
    @abstractmethod
    def label(self) -> str:
        """How messages name the source (a folder path, a URL without its password)."""

    @abstractmethod
    def has_table(self, table: str) -> bool:
        """Whether the source holds ``table``."""

    @abstractmethod
    def read_table(self, table: str) -> pd.DataFrame:
        """One whole table, unvalidated.

        Raises:
            RawDataError: if it is missing or unreadable.
        """

    def missing(self) -> str | None:
        """Why the source as a whole cannot be read (a validation problem), else None.

        Raises:
            RawDataError: when the source is unusable in a way that is no data problem (a
                database that cannot be reached, a table or column of the wrong type).
        """
        return None

    def read_chunks(self, table: str, rows: int) -> Iterator[pd.DataFrame]:
        """One table in chunks of at most ``rows`` rows, indexed by row number (unvalidated).

        Here the whole table is one chunk; a folder streams its file.

        Raises:
            RawDataError: if it is missing or unreadable (possibly after some chunks).
        """
        del rows
        yield self.read_table(table)

    def read_each(self, on_error: OnError) -> Iterator[tuple[str, pd.DataFrame]]:
        """The contract tables one at a time in contract order; unreadable ones go to on_error."""
        for table in TABLES:
            try:
                frame = self.read_table(table)
            except RawDataError as error:
                on_error(table, error)
                continue
            yield table, frame

    def read_at(self, as_of: date, on_error: OnError) -> tuple[dict[str, pd.DataFrame], AsOfCut]:
        """The contract tables as known at ``as_of`` (see :mod:`features.asof`), and the cut."""
        return cut_tables(self.read_each(on_error), as_of)

    def read_customers_at(self, customers: Sequence[str], as_of: date) -> dict[str, pd.DataFrame]:
        """The records of some customers known at ``as_of`` (unvalidated; unknown ids: none).

        A folder reads every table and keeps the customers' rows; a database reads only them.

        Raises:
            RawDataError: if a table is missing or unreadable.
        """

        def fail(table: str, error: RawDataError) -> None:
            raise error

        tables, _ = self.read_at(as_of, fail)
        wanted = list(customers)
        return {
            table: frame[frame["customer_id"].isin(wanted)].reset_index(drop=True)
            for table, frame in tables.items()
        }

    def read_customers_by_day(
        self, wanted: Mapping[date, Sequence[str]]
    ) -> dict[date, dict[str, pd.DataFrame]]:
        """:meth:`read_customers_at` for several as-of dates, each with its customers.

        A database reads them all in one statement; a folder reads once per date.

        Raises:
            RawDataError: if a table is missing or unreadable.
        """
        return {day: self.read_customers_at(ids, day) for day, ids in wanted.items()}


@dataclass(frozen=True)
class FolderSource(RawSource):
    """A raw folder: ``<table>.parquet`` or ``<table>.csv`` per table."""

    path: Path

    @property
    def label(self) -> str:  # noqa: D102
        return str(self.path)

    def missing(self) -> str | None:  # noqa: D102
        return None if self.path.is_dir() else "not a folder"

    def has_table(self, table: str) -> bool:  # noqa: D102
        try:
            table_path(self.path, table)
        except RawDataError:
            return False
        return True

    def read_table(self, table: str) -> pd.DataFrame:  # noqa: D102
        return read_table(self.path, table)

    def read_chunks(self, table: str, rows: int) -> Iterator[pd.DataFrame]:  # noqa: D102
        return iter_table(self.path, table, rows)


# --- databases ---------------------------------------------------------------------------------

_SQL_TYPES: Final[dict[str, str]] = {
    "string": "TEXT",
    "bool": "BOOLEAN",
    "int64": "BIGINT",
    "double": "DOUBLE PRECISION",
    "timestamp[ns]": "TIMESTAMP",
}
"""Arrow type of a contract column -> the SQL type both PostgreSQL and DuckDB read and write."""

_ACCEPTED: Final[dict[str, tuple[str, ...]]] = {
    "TEXT": ("text", "character varying", "varchar", "character", "char", "bpchar", "string"),
    "BOOLEAN": ("boolean", "bool"),
    "BIGINT": ("bigint", "integer", "smallint", "int", "int2", "int4", "int8", "tinyint",
               "hugeint", "ubigint", "uinteger", "usmallint", "utinyint"),
    "DOUBLE PRECISION": ("double precision", "double", "real", "float", "float4", "float8",
                         "numeric", "decimal", "bigint", "integer", "smallint"),
    "TIMESTAMP": ("timestamp without time zone", "timestamp", "date", "datetime",
                  "timestamp_ns", "timestamp_us", "timestamp_ms", "timestamp_s"),
}  # fmt: skip
"""Database column types read as each contract type (the family, lower case, no precision)."""

_EXPECTED: Final[dict[str, str]] = {
    "TEXT": "a text type",
    "BOOLEAN": "boolean",
    "BIGINT": "an integer type",
    "DOUBLE PRECISION": "a numeric type",
    "TIMESTAMP": "date or timestamp (without time zone)",
}

DATED: Final[dict[str, str]] = {
    "customers": "onboarding_date",
    "financial_statements": "published_date",
    "credit_facilities": "opened",
    "repayments": "paid_date",
    "transactions": "ts",
    "defaults": "default_date",
    "assessments": "assessed_on",
    "overrides": "proposed_on",
}
"""The date that makes a record known, per table: indexed, and the as-of filter's column."""


@cache
def contract_arrow_schema(table: str) -> pa.Schema:
    """:func:`features.schema.arrow_schema`, built once per table (every read needs it)."""
    return arrow_schema(table)


@cache
def sql_type(table: str, column: str) -> str:
    """The SQL type a contract column is stored and read as."""
    return _SQL_TYPES[str(contract_arrow_schema(table).field(column).type)]


def primary_key(table: str) -> tuple[str, ...]:
    """The key of a contract table: its unique column, else its unique column set."""
    schema = SCHEMAS[table]
    unique = [name for name, column in schema.columns.items() if column.unique]
    if unique:
        return (unique[0],)
    return tuple(schema.unique or ())


def quote(name: str) -> str:
    """A SQL identifier in double quotes (``limit`` is a reserved word)."""
    return '"' + name.replace('"', '""') + '"'


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.isoformat(sep=' ')}'"


def literal(value: str) -> str:
    """A SQL string literal (quotes doubled; both databases take standard strings)."""
    return "'" + value.replace("'", "''") + "'"


def _among(customers: Sequence[str] | None, alias: str) -> str:
    """`` AND <alias>.customer_id IN (...)`` (nothing when ``customers`` is None)."""
    if customers is None:
        return ""
    ids = ", ".join(literal(c) for c in customers) or "NULL"
    return f" AND {alias}customer_id IN ({ids})"


def point_in_time_query(
    table: str, as_of: date | None, customers: Sequence[str] | None = None
) -> str:
    """The SELECT of one contract table, cut at ``as_of`` in its WHERE clause (None: all rows).

    The cut is that of :mod:`features.asof`: customers onboarded after ``as_of`` and all their
    records, statements published, facilities opened (with their instalments), transactions
    booked and defaults dated after it are left out. A record with a null date is kept
    (validation reports it). Payments made later stay in the result; the caller shows them
    unpaid. Columns are cast to their contract type; rows come in key order.

    With ``customers``, only their records (indexed lookups, the as-of cut included).
    """
    columns = ", ".join(
        f"CAST(t.{quote(name)} AS {sql_type(table, name)}) AS {quote(name)}"
        for name in SCHEMAS[table].columns
    )
    order = ", ".join(f"t.{quote(name)}" for name in primary_key(table))
    select = f"SELECT {columns} FROM {quote(table)} t"
    if as_of is None:
        where = "" if customers is None else f" WHERE {_among(customers, 't.')[5:]}"
        return f"{select}{where} ORDER BY {order}"
    day = datetime(as_of.year, as_of.month, as_of.day)
    bound, next_day = _timestamp(day), _timestamp(day + timedelta(days=1))
    late = f"late_customers AS ({late_customers_query(as_of, customers)})"
    not_late = "NOT EXISTS (SELECT 1 FROM late_customers l WHERE l.customer_id = {a}.customer_id)"
    ctes = [late]
    if table == "customers":
        where = f"(t.onboarding_date IS NULL OR t.onboarding_date <= {bound})"
        ctes = []
    elif table == "repayments":
        ctes.append(
            "late_facilities AS (SELECT facility_id FROM credit_facilities f "
            f"WHERE (f.opened > {bound} OR NOT {not_late.format(a='f')}){_among(customers, 'f.')} "
            "EXCEPT SELECT facility_id FROM credit_facilities f "
            f"WHERE (f.opened IS NULL OR f.opened <= {bound}) AND {not_late.format(a='f')}"
            f"{_among(customers, 'f.')})"
        )
        where = (
            f"{not_late.format(a='t')} AND NOT EXISTS "
            "(SELECT 1 FROM late_facilities lf WHERE lf.facility_id = t.facility_id)"
        )
    else:
        column = f"t.{quote(DATED[table])}"
        limit = f"{column} < {next_day}" if table == "transactions" else f"{column} <= {bound}"
        where = f"{not_late.format(a='t')} AND ({column} IS NULL OR {limit})"
    head = f"WITH {', '.join(ctes)} " if ctes else ""
    return f"{head}{select} WHERE {where}{_among(customers, 't.')} ORDER BY {order}"


def customers_query(wanted: Mapping[date, Sequence[str]]) -> str:
    """One SELECT of some customers' records at some as-of dates, every contract table at once.

    Each (date, table) part is :func:`point_in_time_query` of that table for the date's
    customers (the as-of cut and the ids in its WHERE clause, so indexed lookups); the parts
    are stacked with ``UNION ALL`` into a row per record: ``part`` (the index of the pair,
    dates in the order given, tables in contract order), ``n`` (the record's place in key
    order), then the record's contract columns as text in ``c0``, ``c1``... (NULL past a
    table's last column). Rows come in no set order; :func:`split_parts` orders and types them.
    """
    width = max(len(SCHEMAS[table].columns) for table in TABLES)
    parts = []
    for d, (day, customers) in enumerate(wanted.items()):
        for t, table in enumerate(TABLES):
            parts.append(_part(d * len(TABLES) + t, table, day, customers, width))
    return " UNION ALL ".join(parts)  # ordered after the fetch: a sort of the whole is slower


def _part(k: int, table: str, day: date, customers: Sequence[str], width: int) -> str:
    names = list(SCHEMAS[table].columns)
    order = ", ".join(f"q.{quote(name)}" for name in primary_key(table))
    values = [f"CAST(q.{quote(name)} AS TEXT)" for name in names]
    values += ["CAST(NULL AS TEXT)"] * (width - len(names))
    columns = ", ".join(f"{v} AS c{i}" for i, v in enumerate(values))
    inner = point_in_time_query(table, day, customers)
    return (
        f"SELECT {k} AS part, ROW_NUMBER() OVER (ORDER BY {order}) AS n, {columns} FROM ({inner}) q"
    )


def parts_schema() -> pa.Schema:
    """The Arrow schema of :func:`customers_query`'s result: ids, then text columns."""
    width = max(len(SCHEMAS[table].columns) for table in TABLES)
    fields = [pa.field("part", pa.int64()), pa.field("n", pa.int64())]
    return pa.schema(fields + [pa.field(f"c{i}", pa.string()) for i in range(width)])


def split_parts(result: pa.Table, days: Sequence[date]) -> dict[date, dict[str, pa.Table]]:
    """:func:`customers_query`'s rows back into each date's contract tables (contract types).

    Raises:
        RawDataError: if a value cannot be read as its contract type.
    """
    import pyarrow.compute as pc

    result = result.sort_by([("part", "ascending"), ("n", "ascending")])
    part = result.column("part").to_numpy()
    bounds = part.searchsorted(range(len(days) * len(TABLES) + 1))
    out: dict[date, dict[str, pa.Table]] = {day: {} for day in days}
    for k in range(len(days) * len(TABLES)):
        day, table = days[k // len(TABLES)], TABLES[k % len(TABLES)]
        schema = contract_arrow_schema(table)
        rows = result.slice(bounds[k], bounds[k + 1] - bounds[k])
        try:
            columns = [pc.cast(rows.column(f"c{i}"), field.type) for i, field in enumerate(schema)]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise RawDataError(f"cannot read table '{table}': {_first_line(error)}") from None
        out[day][table] = pa.Table.from_arrays(columns, schema=schema)
    return out


def late_customers_query(as_of: date, customers: Sequence[str] | None = None) -> str:
    """The ids of customers onboarded after ``as_of`` (as :class:`features.asof.AsOfCut`)."""
    bound = _timestamp(datetime(as_of.year, as_of.month, as_of.day))
    one = _among(customers, "")
    return (
        f"SELECT customer_id FROM customers WHERE onboarding_date > {bound}{one} "
        "EXCEPT SELECT customer_id FROM customers "
        f"WHERE (onboarding_date IS NULL OR onboarding_date <= {bound}){one}"
    )


class DatabaseSource(RawSource):
    """Raw tables in a database: PostgreSQL (``postgresql://``) or DuckDB (``duckdb:///``).

    ``rows_read`` counts the rows fetched per table (what a point-in-time read pushed down).
    """

    def __init__(self, url: str, *, pooled: bool = False) -> None:
        """Parse the URL; nothing is opened until a table is read.

        ``pooled`` keeps a few PostgreSQL connections open between reads (a service reading
        customer by customer); otherwise each read connects anew.

        Raises:
            RawDataError: if the URL is not a PostgreSQL or DuckDB URL.
        """
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if url.startswith("postgres://"):  # the libpq spelling SQLAlchemy does not take
            url = "postgresql://" + url[len("postgres://") :]
        try:
            parsed = make_url(url)
        except ArgumentError as error:
            raise RawDataError(f"--raw {url!r} is not a database URL: {error}") from None
        backend = parsed.get_backend_name()
        if backend not in ("postgresql", "duckdb"):
            raise RawDataError(
                f"raw source {parsed.render_as_string(hide_password=True)}: unsupported database "
                f"'{backend}'; use a folder, postgresql://... or duckdb:///file.duckdb"
            )
        self.backend = backend
        self._url = parsed
        self._columns: dict[str, dict[str, str]] | None = None
        self._engine: Any = None
        self.pooled = pooled
        self.rows_read: Counter[str] = Counter()
        if backend == "duckdb" and not parsed.database:
            raise RawDataError(f"raw source {url}: name the DuckDB file, duckdb:///file.duckdb")

    @property
    def label(self) -> str:  # noqa: D102
        return self._url.render_as_string(hide_password=True)

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file (DuckDB URLs only)."""
        return Path(self._url.database or "")

    # connections

    @contextmanager
    def _duckdb(self, *, write: bool = False) -> Iterator[Any]:
        import duckdb

        path = self.duckdb_path
        if not write and not path.is_file():
            raise RawDataError(f"raw source {self.label}: DuckDB file {path} does not exist")
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(path), read_only=not write)
        except duckdb.Error as error:
            raise RawDataError(f"cannot open {self.label}: {_first_line(error)}") from None
        try:
            yield connection
        except duckdb.Error as error:
            raise RawDataError(f"{self.label}: {_first_line(error)}") from None
        finally:
            connection.close()

    @contextmanager
    def _postgresql(self, *, write: bool = False) -> Iterator[Any]:
        import psycopg
        import sqlalchemy as sa

        if self._engine is None:
            url = self._url.set(drivername="postgresql+psycopg")
            pool = {"pool_size": 4, "pool_pre_ping": True} if self.pooled else {}
            self._engine = sa.create_engine(
                url,
                **pool,
                poolclass=None if self.pooled else sa.pool.NullPool,
                # ISO dates and exact floats in COPY's text, set at connect (no round trip)
                connect_args={"options": "-c DateStyle=ISO -c extra_float_digits=3"},
            )
        try:
            connection = self._engine.raw_connection()
        except (sa.exc.SQLAlchemyError, psycopg.Error) as error:
            cause = getattr(error, "orig", None) or error
            raise RawDataError(f"cannot connect to {self.label}: {_first_line(cause)}") from None
        try:
            driver = connection.driver_connection
            # A read sees one snapshot across its statements (tables, counts) while others write.
            driver.isolation_level = (
                psycopg.IsolationLevel.READ_COMMITTED
                if write
                else psycopg.IsolationLevel.REPEATABLE_READ
            )
            yield driver
        except psycopg.Error as error:
            raise RawDataError(f"{self.label}: {_first_line(error)}") from None
        finally:
            connection.close()  # back to the pool (rolled back), or closed without one

    def close(self) -> None:
        """Close pooled connections (a later read opens new ones)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def connect(self, *, write: bool = False) -> AbstractContextManager[Any]:
        """A DB-API connection (DuckDB's, or psycopg's for PostgreSQL); read-only unless write.

        Raises:
            RawDataError: if the database cannot be opened or reached.
        """
        if self.backend == "duckdb":
            return self._duckdb(write=write)
        return self._postgresql(write=write)

    # structure

    def columns(self) -> dict[str, dict[str, str]]:
        """Column name -> lower-case type, per table of the current schema (cached)."""
        if self._columns is None:
            sql = (
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            )
            with self.connect() as connection:
                rows = connection.execute(sql).fetchall()
            found: dict[str, dict[str, str]] = {}
            for table, column, kind in rows:
                found.setdefault(str(table), {})[str(column)] = str(kind).lower()
            self._columns = found
        return self._columns

    def structure_problems(self) -> list[str]:
        """Every missing contract table or column and every column of a foreign type."""
        present = self.columns()
        problems = []
        for table in (*TABLES, *OPTIONAL_TABLES):
            if table not in present:
                if table in TABLES:
                    problems.append(f"table '{table}' is missing")
                continue
            for name in SCHEMAS[table].columns:
                kind = present[table].get(name)
                expected = sql_type(table, name)
                if kind is None:
                    problems.append(f"table '{table}' lacks column '{name}'")
                elif kind.split("(")[0].strip() not in _ACCEPTED[expected]:
                    problems.append(
                        f"column {table}.{name} has type {kind.upper()}, "
                        f"expected {_EXPECTED[expected]}"
                    )
        return problems

    def missing(self) -> str | None:  # noqa: D102
        problems = self.structure_problems()
        if problems:
            raise RawDataError(f"raw source {self.label}: {'; '.join(problems)}")
        return None

    def has_table(self, table: str) -> bool:  # noqa: D102
        return table in self.columns()

    # reads

    def query(self, table: str, sql: str, connection: Any = None) -> pd.DataFrame:
        """Run a contract table's SELECT; the frame has the contract's Arrow types.

        Args:
            table: the contract table the query reads.
            sql: the query.
            connection: an open connection (from :meth:`connect`) to use; default a new one.

        Raises:
            RawDataError: if the query fails (the message names the table).
        """
        if connection is None:
            with self.connect() as opened:
                return self.query(table, sql, opened)
        schema = contract_arrow_schema(table)
        try:
            if self.backend == "duckdb":
                import duckdb

                try:
                    result = connection.sql(sql).to_arrow_table()
                except duckdb.Error as error:
                    raise RawDataError(
                        f"cannot read table '{table}' of {self.label}: {_first_line(error)}"
                    ) from None
            else:
                result = self._copy_out(connection, sql, schema)
            result = result.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise RawDataError(
                f"cannot read table '{table}' of {self.label}: {_first_line(error)}"
            ) from None
        self.rows_read[table] += result.num_rows
        return result.to_pandas()

    @staticmethod
    def _copy_out(connection: Any, sql: str, schema: pa.Schema) -> pa.Table:
        """PostgreSQL: ``COPY (query) TO STDOUT`` as CSV, parsed by Arrow with contract types."""
        buffer = io.BytesIO()
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy,
        ):
            for block in copy:
                buffer.write(block)
        if not buffer.getbuffer().nbytes:
            return schema.empty_table()
        buffer.seek(0)
        return pa_csv.read_csv(
            buffer,
            read_options=pa_csv.ReadOptions(column_names=schema.names),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=schema,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )

    def count(self, table: str, connection: Any = None) -> int:
        """Rows of a table (counted in the database; on ``connection`` when given)."""
        if connection is None:
            with self.connect() as opened:
                return self.count(table, opened)
        return int(connection.execute(f"SELECT COUNT(*) FROM {quote(table)}").fetchone()[0])

    def read_table(self, table: str) -> pd.DataFrame:  # noqa: D102
        if table not in SCHEMAS:
            raise RawDataError(f"unknown table '{table}'; the contract has {', '.join(TABLES)}")
        if not self.has_table(table):
            raise RawDataError(f"table '{table}' is missing in {self.label}")
        return self.query(table, point_in_time_query(table, None))

    def read_customers_at(  # noqa: D102
        self, customers: Sequence[str], as_of: date
    ) -> dict[str, pd.DataFrame]:
        return self.read_customers_by_day({as_of: customers})[as_of]

    def read_customers_by_day(  # noqa: D102
        self, wanted: Mapping[date, Sequence[str]]
    ) -> dict[date, dict[str, pd.DataFrame]]:
        self.missing()  # the structure is checked once (cached), then each read is lookups
        if not wanted:
            return {}
        sql = customers_query(wanted)
        with self.connect() as connection:  # one statement: one round trip
            if self.backend == "duckdb":
                result = connection.sql(sql).to_arrow_table()
            else:
                result = self._copy_out(connection, sql, parts_schema())
        parts = split_parts(result, list(wanted))
        out: dict[date, dict[str, pd.DataFrame]] = {}
        for day, tables in parts.items():
            for table, frame in tables.items():
                self.rows_read[table] += frame.num_rows
            known = ((table, frame.to_pandas()) for table, frame in tables.items())
            out[day] = cut_tables(known, day)[0]
        return out

    def read_at(  # noqa: D102
        self, as_of: date, on_error: OnError
    ) -> tuple[dict[str, pd.DataFrame], AsOfCut]:
        self.missing()
        with self.connect() as connection:  # one connection, so one snapshot per statement
            known = {
                table: self.query(table, point_in_time_query(table, as_of), connection)
                for table in TABLES
            }
            dropped = {table: self.count(table, connection) - len(known[table]) for table in TABLES}
            late = connection.execute(late_customers_query(as_of)).fetchall()
        # The rows fetched need only the payments made later undone: the same cut does it.
        tables, cut = cut_tables(known.items(), as_of)
        late_ids = frozenset(str(row[0]) for row in late if row[0] is not None)
        return tables, AsOfCut(as_of, dropped, cut.unpaid, late_ids)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_url(raw: str | Path) -> bool:
    """Whether ``--raw`` names a database (``scheme://...``) rather than a folder."""
    return "://" in str(raw)


DATABASE_SCHEMES: Final[tuple[str, ...]] = ("postgresql", "postgres", "duckdb")
"""URL schemes read as a database (a driver may follow, as in ``postgresql+psycopg``)."""


def is_database_url(raw: str | Path) -> bool:
    """Whether ``raw`` is a PostgreSQL or DuckDB URL."""
    scheme = str(raw).split("://", 1)[0].split("+", 1)[0].lower() if is_url(raw) else ""
    return scheme in DATABASE_SCHEMES


def open_raw_source(raw: RawSource | str | Path) -> RawSource:
    """The source ``--raw`` names: a folder path, or a PostgreSQL or DuckDB URL.

    Raises:
        RawDataError: for a URL of an unsupported database.
    """
    if isinstance(raw, RawSource):
        return raw
    if isinstance(raw, str) and is_url(raw):
        return DatabaseSource(raw)
    return FolderSource(Path(raw))


def source_tables(source: RawSource, names: Sequence[str]) -> list[str]:
    """The tables of ``names`` that ``source`` holds, in the order given."""
    return [name for name in names if source.has_table(name)]
