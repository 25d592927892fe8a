"""Logs written by the code before the ``audit`` package open, verify, read and grow unchanged.

The fixtures were written by ``serving/audit.py`` of ``tests.audit.legacy.LEGACY_COMMIT``
(``tests/audit/fixtures/make_legacy_logs.py``).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

import audit.records
from audit import AuditConfig, DecisionRecord, SqlAuditStore, verify
from audit.chain import row_hash
from audit.records import decision_row, payload_json
from tests.audit.conftest import Backend, event, record

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
KEY = EXPECTED["key"].encode()
EVERY = EXPECTED["checkpoint_every"]


@pytest.fixture(params=["current_format", "first_format"])
def legacy_log(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / f"{request.param}.db"
    shutil.copyfile(FIXTURES / f"{request.param}.db", path)
    return request.param, path


def test_given_a_legacy_log_when_verified_read_only_then_intact_and_unchanged(legacy_log):
    name, path = legacy_log
    before = path.read_bytes()
    result = verify(path, key=KEY, checkpoint_every=EVERY)
    assert result.ok and result.records == len(EXPECTED[name])
    assert path.read_bytes() == before  # verification writes nothing


def test_given_a_legacy_log_when_opened_then_it_reads_searches_and_exports(legacy_log):
    name, path = legacy_log
    store = SqlAuditStore(AuditConfig(path=path, checkpoint_every=EVERY), key=KEY)
    records = list(store.iter_all())
    assert [r.hash for r in records] == EXPECTED[name]
    assert all(store.check_record(r.id).ok for r in records)
    if name == "current_format":
        assert store.show(5).request == {"n": 1} and store.show(6).request == {"n": 2}
        assert store.show("fx001").payload["features"]["nan"] is None
        assert store.export(customer_id="C1")[0].decision_id == "fx001"
        assert [
            r.id for r in store.export(rated_from=date(2024, 4, 1), rated_to=date(2024, 4, 30))
        ] == [3, 12]
    else:
        assert store.show(1).request == {"old": 1} and store.show(4).request is not None
    assert store.search().total == len(records)
    store.close()


def test_given_a_legacy_log_when_appended_to_then_one_valid_chain(legacy_log):
    # Given a log written by the old code, opened by the new store
    name, path = legacy_log
    store = SqlAuditStore(AuditConfig(path=path, checkpoint_every=EVERY), key=KEY)
    n = len(EXPECTED[name])
    # When decisions and a person's action are appended
    store.append_many([record(100), record(101)])
    store.append_event(event(1))
    # Then they continue the old chain, the old hashes are unchanged, and it verifies
    assert store.show("d0100").prev_hash == EXPECTED[name][-1]
    assert [r.hash for r in store.iter_all()][:n] == EXPECTED[name]
    result = store.verify()
    assert (result.ok, result.records) == (True, n + 3)
    assert verify(path, key=KEY, checkpoint_every=EVERY).ok
    store.close()


def test_given_a_record_when_chained_then_hash_equals_the_legacy_code(monkeypatch):
    # Given the record the legacy code chained at a fixed time (from the fixture script)
    fixed = EXPECTED["fixed_row"]
    values = {k: fixed[k] for k in ("decision_id", "kind", "caller", "customer_id",
              "model_version", "bundle_hash", "policy_version", "pd", "grade", "tier",
              "request_pointer")}  # fmt: skip
    body = b'{ "customer_id": "C2",  "n": 42 }'
    payload = json.loads(fixed["payload"])
    payload["features"]["nan"] = float("nan")
    rec = DecisionRecord(**values, payload=payload, request_body=body)
    # When the new code builds its row
    row = decision_row(rec, payload_json(rec.payload), 43, fixed["prev_hash"], fixed["created_at"])
    # Then every stored value and the hash are the legacy ones
    assert row == {k: fixed[k] for k in row}
    assert row["hash"] == fixed["hash"] == row_hash(row, False)
    assert audit.records.record_hash(fixed["prev_hash"], fixed) == fixed["hash"]


def test_given_a_log_copied_to_postgresql_when_verified_then_it_holds(pg_url, tmp_path):
    # Given the rows of a legacy SQLite log copied as they are into PostgreSQL
    path = tmp_path / "current.db"
    shutil.copyfile(FIXTURES / "current_format.db", path)
    target = Backend("postgresql", pg_url).open(every=EVERY, key=KEY)
    source = sqlite3.connect(path)
    engine = target.engine
    with engine.begin() as conn:
        for table in ("decisions", "request_bodies", "checkpoints"):
            cursor = source.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor]
            conn.execute(sa.table(table, *map(sa.column, names)).insert(), rows)
    source.close()
    # When verified there, then the chain and checkpoints hold, and it grows
    assert target.verify().ok
    assert target.append(record(200)).prev_hash == EXPECTED["current_format"][-1]
    assert target.verify().records == len(EXPECTED["current_format"]) + 1
    target.close()
