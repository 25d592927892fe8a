"""Raw data from a database: PostgreSQL (a real throwaway server) and DuckDB (a file).

Every command that reads --raw gives the same output from a database that ``riskgrade load``
filled from a folder as from the folder itself; the as-of cut happens in the query.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from features.dbload import create_index_sql, index_columns, load_folder
from features.io import read_raw
from features.judgement import load_judgement
from features.schema import SCHEMAS, TABLES
from features.source import DatabaseSource, point_in_time_query, primary_key, quote
from features.synthetic import GeneratorConfig, generate
from features.validate import RawValidationError, load_raw, load_raw_at, validate_raw_dir
from riskgrade.config import DEFAULT_PARAMS_PATH, load_params
from tests.cli_helpers import run_main
from tests.conftest import create_pg_database
from tests.serving.factory import make_bundle

AS_OF = date(2023, 6, 30)
SOURCES = ["duckdb", "postgresql"]
_names = itertools.count(1)


@dataclass(frozen=True)
class Stores:
    folder: Path
    urls: dict[str, str]
    bundle: Path
    params: Path
    root: Path


def new_pg_database(cluster: dict[str, str]) -> str:
    return create_pg_database(cluster, f"raw_{os.getpid()}_{next(_names)}")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, pg_cluster: dict[str, str]) -> Stores:
    """A 150-customer folder with later history and judgement, loaded into DuckDB and PostgreSQL."""
    root = tmp_path_factory.mktemp("rawdb")
    config = GeneratorConfig(customers=150, seed=5, start=date(2021, 1, 1), end=date(2025, 6, 30))
    judgement = load_params(DEFAULT_PARAMS_PATH).rating.generator_spec()
    generate(config, root / "raw", judgement=judgement)
    urls = {"duckdb": f"duckdb:///{root / 'raw.duckdb'}", "postgresql": new_pg_database(pg_cluster)}
    for url in urls.values():
        load_folder(root / "raw", url)
    params = root / "params.yaml"
    paths = {"bundles": str(root / "bundles"), "reports": str(root / "reports")}
    params.write_text(yaml.safe_dump({"paths": paths}))
    return Stores(root / "raw", urls, make_bundle(root / "bundle").path, params, root)


def _frames_equal(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    assert list(left) == list(right)
    for name in left:
        pd.testing.assert_frame_equal(
            left[name].reset_index(drop=True), right[name].reset_index(drop=True), obj=name
        )


# --- the reader -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("as_of", [date(2021, 3, 31), AS_OF, date(2026, 1, 1)])
def test_given_a_loaded_database_when_read_at_a_date_then_same_tables_and_cut_as_the_folder(
    stores: Stores, source: str, as_of: date
) -> None:
    # Given the folder and the database loaded from it, when both are read at a date
    folder = load_raw_at(stores.folder, as_of)
    database = load_raw_at(stores.urls[source], as_of)
    # Then the tables are equal frame for frame, and the cut says the same
    _frames_equal(dict(folder.tables.items()), dict(database.tables.items()))
    assert database.cut == folder.cut
    assert database.cut.summary() == folder.cut.summary()


@pytest.mark.parametrize("source", SOURCES)
def test_given_a_loaded_database_when_read_whole_then_same_tables_and_judgement(
    stores: Stores, source: str
) -> None:
    _frames_equal(
        dict(load_raw(stores.folder).items()), dict(load_raw(stores.urls[source]).items())
    )
    folder = load_judgement(stores.folder, AS_OF)
    database = load_judgement(stores.urls[source], AS_OF)
    assert folder is not None and database is not None
    # A database has no row order of its own: its rows come in key order
    keys = {name: list(primary_key(name)) for name, _ in folder.items()}
    _frames_equal(
        {name: frame.sort_values(keys[name]) for name, frame in folder.items()},
        dict(database.items()),
    )
    assert len(database.assessments) > 0


@pytest.mark.parametrize("source", SOURCES)
def test_given_an_as_of_date_when_read_then_later_records_are_never_fetched(
    stores: Stores, source: str
) -> None:
    # Given a database with history after AS_OF
    db = DatabaseSource(stores.urls[source])
    # When read at AS_OF
    known = load_raw_at(db, AS_OF)
    # Then the rows fetched are exactly the rows known at AS_OF: fewer than the table holds
    raw = read_raw(stores.folder)
    for table in TABLES:
        assert db.rows_read[table] == len(getattr(known.tables, table)), table
        if table != "repayments":  # a later customer's facilities drop their instalments too
            assert db.rows_read[table] < len(getattr(raw, table)), table
    assert db.rows_read["repayments"] < len(raw.repayments)
    # And the bound is in the query text, not applied after the fetch
    assert "t.\"published_date\" <= TIMESTAMP '2023-06-30 00:00:00'" in point_in_time_query(
        "financial_statements", AS_OF
    )
    assert "t.\"ts\" < TIMESTAMP '2023-07-01 00:00:00'" in point_in_time_query(
        "transactions", AS_OF
    )


@pytest.mark.parametrize("source", SOURCES)
def test_given_a_broken_later_record_in_the_database_when_read_at_as_of_then_ignored(
    stores: Stores, source: str, tmp_path: Path, pg_cluster: dict[str, str]
) -> None:
    # Given a copy of the database with one negative amount after AS_OF, one before it
    url = (
        f"duckdb:///{tmp_path / 'b.duckdb'}" if source == "duckdb" else new_pg_database(pg_cluster)
    )
    load_folder(stores.folder, url)
    db = DatabaseSource(url)
    with db.connect(write=True) as conn:
        conn.execute(
            "UPDATE transactions SET amount = -5 WHERE txn_id = "
            "(SELECT MIN(txn_id) FROM transactions WHERE ts > TIMESTAMP '2023-07-02')"
        )
        conn.commit()
    # When read at AS_OF, then the later record is left out (validation passes)
    assert not load_raw_at(url, AS_OF).cut.empty
    # And read at a later date, the broken record is refused naming its column
    with pytest.raises(RawValidationError, match=r"transactions\.amount"):
        load_raw_at(url, date(2025, 6, 30))


# --- every command: the same output from the folder and from each database ---------------------


def _outputs(stores: Stores, raw: str, out: Path) -> dict[str, bytes | str]:
    """Run every command that reads --raw; collect what it wrote (files and stdout)."""
    out.mkdir(parents=True)
    day = str(AS_OF)
    customer = sorted(load_raw_at(stores.folder, AS_OF).tables.customers["customer_id"])[3]
    got: dict[str, bytes | str] = {}

    def run(*args: str | Path) -> str:
        code, stdout, stderr = run_main(*(str(a) for a in args))
        assert code == 0, f"{args[0]}: {stderr}"
        return stdout

    # The title names the source and wraps where the name is long: compare without both
    got["validate"] = "".join(run("validate", raw, "--as-of", day).split()).replace(raw, "RAW")
    got["describe"] = run("describe", raw, "--as-of", day)
    got["describe-all"] = run("describe", raw)
    run("features", "at", "--raw", raw, "--as-of", day, "--out", out / "f.parquet")
    got["features at"] = (out / "f.parquet").read_bytes()
    run("features", "build", "--raw", raw, "--out", out / "ds", "--params", stores.params)
    got["features build"] = (out / "ds" / "dataset.parquet").read_bytes()
    run("score", "--raw", raw, "--as-of", day, "--out", out / "s.parquet",
        "--bundle", stores.bundle, "--params", stores.params, "--chunk-size", "40")  # fmt: skip
    got["score"] = (out / "s.parquet").read_bytes()
    got["request-example"] = run(
        "request-example", "--raw", raw, "--customer", customer, "--as-of", day
    )
    store, report = out / "m.duckdb", out / "report"
    run("monitor", "--raw", raw, "--as-of", day, "--bundle", stores.bundle,
        "--params", stores.params, "--store", store, "--out", report)  # fmt: skip
    for path in sorted((out / "report").iterdir()):
        got[f"monitor {path.name}"] = path.read_bytes()
    return got


@pytest.mark.slow
def test_given_a_database_when_every_command_runs_then_same_outputs_as_the_folder(
    stores: Stores,
) -> None:
    # Given the folder, and DuckDB and PostgreSQL loaded from it
    # When every command that reads --raw runs on each
    folder = _outputs(stores, str(stores.folder), stores.root / "out-folder")
    for source, url in stores.urls.items():
        database = _outputs(stores, url, stores.root / f"out-{source}")
        # Then each wrote the same bytes (files) and printed the same text
        assert database.keys() == folder.keys()
        for name in folder:
            assert database[name] == folder[name], f"{source}: {name} differs"
    assert "monitor report.json" in folder


# --- errors: one line, exit 2 ------------------------------------------------------------------


def _one_line_error(*args: str) -> str:
    code, _, stderr = run_main(*args)
    assert code == 2, stderr
    message = " ".join(stderr.split())
    assert message.startswith("error:") and "Traceback" not in stderr
    return message


def test_given_a_bad_url_when_a_command_reads_it_then_exit_2_naming_it(tmp_path: Path) -> None:
    said = _one_line_error("describe", "mysql://user@host/db")
    assert "unsupported database 'mysql'" in said
    said = _one_line_error("validate", f"duckdb:///{tmp_path / 'none.duckdb'}")
    assert "none.duckdb does not exist" in said
    said = _one_line_error(
        "features", "at", "--raw", "postgresql://nobody:secret@127.0.0.1:1/db",
        "--as-of", "2023-06-30", "--out", str(tmp_path / "f.parquet"),
    )  # fmt: skip
    assert "cannot connect to postgresql://nobody:***@127.0.0.1:1/db" in said
    assert "secret" not in said
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("source", SOURCES)
def test_given_a_missing_table_or_a_wrong_type_when_read_then_exit_2_naming_it(
    stores: Stores, source: str, tmp_path: Path, pg_cluster: dict[str, str]
) -> None:
    url = (
        f"duckdb:///{tmp_path / 'b.duckdb'}" if source == "duckdb" else new_pg_database(pg_cluster)
    )
    load_folder(stores.folder, url)
    with DatabaseSource(url).connect(write=True) as conn:
        # Given a database without defaults, whose onboarding dates are text
        columns = ", ".join(
            f"CAST({name} AS TEXT) AS {name}" if name == "onboarding_date" else quote(name)
            for name in SCHEMAS["customers"].columns
        )
        conn.execute("DROP TABLE defaults")
        conn.execute(f"CREATE TABLE customers_text AS SELECT {columns} FROM customers")
        conn.execute("DROP TABLE customers")
        conn.execute("ALTER TABLE customers_text RENAME TO customers")
        conn.commit()
    # When a command reads it, then it stops naming the table and the column
    for args in (
        ("validate", url),
        ("describe", url),
        ("features", "at", "--raw", url, "--as-of", "2023-06-30", "--out", str(tmp_path / "f")),
    ):
        said = _one_line_error(*args)
        assert "table 'defaults' is missing" in said
        assert re.search(r"column customers.onboarding_date has type (TEXT|VARCHAR),", said)
        assert "expected date or timestamp" in said


def test_given_a_database_when_spark_engine_then_exit_2(stores: Stores, tmp_path: Path) -> None:
    said = _one_line_error(
        "features", "at", "--raw", stores.urls["duckdb"], "--as-of", "2023-06-30",
        "--out", str(tmp_path / "f"), "--engine", "spark",
    )  # fmt: skip
    assert "--engine spark reads Parquet folders" in said


# --- riskgrade load ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_given_a_loaded_database_then_keys_indexes_and_types_are_the_contracts(
    stores: Stores, source: str
) -> None:
    db = DatabaseSource(stores.urls[source])
    columns = db.columns()
    assert columns["transactions"]["ts"].startswith("timestamp")
    assert columns["customers"]["sanctions_hit"] == "boolean"
    assert columns["financial_statements"]["period_months"] == "bigint"
    assert columns["credit_facilities"]["limit"] in ("double precision", "double")
    sql = (
        "SELECT index_name FROM duckdb_indexes()"
        if source == "duckdb"
        else "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    )
    with db.connect() as conn:
        indexes = {row[0] for row in conn.execute(sql).fetchall()}
    expected = {f"ix_transactions_{'_'.join(c)}" for c in index_columns("transactions")}
    assert expected == {"ix_transactions_customer_id_ts", "ix_transactions_ts"}
    assert expected <= indexes
    assert len(create_index_sql("repayments")) == 2
    # And the primary key refuses a duplicate
    with db.connect(write=True) as conn, pytest.raises(Exception, match=r"(?i)duplicate|unique"):
        conn.execute(
            "INSERT INTO customers SELECT * FROM customers WHERE customer_id = "
            "(SELECT MIN(customer_id) FROM customers)"
        )


def test_given_a_filled_database_when_load_again_then_refused_unless_replace(
    stores: Stores, tmp_path: Path
) -> None:
    url = f"duckdb:///{tmp_path / 'l.duckdb'}"
    code, stdout, stderr = run_main("load", "--raw", str(stores.folder), "--to", url)
    assert code == 0, stderr
    assert "customers" in stdout and "150" in stdout
    said = _one_line_error("load", "--raw", str(stores.folder), "--to", url)
    assert "already holds table(s) customers" in said and "--replace" in said
    code, stdout, stderr = run_main("load", "--raw", str(stores.folder), "--to", url, "--replace")
    assert code == 0, stderr
    assert "replaced customers" in " ".join(stdout.split())
    assert validate_raw_dir(url).ok


def test_given_an_invalid_folder_when_load_then_exit_2_and_nothing_written(
    stores: Stores, tmp_path: Path
) -> None:
    # Given a folder whose customers table has a duplicate id
    broken = tmp_path / "broken"
    raw = read_raw(stores.folder)
    customers = pd.concat([raw.customers, raw.customers.head(1)])
    from features.io import RawTables, write_raw

    write_raw(RawTables.from_mapping({**dict(raw.items()), "customers": customers}), broken)
    target = tmp_path / "l.duckdb"
    # When loaded, then the error names the problem and the database holds no table
    said = _one_line_error("load", "--raw", str(broken), "--to", f"duckdb:///{target}")
    assert "customers.customer_id" in said
    if target.exists():
        with duckdb.connect(str(target)) as conn:
            assert conn.sql("SELECT COUNT(*) FROM information_schema.tables").fetchone() == (0,)
