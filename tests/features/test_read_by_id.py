"""Reading some customers' records by id from a database: one statement, indexed lookups.

The one-statement read gives the same frames (values, dtypes, order) as the per-table
point-in-time queries and as a folder; on PostgreSQL the plan uses the (customer_id, date)
indexes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.asof import cut_tables
from features.dbload import load_folder
from features.schema import TABLES
from features.source import (
    DatabaseSource,
    FolderSource,
    customers_query,
    point_in_time_query,
)
from features.synthetic import GeneratorConfig, generate
from tests.conftest import create_pg_database

SOURCES = ["duckdb", "postgresql"]
DAYS = (date(2022, 3, 31), date(2024, 6, 30))


@dataclass(frozen=True)
class Stores:
    folder: Path
    urls: dict[str, str]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, pg_cluster: dict[str, str]) -> Stores:
    """120 generated customers (history after both days) in a folder, DuckDB and PostgreSQL."""
    root = tmp_path_factory.mktemp("readbyid")
    config = GeneratorConfig(customers=120, seed=7, start=date(2021, 1, 1), end=date(2025, 6, 30))
    generate(config, root / "raw")
    urls = {
        "duckdb": f"duckdb:///{root / 'raw.duckdb'}",
        "postgresql": create_pg_database(pg_cluster, f"readbyid_{os.getpid()}"),
    }
    for url in urls.values():
        load_folder(root / "raw", url)
    return Stores(root / "raw", urls)


def _ids(stores: Stores) -> list[str]:
    customers = pd.read_parquet(stores.folder / "customers.parquet")
    return sorted(customers["customer_id"])


def _per_table(db: DatabaseSource, ids: list[str], day: date) -> dict[str, pd.DataFrame]:
    """The reference: one point-in-time query per table (the read before one statement)."""
    with db.connect() as connection:
        known = {
            table: db.query(table, point_in_time_query(table, day, ids), connection)
            for table in TABLES
        }
    return cut_tables(known.items(), day)[0]


def _same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    assert list(left) == list(right)
    for table in left:
        pd.testing.assert_frame_equal(left[table], right[table], check_exact=True, obj=table)


class _Counting:
    """A real connection that counts the statements sent through it."""

    def __init__(self, connection: Any, sent: list[str]) -> None:
        self._connection, self._sent = connection, sent

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._connection, name)
        if name in ("sql", "execute", "cursor"):

            def call(*args: Any, **kwargs: Any) -> Any:
                self._sent.append(name)
                return attribute(*args, **kwargs)

            return call
        return attribute


class _CountingSource(DatabaseSource):
    sent: list[str]

    @contextmanager
    def _counting(self, write: bool) -> Iterator[Any]:
        with DatabaseSource.connect(self, write=write) as connection:
            yield _Counting(connection, self.sent)

    def connect(self, *, write: bool = False) -> Any:
        return self._counting(write)


@pytest.mark.parametrize("source", SOURCES)
def test_given_customers_at_two_dates_when_read_by_id_then_one_statement_and_same_frames(
    stores: Stores, source: str
) -> None:
    # Given customers asked at two dates (one unknown, some onboarded between the dates)
    ids = _ids(stores)
    wanted = {DAYS[0]: [*ids[:5], "NOPE"], DAYS[1]: ids[40:43]}
    db = _CountingSource(stores.urls[source], pooled=True)
    db.sent = []
    db.missing()  # the structure check is cached once per source
    db.sent.clear()
    # When they are read by id
    got = db.read_customers_by_day(wanted)
    # Then the store saw one statement
    assert db.sent == (["sql"] if source == "duckdb" else ["cursor"])
    # And each date's frames equal the per-table queries' and the folder's, dtypes and order
    reference = DatabaseSource(stores.urls[source])
    folder = FolderSource(stores.folder)
    for day, customers in wanted.items():
        _same(got[day], _per_table(reference, customers, day))
        _same(got[day], reference.read_customers_at(customers, day))
        expected = folder.read_customers_at(customers, day)
        for table in TABLES:  # a folder keeps its file's row order, a database key order
            keys = list(got[day][table].columns[:2])
            pd.testing.assert_frame_equal(
                got[day][table].sort_values(keys).reset_index(drop=True),
                expected[table].sort_values(keys).reset_index(drop=True),
                check_exact=True,
                obj=table,
            )
    assert len(got[DAYS[1]]["transactions"]) > 0
    assert set(got[DAYS[0]]["customers"]["customer_id"]) < set(wanted[DAYS[0]])
    # And rows fetched are counted per table
    assert db.rows_read["transactions"] == sum(len(got[d]["transactions"]) for d in DAYS)


def _plan(db: DatabaseSource, sql: str, *, seqscan: bool) -> str:
    with db.connect() as connection:
        if not seqscan:
            connection.execute("SET enable_seqscan = off")
        return "\n".join(row[0] for row in connection.execute(f"EXPLAIN {sql}").fetchall())


def test_given_postgresql_when_one_customer_is_read_then_the_plan_uses_the_indexes(
    stores: Stores,
) -> None:
    # Given PostgreSQL with statistics (as a bank's database keeps them)
    db = DatabaseSource(stores.urls["postgresql"])
    with db.connect(write=True) as connection:
        connection.autocommit = True
        connection.execute("ANALYZE")
    cid = _ids(stores)[40]
    sql = customers_query({DAYS[1]: [cid]})
    # When the statement of a by-id read is explained, then the largest table is read through
    # its (customer_id, ts) index, the customer in the index condition, the bound in the scan
    plan = _plan(db, sql, seqscan=True)
    scan = re.search(
        r"Index Scan using ix_transactions_customer_id_ts on transactions t_\d+.*\n"
        r"\s+Index Cond: \(customer_id = '(?P<id>[^']+)'::text\)\n"
        r"\s+Filter: .*ts < '2024-07-01 00:00:00'",
        plan,
    )
    assert scan is not None and scan["id"] == cid, plan
    # And every table can be (small tables are scanned whole while that is cheaper): with
    # sequential scans off, each is an index lookup by customer with its as-of bound pushed down
    plan = _plan(db, sql, seqscan=False)
    assert "Seq Scan" not in plan
    for k, table in enumerate(TABLES):
        alias = "t" if k == 0 else f"t_{k}"
        found = re.search(
            rf"Index Scan using (?P<index>\w+) on {table} {alias} .*\n"
            rf"\s+Index Cond: \(customer_id = '{cid}'::text\)\n(?P<filter>.*)",
            plan,
        )
        assert found is not None, (table, plan)
        assert found["index"].startswith((f"ix_{table}_customer_id_", f"{table}_pkey")), table
        if table != "repayments":  # its cut is through the facilities opened by the date
            assert "2024-07-01" in found["filter"] or "2024-06-30" in found["filter"], table
