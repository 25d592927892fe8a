"""SqlAuditStore against a real, throwaway PostgreSQL cluster (skipped when it is not installed)."""

from __future__ import annotations

import glob
import itertools
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed")

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from serving.audit import (
    AuditConfig,
    AuditQuery,
    AuditRecordNotFoundError,
    AuditStore,
    AuditUnavailableError,
    DecisionRecord,
    open_audit_store,
    verify,
)
from serving.audit_sql import AuditUrlError, SqlAuditStore
from tests.serving.audit_cases import check_export_filters, rated_records

KEY = b"test-key"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[dict[str, str]]:
    """A throwaway cluster on a unix socket only; yields host (socket dir) and port."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
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
        pytest.skip(f"cannot start a PostgreSQL cluster: {error.stderr.decode()[-300:]}")
    try:
        yield {"host": str(data), "port": port}
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


_db_numbers = itertools.count(1)


def _url(cluster: dict[str, str], database: str) -> str:
    return (
        f"postgresql+psycopg://postgres@/{database}?host={cluster['host']}&port={cluster['port']}"
    )


@pytest.fixture()
def pg_url(pg_cluster: dict[str, str]) -> str:
    """A fresh, empty database per test."""
    name = f"audit_{os.getpid()}_{next(_db_numbers)}"
    admin = sa.create_engine(_url(pg_cluster, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return _url(pg_cluster, name)


def record(i: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{i:04d}",
        kind="score",
        caller="scorer-user",
        customer_id=f"C{i % 3:03d}",
        model_version="m1" if i % 2 else "m2",
        bundle_hash="ab" * 32,
        policy_version="p1",
        pd=0.01 + i / 1000,
        grade="4",
        tier="medium" if i % 2 else "low",
        request_body=b'{"i": %d}' % i,
        payload={"features": {"x": 1.5, "y": None, "z": float("nan")}},
    )


def filled(url: str, n: int, every: int = 5) -> SqlAuditStore:
    store = SqlAuditStore(AuditConfig(url=url, checkpoint_every=every), key=KEY)
    for i in range(1, n + 1):
        store.append(record(i))
    return store


def superuser_sql(url: str, *statements: str) -> None:
    """What someone with owner access could do: bypass the store entirely."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def test_given_appended_records_when_verified_then_chain_and_checkpoints_hold(pg_url):
    # Given 12 appended decisions, checkpoint every 5
    store = filled(pg_url, 12)
    # When verified
    result = store.verify()
    # Then the chain holds with two checkpoints, and module-level verify agrees
    assert (result.ok, result.records, result.checkpoints) == (True, 12, 2)
    assert verify(store) == result
    assert store.count() == 12
    assert [c["record_count"] for c in store.checkpoints()] == [5, 10]
    assert store.is_writable()
    # And every connection commits synchronously
    with store._engine.connect() as conn:
        assert conn.execute(sa.text("SHOW synchronous_commit")).scalar_one() == "on"
    store.close()


def test_given_records_when_read_back_then_same_values_as_sqlite_store(pg_url, tmp_path):
    # Given the same decisions in PostgreSQL and in SQLite
    store = filled(pg_url, 6)
    lite = AuditStore(AuditConfig(path=tmp_path / "a.db", checkpoint_every=5), key=KEY)
    for i in range(1, 7):
        lite.append(record(i))
    # When read back by id and by decision id
    pg_rec, lite_rec = store.show(4), lite.show(4)
    # Then every column but time and hashes matches; NaN became null in both
    skip = {"created_at", "prev_hash", "hash"}
    assert {k: v for k, v in pg_rec.to_dict().items() if k not in skip} == {
        k: v for k, v in lite_rec.to_dict().items() if k not in skip
    }
    assert pg_rec.payload["features"]["z"] is None
    assert store.show("d0004") == pg_rec
    assert [r.id for r in store.iter_all()] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(AuditRecordNotFoundError, match="d9999"):
        store.show("d9999")
    lite.close()
    store.close()


def test_given_records_when_searched_and_exported_then_filters_and_pages_apply(pg_url):
    # Given 9 decisions over customers C000..C002 and tiers medium/low
    store = filled(pg_url, 9)
    # When searched by customer and tier, and paged
    page = store.search(AuditQuery(customer_id="C001", tier="medium"))
    latest = store.search(AuditQuery(limit=2, offset=1))
    # Then matches are exact, newest first, with totals
    assert [r.id for r in page.records] == [7, 1] and page.total == 2
    assert [r.id for r in latest.records] == [8, 7] and latest.total == 9
    assert store.facets() == {"tiers": ["low", "medium"], "model_versions": ["m1", "m2"]}
    # And an export by time window covers everything now, nothing after
    now = datetime.now(UTC)
    assert len(store.export(now - timedelta(hours=1), now + timedelta(hours=1))) == 9
    assert store.export(start=now + timedelta(hours=1)) == []
    assert store.search(AuditQuery(start=now - timedelta(hours=1))).total == 9
    store.close()


def test_given_log_when_update_delete_or_truncate_then_trigger_refuses(pg_url):
    # Given a log with a checkpoint
    store = filled(pg_url, 5)
    # When anyone updates, deletes or truncates either table
    for statement in (
        "UPDATE decisions SET pd = 0.5 WHERE id = 2",
        "DELETE FROM decisions WHERE id = 5",
        "TRUNCATE decisions CASCADE",
        "UPDATE checkpoints SET record_count = 1",
        "DELETE FROM checkpoints",
    ):
        # Then the trigger raises and nothing changes
        with pytest.raises(DBAPIError, match="append-only"):
            superuser_sql(pg_url, statement)
    assert store.verify().ok and store.count() == 5 and len(store.checkpoints()) == 1
    store.close()


def test_given_row_edited_with_triggers_dropped_when_verified_then_that_record_fails(pg_url):
    # Given an owner who disables the triggers and edits one byte of record 3's payload
    store = filled(pg_url, 8)
    superuser_sql(
        pg_url,
        "ALTER TABLE decisions DISABLE TRIGGER USER",
        "UPDATE decisions SET payload = replace(payload, '1.5', '2.5') WHERE id = 3",
    )
    # When verified
    result = store.verify()
    # Then record 3 is named, and its local check agrees
    assert not result.ok and result.first_bad_id == 3
    assert result.problem == "record 3: content does not match its hash"
    assert not store.check_record(3).hash_ok and store.check_record(2).ok
    store.close()


def test_given_request_body_edited_when_verified_then_its_record_fails(pg_url):
    # Given records whose bodies are stored apart, and an owner who edits record 5's body
    store = filled(pg_url, 6)
    assert store.show(5).request == {"i": 5}
    superuser_sql(
        pg_url,
        "ALTER TABLE request_bodies DISABLE TRIGGER USER",
        "UPDATE request_bodies SET body = convert_to('{\"i\": 50}', 'UTF8') "
        "WHERE body = convert_to('{\"i\": 5}', 'UTF8')",
    )
    # When verified, then record 5 is named for its body
    result = store.verify()
    assert not result.ok and result.first_bad_id == 5
    assert result.problem == "record 5: request body missing or altered"
    assert not store.check_record(5).ok and store.check_record(4).ok
    store.close()


def test_given_a_group_when_appended_then_chained_in_order_with_one_shared_body(pg_url):
    store = SqlAuditStore(AuditConfig(url=pg_url, checkpoint_every=2), key=KEY)
    body = b'{"requests": [{"n": 0}, {"n": 1}, {"n": 2}]}'
    group = [
        record(i + 1).model_copy(update={"request_body": body, "request_pointer": f"/requests/{i}"})
        for i in range(3)
    ]
    stored = store.append_many(group)
    assert [r.id for r in stored] == [1, 2, 3] and stored[2].prev_hash == stored[1].hash
    assert store.show(3).request == {"n": 2} and store.verify().ok
    assert len(store.checkpoints()) == 1
    store.close()


def test_given_row_deleted_or_tail_cut_when_verified_then_detected(pg_url):
    # Given the triggers dropped, record 4 deleted
    store = filled(pg_url, 12)
    superuser_sql(
        pg_url,
        "DROP TRIGGER decisions_append_only ON decisions",
        "DELETE FROM decisions WHERE id = 4",
    )
    # Then verify names the missing record
    result = store.verify()
    assert (result.ok, result.first_bad_id) == (False, 4)
    assert "record 4 is missing" in (result.problem or "")
    store.close()


def test_given_tail_cut_below_checkpoint_when_verified_then_cut_reported(pg_url):
    # Given records 8..12 removed behind the store's back (checkpoint 2 covers 10)
    store = filled(pg_url, 12)
    superuser_sql(
        pg_url,
        "ALTER TABLE decisions DISABLE TRIGGER USER",
        "DELETE FROM decisions WHERE id >= 8",
    )
    # When verified (opened read-only: no trigger re-creation)
    reader = SqlAuditStore(AuditConfig(url=pg_url, checkpoint_every=5), key=KEY, create=False)
    result = reader.verify()
    # Then the checkpoint reveals the cut
    assert not result.ok and result.first_bad_id == 8
    assert "tail cut off" in (result.problem or "")
    reader.close()
    store.close()


def test_given_duplicate_decision_id_when_appended_then_unavailable_and_chain_intact(pg_url):
    store = filled(pg_url, 3)
    with pytest.raises(AuditUnavailableError, match="decision_id"):
        store.append(record(2))
    # Then nothing was written: the next append continues the chain at id 4
    assert store.append(record(4)).id == 4
    assert store.verify().ok
    store.close()


def test_given_two_stores_and_threads_when_appending_concurrently_then_one_valid_chain(pg_url):
    # Given two independent stores (two engines, as two service processes would have)
    config = AuditConfig(url=pg_url, checkpoint_every=7)
    stores = [SqlAuditStore(config, key=KEY), SqlAuditStore(config, key=KEY)]
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        store = stores[worker % 2]
        try:
            for i in range(15):
                store.append(record(1000 + worker * 100 + i))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    # When 6 threads append 15 decisions each at the same time
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then all 90 are in one unbroken chain with every checkpoint
    assert errors == []
    result = stores[0].verify()
    assert (result.ok, result.records, result.checkpoints) == (True, 90, 12)
    for store in stores:
        store.close()


def _process_writer(url: str, worker: int, n: int, barrier: Any) -> None:
    store = SqlAuditStore(AuditConfig(url=url, checkpoint_every=7), key=KEY)
    barrier.wait(timeout=60)  # start appending together
    for i in range(n):
        store.append(record(5000 + worker * 100 + i))
    store.close()


def test_given_two_processes_when_appending_concurrently_then_one_valid_chain(pg_url):
    # Given two separate writer processes
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    procs = [
        context.Process(target=_process_writer, args=(pg_url, w, 20, barrier)) for w in range(2)
    ]
    # When they append at the same time
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    # Then both succeeded and the log is one valid chain of 40
    assert [proc.exitcode for proc in procs] == [0, 0]
    store = SqlAuditStore(AuditConfig(url=pg_url, checkpoint_every=7), key=KEY)
    result = store.verify()
    assert (result.ok, result.records, result.checkpoints) == (True, 40, 5)
    store.close()


def test_given_config_when_opened_via_factory_then_backend_follows_url(pg_url, tmp_path):
    # Given one config with a URL and one without
    sql = open_audit_store(AuditConfig(url=pg_url), key=KEY)
    lite = open_audit_store(AuditConfig(path=tmp_path / "a.db"), key=KEY)
    # Then the factory picks PostgreSQL for the URL and SQLite for the path
    assert isinstance(sql, SqlAuditStore) and isinstance(lite, AuditStore)
    sql.close()
    lite.close()


def test_given_any_supported_sqlalchemy_url_when_opened_then_that_store(pg_url, tmp_path):
    # Given a sqlite:/// URL and a bare postgresql:// URL (no driver named)
    lite = open_audit_store(AuditConfig(url=f"sqlite:///{tmp_path}/url.db"), key=KEY)
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    sql = open_audit_store(AuditConfig(url=bare), key=KEY)
    # Then the SQLite store opens that file, and PostgreSQL is reached through psycopg 3
    assert isinstance(lite, AuditStore) and lite.path == tmp_path / "url.db"
    assert isinstance(sql, SqlAuditStore) and sql.append(record(1)).id == 1
    lite.close()
    sql.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+pymysql://u@h/db", "dialect 'mysql' is not supported"),
        ("mssql://u@h/db", "dialect 'mssql' is not supported"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ],
)
def test_given_unsupported_url_when_opened_then_error_names_the_dialect(url, message):
    with pytest.raises(AuditUrlError, match=message):
        open_audit_store(AuditConfig(url=url))


def test_given_unsupported_or_unreachable_url_when_opened_then_clear_error(pg_cluster):
    with pytest.raises(AuditUrlError, match="PostgreSQL store"):
        SqlAuditStore(AuditConfig(url="sqlite:///x.db"))
    with pytest.raises(AuditUrlError, match="not a valid"):
        SqlAuditStore(AuditConfig(url="not a url"))
    with pytest.raises(AuditUrlError, match="url is not set"):
        SqlAuditStore(AuditConfig())
    # An unreachable server: AuditError naming the URL with its password masked
    bad = "postgresql+psycopg://u:secret@/nope?host=/nonexistent&port=1"
    with pytest.raises(Exception, match=r"\*\*\*") as info:
        SqlAuditStore(AuditConfig(url=bad))
    assert "secret" not in str(info.value)


def test_given_writer_holding_the_lock_when_append_then_unavailable_after_timeout(pg_url):
    # Given another session holding the append lock, and a 200 ms lock timeout
    store = SqlAuditStore(AuditConfig(url=pg_url, busy_timeout_ms=200), key=KEY)
    store.append(record(1))
    other = sa.create_engine(pg_url)
    with other.begin() as conn:
        conn.execute(sa.text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
        # When the store appends, Then it gives up with AuditUnavailableError (no decision)
        with pytest.raises(AuditUnavailableError, match="lock timeout"):
            store.append(record(2))
    other.dispose()
    # And once the lock is released, appends continue the chain
    assert store.append(record(2)).id == 2 and store.verify().ok
    store.close()


def test_given_a_postgresql_url_when_the_service_scores_then_the_decision_is_in_postgresql(
    pg_url, service_client, portfolio, as_of
):
    from serving.batch import request_example
    from tests.serving.conftest import auth

    # Given the service pointed at PostgreSQL through RISKGRADE_AUDIT_URL
    with service_client(RISKGRADE_AUDIT_URL=pg_url) as (client, tokens, sqlite_db):
        body = request_example(portfolio, "C00001", as_of)
        # When a customer is scored
        response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert response.status_code == 200, response.text
        decision_id = response.json()["decision_id"]
    # Then the decision is committed in PostgreSQL (not in the SQLite file) and verifies
    store = SqlAuditStore(AuditConfig(url=pg_url), key=b"test-key")
    try:
        assert store.show(decision_id).decision_id == decision_id
        assert store.verify().ok
    finally:
        store.close()
    assert not sqlite_db.exists()


def test_given_rated_records_when_exported_then_rating_date_time_and_customer_filter(pg_url):
    # Given decisions of two customers on three rating dates (and one without a rating date)
    store = SqlAuditStore(AuditConfig(url=pg_url), key=KEY)
    store.append_many(rated_records())
    # When exported by rating date, logging time and customer, then each filter applies
    check_export_filters(store)
    # And the rating date is indexed; the search takes the same filters
    assert store.search(AuditQuery(rated_from=date(2024, 6, 30), customer_id="A")).total == 2
    indexes = store._rows("SELECT indexname FROM pg_indexes WHERE tablename = 'decisions'")
    assert ("decisions_rated_on",) in indexes
    # And a payload that is not JSON (edited by the owner) reads as no rating date, no error
    superuser_sql(
        pg_url,
        "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only",
        "UPDATE decisions SET payload = 'not json' WHERE id = 1",
    )
    assert [r.id for r in store.export(rated_to=date(2024, 12, 31))] == [2, 3, 4]
    assert not store.verify().ok
    store.close()
