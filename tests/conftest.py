"""Fixtures shared by every test package: a small generated portfolio, a PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from features.synthetic import GeneratorConfig, generate

SAMPLE_AS_OF = date(2025, 12, 31)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """Folder ``name`` that ``build(folder)`` writes once per test run, shared by the xdist
    workers (they would each build their own copy of a session fixture); treat it as read-only.

    The first worker to ask builds it under a file lock; the others wait, then reuse it.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    target = root / f"shared-{name}"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (target / ".built").exists():
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                build(target)
                (target / ".built").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


@pytest.fixture(scope="session")
def sample_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-customer portfolio (seed 7) written once per run; treat as read-only."""
    root = built_once(
        tmp_path_factory,
        "sample",
        lambda d: generate(GeneratorConfig(customers=400, seed=7), d / "raw"),
    )
    return root / "raw"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgUnavailableError(RuntimeError):
    """PostgreSQL cannot be started here (binaries, runuser or initdb missing or failing)."""


@contextlib.contextmanager
def start_pg_cluster() -> Iterator[dict[str, str]]:
    """Start a throwaway PostgreSQL cluster on a unix socket only; yield host and port.

    Raises:
        PgUnavailableError: when PostgreSQL cannot be started on this machine.
    """
    bindir = _pg_bin()
    if bindir is None:
        raise PgUnavailableError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        raise PgUnavailableError("running as root without runuser: cannot start PostgreSQL")
    base = Path(tempfile.mkdtemp(prefix="rg-pg-"))
    data = base / "data"
    data.mkdir()
    prefix: list[str] = []
    if as_root:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
        base.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = str(_free_port())

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = f"-p {port} -k {data} -c listen_addresses='' -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
            str(data / "log.txt"), "start")  # fmt: skip
    except subprocess.CalledProcessError as error:
        shutil.rmtree(base, ignore_errors=True)
        message = f"cannot start a PostgreSQL cluster: {error.stderr.decode()[-300:]}"
        raise PgUnavailableError(message) from error
    try:
        yield {"host": str(data), "port": port}
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL cluster (see ``start_pg_cluster``).

    Skips the test when PostgreSQL or psycopg is not installed.
    """
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        cluster = start_pg_cluster()
        info = cluster.__enter__()
    except PgUnavailableError as error:
        pytest.skip(str(error))
    try:
        yield info
    finally:
        cluster.__exit__(None, None, None)


def create_pg_database(cluster: dict[str, str], name: str) -> str:
    """Create (or re-create, empty) database ``name`` on the cluster; its SQLAlchemy URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(pg_database_url(cluster, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return pg_database_url(cluster, name)


_db_numbers = itertools.count(1)


def pg_database_url(cluster: dict[str, str], database: str) -> str:
    """SQLAlchemy URL of ``database`` on the throwaway cluster."""
    return (
        f"postgresql+psycopg://postgres@/{database}?host={cluster['host']}&port={cluster['port']}"
    )


@pytest.fixture()
def pg_url(pg_cluster: dict[str, str]) -> str:
    """A fresh, empty PostgreSQL database per test."""
    import sqlalchemy as sa

    name = f"audit_{os.getpid()}_{next(_db_numbers)}"
    admin = sa.create_engine(pg_database_url(pg_cluster, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return pg_database_url(pg_cluster, name)


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local Spark session (2 cores, 2 shuffle partitions, no UI) for the spark tests."""
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: the Spark tests need one (.ci/run installs it)")
    from features.spark import SparkConfig
    from features.spark.engine import spark_session

    defaults = SparkConfig()
    conf = {
        **defaults.conf,
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "1g",
        "spark.sql.adaptive.enabled": "false",  # tiny test data: re-planning costs more
    }
    session = spark_session(defaults.model_copy(update={"conf": conf}), "local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schedule whole files on one xdist worker (``--dist loadgroup``), every Spark file on one.

    Like ``--dist loadfile`` (module fixtures are built once), except that the Spark tests
    share one worker and so one JVM and one Spark session instead of one per worker.
    """
    for item in items:
        group = "spark" if item.get_closest_marker("spark") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
