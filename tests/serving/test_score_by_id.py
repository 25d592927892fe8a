"""Scoring by customer id: the service reads the records from a raw store (RISKGRADE_RAW_URL).

The same decision as a body that carries the records; the audit keeps what was read, and
replay gives the recorded answer after the store has grown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from audit import AuditConfig, SqlAuditStore, verify
from features.asof import read_bounds
from features.dbload import load_folder
from features.digest import record_digests
from features.io import RawDataError, RawTables, write_raw
from features.source import DatabaseSource, open_raw_source
from features.synthetic import GeneratorConfig, generate_tables
from rating.bundle import Bundle
from rating.model import RatingModel
from serving.batch import request_example
from serving.by_id import ByIdRequest, CustomerRead, SharedReads, read_requests
from serving.engine import Engine, RequestSource
from serving.schemas import ScoreRequest
from tests.cli_helpers import run_main
from tests.conftest import create_pg_database
from tests.serving.conftest import auth

AS_OF = date(2024, 12, 31)


@dataclass(frozen=True)
class Store:
    raw: RawTables
    folder: Path
    urls: dict[str, str]
    customers: list[str]
    """Customers onboarded by AS_OF."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, pg_cluster: dict[str, str]) -> Store:
    """80 generated customers (history after AS_OF too) in a folder, DuckDB and PostgreSQL."""
    root = tmp_path_factory.mktemp("byid")
    config = GeneratorConfig(customers=80, seed=13, start=date(2022, 1, 1), end=date(2025, 9, 30))
    raw, _ = generate_tables(config)
    write_raw(raw, root / "raw")
    urls = {
        "duckdb": f"duckdb:///{root / 'raw.duckdb'}",
        "postgresql": create_pg_database(pg_cluster, f"byid_{os.getpid()}"),
    }
    for url in urls.values():
        load_folder(root / "raw", url)
    known = raw.customers.loc[raw.customers["onboarding_date"] <= pd.Timestamp(AS_OF)]
    return Store(
        raw,
        root / "raw",
        urls,
        sorted(known["customer_id"]),
    )


def _same_decision(by_id: dict[str, Any], by_body: dict[str, Any]) -> None:
    """Everything equal but the decision id (PD to 1e-12, grade, tier, reasons, policy)."""
    assert abs(by_id["pd"] - by_body["pd"]) <= 1e-12
    strip = {"decision_id", "pd"}
    assert {k: v for k, v in by_id.items() if k not in strip} == {
        k: v for k, v in by_body.items() if k not in strip
    }


@pytest.mark.parametrize("source", ["duckdb", "postgresql"])
def test_given_a_raw_store_when_scored_by_id_then_same_decisions_as_from_bodies(
    store: Store, source: str, service_client
) -> None:
    # Given the service reading a raw store, and each customer's body built from the folder
    bodies = [request_example(store.raw, cid, AS_OF) for cid in store.customers]
    by_id = [{"customer_id": cid, "as_of": AS_OF.isoformat()} for cid in store.customers]
    with service_client(RISKGRADE_RAW_URL=store.urls[source]) as (client, tokens, audit_db):
        headers = auth(tokens["scorer"])
        # When the portfolio is scored from bodies and by id (batches of at most 100)
        from_bodies = client.post("/score_batch", json={"requests": bodies}, headers=headers)
        from_ids = client.post("/score_batch", json={"requests": by_id}, headers=headers)
        assert from_bodies.status_code == 200, from_bodies.text
        assert from_ids.status_code == 200, from_ids.text
        # Then every decision is the same
        pairs = zip(from_ids.json()["results"], from_bodies.json()["results"], strict=True)
        for got, expected in pairs:
            _same_decision(got, expected)
        tiers = {r["tier"] for r in from_ids.json()["results"]}
        assert len(tiers) >= 2
        # And one by one, /score and /explain (with a chart) agree as well
        for cid, body in list(zip(store.customers, bodies, strict=True))[:3]:
            one = {"customer_id": cid, "as_of": AS_OF.isoformat(), "lang": "zh"}
            got = client.post("/score", json=one, headers=headers)
            expected = client.post("/score", json={**body, "lang": "zh"}, headers=headers)
            assert got.status_code == 200, got.text
            _same_decision(got.json(), expected.json())
            got = client.post("/explain", json={**one, "chart": "svg"}, headers=headers)
            expected = client.post(
                "/explain", json={**body, "lang": "zh", "chart": "svg"}, headers=headers
            )
            assert got.status_code == 200, got.text
            _same_decision(got.json(), expected.json())
        assert verify(audit_db, key=b"test-key").ok


def _params(folder: Path, bundle: Bundle, audit_db: Path) -> Path:
    """params.yaml whose bundle archive holds ``bundle`` and whose audit log is ``audit_db``."""
    archive = folder / "bundles"
    if not (archive / bundle.bundle_hash).is_dir():
        shutil.copytree(bundle.path, archive / bundle.bundle_hash)
    params = {"paths": {"bundles": str(archive), "audit_db": str(audit_db)}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def _replay_cli(params: Path, decision_id: str, *extra: str) -> tuple[int, str]:
    code, out, err = run_main("audit", "replay", decision_id, *extra, "--params", str(params))
    return code, " ".join((out + err).split())


def test_given_a_by_id_decision_when_the_store_grows_or_changes_then_replay_tells_which(
    store: Store, service_client, tmp_path: Path, bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store of its own and a decision by id
    url = f"duckdb:///{tmp_path / 'grow.duckdb'}"
    load_folder(store.folder, url)
    monkeypatch.setenv("RISKGRADE_AUDIT_KEY", "test-key")
    monkeypatch.delenv("RISKGRADE_RAW_URL", raising=False)
    with service_client(RISKGRADE_RAW_URL=url) as (client, tokens, audit_db):
        scorer, auditor = auth(tokens["scorer"]), auth(tokens["auditor"])
        for cid in store.customers:  # a customer not restricted (not in default)
            request = {"customer_id": cid, "as_of": AS_OF.isoformat()}
            first = client.post("/score", json=request, headers=scorer).json()
            if first["tier"] != "restricted":
                break
        record = client.get(f"/audit/{first['decision_id']}", headers=auditor).json()
        # Then the audit keeps the request as received plus what was read, not the records
        read = record["payload"]["read"]
        assert record["request"] == {**request, "read": read}
        assert read["customer_id"] == cid and read["as_of"] == AS_OF.isoformat()
        assert read["source"] == url and read["store_setting"] == "RISKGRADE_RAW_URL"
        assert read["bounds"] == read_bounds(AS_OF) and read["bounds"]["ts"] == "< 2025-01-01"
        assert read["rows"]["customers"] == 1 and read["rows"]["transactions"] > 0
        tables = DatabaseSource(url).read_customers_at([cid], AS_OF)
        assert read["records_sha256"] == record_digests(tables, [cid])[cid][0]
        # When the store grows after as_of (a later statement and transaction)
        with DatabaseSource(url).connect(write=True) as conn:
            conn.execute(
                "INSERT INTO transactions SELECT txn_id || '-later', customer_id, "
                "TIMESTAMP '2026-02-03 10:00:00', amount, direction, counterparty_id, channel "
                f"FROM transactions WHERE customer_id = '{cid}' LIMIT 1"
            )
            conn.execute(
                "INSERT INTO financial_statements SELECT * REPLACE ("
                "DATE '2026-03-31' AS period_end, DATE '2026-04-30' AS published_date) "
                f"FROM financial_statements WHERE customer_id = '{cid}' LIMIT 1"
            )
            conn.commit()
        # Then replay reads the same records within the recorded bounds: the same answer
        replayed = client.post(f"/audit/{first['decision_id']}/replay", headers=auditor)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["equal"] is True
        # When a default before as_of is recorded late (backdated)
        with DatabaseSource(url).connect(write=True) as conn:
            conn.execute(
                f"INSERT INTO defaults VALUES ('{cid}', TIMESTAMP '2024-06-30 00:00:00', 'dpd90')"
            )
            conn.commit()
        second = client.post("/score", json=request, headers=scorer).json()
        second_record = client.get(f"/audit/{second['decision_id']}", headers=auditor).json()
        # Then a new decision reads the new records; replay of the first says the store changed
        assert second_record["payload"]["read"]["records_sha256"] != read["records_sha256"]
        assert second["tier"] == "restricted" and second["default"] is not None
        changed = client.post(f"/audit/{first['decision_id']}/replay", headers=auditor)
        assert changed.status_code == 409, changed.text
        said = changed.json()["error"]["message"]
        assert f"records of customer {cid} within the recorded bounds" in said
        assert "changed since the decision" in said and "'defaults': 0" in said
    # And a service without a store, or with one it cannot reach, answers 409 naming why
    for env in ({}, {"RISKGRADE_RAW_URL": "postgresql://nobody:pw@127.0.0.1:1/db"}):
        with service_client(**env) as (client, tokens, _):
            answer = client.post(
                f"/audit/{first['decision_id']}/replay", headers=auth(tokens["auditor"])
            )
        assert answer.status_code == 409, answer.text
        said = answer.json()["error"]["message"]
        assert "pw" not in said
        assert ("cannot read the records" if env else "set RISKGRADE_RAW_URL") in said
    params = _params(tmp_path, bundle, audit_db)
    # And offline: without a store named, exit 2 naming what is missing
    code, text = _replay_cli(params, first["decision_id"])
    assert code == 2, text
    assert "needs its raw store" in text and "--raw URL or set RISKGRADE_RAW_URL" in text
    # With the store named (--raw, or the setting): exit 1, one line saying what changed
    for extra, env in (((), {"RISKGRADE_RAW_URL": url}), (("--raw", url), {})):
        with monkeypatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            code, text = _replay_cli(params, first["decision_id"], *extra)
        assert code == 1, text
        assert "changed since the decision: rows per table then" in text
        assert "'defaults': 0" in text and "'defaults': 1" in text
    # And the second decision (made from the store as it is) replays equal
    code, text = _replay_cli(params, second["decision_id"], "--raw", url)
    assert code == 0, text
    assert re.search(r"features equal\W+True", text) and "False" not in text


def test_given_a_by_id_record_written_before_tables_when_replayed_then_as_before(
    service_client, tmp_path: Path, bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a decision by id recorded the way earlier versions did: the request body built
    # from the records read, plus the read with the SHA-256 of that body (a kept fixture)
    old = json.loads((Path(__file__).parent / "data/by_id_record_before_tables.json").read_text())
    body = json.dumps(old["request"]).encode()
    engine = Engine(RatingModel.load(bundle.path))
    [decision] = engine.decide(
        [ScoreRequest.model_validate_json(body)],
        "scorer-user",
        sources=[RequestSource(body, read=old["read"])],
    )
    audit_db = tmp_path / "audit.db"
    with SqlAuditStore(AuditConfig(path=audit_db), key=b"test-key") as audit:
        audit.append(decision.record)
    decision_id = decision.record.decision_id
    monkeypatch.setenv("RISKGRADE_AUDIT_KEY", "test-key")
    monkeypatch.delenv("RISKGRADE_RAW_URL", raising=False)
    # When it is replayed offline, no store named, and by the service
    code, text = _replay_cli(_params(tmp_path, bundle, audit_db), decision_id)
    with service_client() as (client, tokens, _):
        replayed = client.post(f"/audit/{decision_id}/replay", headers=auth(tokens["auditor"]))
    # Then it is re-scored from its recorded body, equal, as before
    assert code == 0, text
    assert re.search(r"features equal\W+True", text) and "False" not in text
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["equal"] is True and replayed.json()["features_equal"] is True


def test_given_the_same_data_in_three_stores_when_read_twice_then_the_same_digests(
    store: Store,
) -> None:
    # Given the same records in DuckDB, PostgreSQL and a folder
    sources = {
        "duckdb": DatabaseSource(store.urls["duckdb"]),
        "postgresql": DatabaseSource(store.urls["postgresql"], pooled=True),
        "folder": open_raw_source(store.folder),
    }
    items = [ByIdRequest(customer_id=cid, as_of=AS_OF) for cid in store.customers]
    early = store.raw.customers.loc[
        store.raw.customers["onboarding_date"] <= pd.Timestamp(2024, 6, 30), "customer_id"
    ].min()
    items.append(ByIdRequest(customer_id=early, as_of=date(2024, 6, 30)))
    # When every customer is read twice from each (all together, then the first alone)
    digests = {}
    for name, source in sources.items():
        for _ in range(2):
            reads = read_requests(source, items)
            assert all(isinstance(r, CustomerRead) for r in reads), [
                (name, str(r)) for r in reads if not isinstance(r, CustomerRead)
            ]
            got = [(r.read["records_sha256"], r.read["rows"]) for r in reads]  # type: ignore[union-attr]
            [alone] = read_requests(source, items[:1])
            assert (alone.read["records_sha256"], alone.read["rows"]) == got[0]  # type: ignore[union-attr]
            assert digests.setdefault(name, got) == got
    # Then the digests agree across reads and stores, and differ between customers and dates
    assert digests["duckdb"] == digests["postgresql"] == digests["folder"]
    shas = [sha for sha, _ in digests["duckdb"]]
    assert len(set(shas)) == len(shas)


def test_given_by_id_requests_when_invalid_then_4xx_naming_the_field(
    store: Store, service_client
) -> None:
    late = store.raw.customers.loc[
        store.raw.customers["onboarding_date"] > pd.Timestamp(AS_OF), "customer_id"
    ].iloc[0]
    day = AS_OF.isoformat()
    # Without a raw store: 422 naming customer_id
    with service_client() as (client, tokens, _):
        answer = client.post(
            "/score", json={"customer_id": "C1", "as_of": day}, headers=auth(tokens["scorer"])
        )
        assert answer.status_code == 422
        assert "RISKGRADE_RAW_URL" in answer.json()["error"]["message"]
        assert answer.json()["error"]["fields"][0]["loc"] == "customer_id"
    with service_client(RISKGRADE_RAW_URL=store.urls["duckdb"]) as (client, tokens, _):
        headers = auth(tokens["scorer"])
        # An unknown customer, or one onboarded after as_of: 404 naming the customer
        for cid in ("NOPE", late):
            answer = client.post("/score", json={"customer_id": cid, "as_of": day}, headers=headers)
            assert answer.status_code == 404, answer.text
            said = answer.json()["error"]
            assert f"customer '{cid}' is not in the raw store at {day}" in said["message"]
            assert said["fields"][0]["loc"] == "customer_id"
        # A bad date or an unknown field, inside a batch: 422 with the item's location
        batch = {"requests": [{"customer_id": "C1", "as_of": "2024-13-01"}]}
        answer = client.post("/score_batch", json=batch, headers=headers)
        assert answer.status_code == 422
        assert answer.json()["error"]["fields"][0]["loc"] == "requests.0.as_of"
        answer = client.post(
            "/score", json={"customer_id": "C1", "as_of": day, "x": 1}, headers=headers
        )
        assert answer.status_code == 422 and answer.json()["error"]["fields"][0]["loc"] == "x"
        # A chart on /score is refused as it is for a body
        answer = client.post(
            "/score",
            json={"customer_id": store.customers[0], "as_of": day, "chart": "svg"},
            headers=headers,
        )
        assert answer.status_code == 422 and answer.json()["error"]["fields"][0]["loc"] == "chart"
    # A store that cannot be reached: 503, never a 5xx other than that
    with service_client(RISKGRADE_RAW_URL="postgresql://nobody:pw@127.0.0.1:1/db") as (
        client,
        tokens,
        _,
    ):
        answer = client.post(
            "/score",
            json={"customer_id": "C1", "as_of": day},
            headers=auth(tokens["scorer"]),
        )
        assert answer.status_code == 503
        assert "raw store unavailable" in answer.json()["error"]["message"]
        assert "pw" not in answer.json()["error"]["message"]


def test_given_a_mixed_batch_when_scored_then_each_request_recorded_as_it_came(
    store: Store, service_client
) -> None:
    # Given a batch of a body and a by-id request
    body_cid, id_cid = store.customers[:2]
    body = request_example(store.raw, body_cid, AS_OF)
    by_id = {"customer_id": id_cid, "as_of": AS_OF.isoformat()}
    with service_client(RISKGRADE_RAW_URL=store.urls["postgresql"]) as (client, tokens, _):
        scorer, auditor = auth(tokens["scorer"]), auth(tokens["auditor"])
        # When it is scored, and each alone from a body
        mixed = client.post("/score_batch", json={"requests": [body, by_id]}, headers=scorer)
        assert mixed.status_code == 200, mixed.text
        alone = [
            client.post("/score", json=request_example(store.raw, cid, AS_OF), headers=scorer)
            for cid in (body_cid, id_cid)
        ]
        # Then the same decisions, and each record keeps its request as it came
        for got, expected in zip(mixed.json()["results"], alone, strict=True):
            _same_decision(got, expected.json())
        first, second = (
            client.get(f"/audit/{r['decision_id']}", headers=auditor).json()
            for r in mixed.json()["results"]
        )
        assert first["request"] == body and "read" not in first["payload"]
        assert second["request"] == {**by_id, "read": second["payload"]["read"]}
        # And an invalid body next to a by-id request is named at its place in the batch
        bad = {**body, "as_of": "2024-02-30"}
        answer = client.post("/score_batch", json={"requests": [by_id, bad]}, headers=scorer)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["fields"][0]["loc"] == "requests.1.as_of"


def test_given_stored_records_breaking_the_contract_when_scored_by_id_then_422_naming_them(
    store: Store, service_client, tmp_path: Path
) -> None:
    # Given a store where one customer's transaction has a negative amount
    url = f"duckdb:///{tmp_path / 'broken.duckdb'}"
    load_folder(store.folder, url)
    broken, fine = store.customers[:2]
    with DatabaseSource(url).connect(write=True) as conn:
        conn.execute(
            "UPDATE transactions SET amount = -5 WHERE txn_id = (SELECT min(txn_id) FROM "
            f"transactions WHERE customer_id = '{broken}' AND ts < TIMESTAMP '2024-12-01')"
        )
        conn.commit()
    day = AS_OF.isoformat()
    with service_client(RISKGRADE_RAW_URL=url) as (client, tokens, _):
        headers = auth(tokens["scorer"])
        # When it is scored by id, alone and in a batch with a customer whose records are fine
        alone = client.post("/score", json={"customer_id": broken, "as_of": day}, headers=headers)
        ok = client.post("/score", json={"customer_id": fine, "as_of": day}, headers=headers)
        batch = {
            "requests": [{"customer_id": fine, "as_of": day}, {"customer_id": broken, "as_of": day}]
        }
        both = client.post("/score_batch", json=batch, headers=headers)
    # Then 422 naming the customer, the table and column; the other customer is decided
    assert alone.status_code == 422, alone.text
    said = alone.json()["error"]
    assert said["fields"][0]["loc"] == "customer_id"
    assert f"records of customer '{broken}'" in said["message"]
    assert (
        "break the raw-data contract" in said["message"]
        and "transactions.amount" in said["message"]
    )
    assert ok.status_code == 200, ok.text
    assert (
        both.status_code == 422
        and both.json()["error"]["fields"][0]["loc"] == "requests.1.customer_id"
    )


def test_given_an_unsupported_raw_url_when_the_service_starts_then_the_variable_is_named() -> None:
    from serving.service import ServiceConfig, ServiceConfigError

    with pytest.raises(
        ServiceConfigError, match=r"RISKGRADE_RAW_URL.*unsupported database 'mysql'"
    ):
        ServiceConfig.from_env({"RISKGRADE_RAW_URL": "mysql://user@host/db"})
    assert ServiceConfig.from_env({"RISKGRADE_RAW_URL": "duckdb:///raw.duckdb"}).raw_url


class _Gated(DatabaseSource):
    """A real store whose reads wait for a gate (to hold one read while others arrive)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, pooled=True)
        self.calls: list[dict[date, list[str]]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def read_customers_by_day(self, wanted):  # type: ignore[no-untyped-def]
        self.calls.append({day: list(ids) for day, ids in wanted.items()})
        self.entered.set()
        assert self.gate.wait(30)
        return super().read_customers_by_day(wanted)


def test_given_concurrent_by_id_calls_when_a_read_runs_then_the_waiting_ones_share_one_read(
    store: Store,
) -> None:
    # Given the merged reads of a store, and a first call whose read is held
    source = _Gated(store.urls["postgresql"])
    reads = SharedReads(source)
    cids = store.customers[:5]
    got: dict[str, Any] = {}

    def call(cid: str) -> None:
        got[cid] = reads.read([ByIdRequest(customer_id=cid, as_of=AS_OF)])

    threads = [threading.Thread(target=call, args=(cid,)) for cid in cids]
    threads[0].start()
    assert source.entered.wait(30)
    # When four more calls arrive while it runs
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 30
    while reads.waiting < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reads.waiting == 4
    source.gate.set()
    for thread in threads:
        thread.join(30)
    # Then the four shared one read (one statement), and each got its own customer's records
    assert reads.reads == 2
    assert source.calls == [{AS_OF: cids[:1]}, {AS_OF: sorted(cids[1:])}]
    for cid in cids:
        [found] = got[cid]
        assert isinstance(found, CustomerRead) and found.customer["customer_id"] == cid
        assert found.read["customer_id"] == cid and found.read["rows"]["customers"] == 1
        frames = found.records.frames
        assert set(frames.transactions["customer_id"]) <= {cid}
        assert frames.customers["customer_id"].to_list() == [cid]


def test_given_an_unreachable_store_when_read_then_the_error_and_the_next_read_runs() -> None:
    reads = SharedReads(DatabaseSource("postgresql://nobody:pw@127.0.0.1:1/db", pooled=True))
    item = ByIdRequest(customer_id="C1", as_of=AS_OF)
    for _ in range(2):  # a failed read leaves no caller waiting for ever
        with pytest.raises(RawDataError, match="cannot connect"):
            reads.read([item])
    assert reads.reads == 2 and reads.waiting == 0
