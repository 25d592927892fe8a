from __future__ import annotations

import base64
import copy
import json
import sqlite3
import threading

import numpy as np
import pytest

from audit import verify
from serving.batch import request_example
from tests.serving.conftest import auth


@pytest.fixture
def body(portfolio, as_of):
    return request_example(portfolio, "C00002", as_of)


@pytest.fixture
def running(service_client):
    with service_client() as started:
        yield started


def test_given_ready_service_when_probed_then_live_and_ready(running):
    client, _, _ = running
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_given_missing_bundle_when_started_then_not_ready_and_scoring_503(
    service_client, tmp_path, body
):
    with service_client(bundle_path=tmp_path / "nowhere") as (client, tokens, _):
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_ready"


def test_given_an_audit_store_unopenable_at_start_when_it_recovers_then_served_without_restart(
    service_client, tmp_path, body, monkeypatch
):
    import serving.service

    monkeypatch.setattr(serving.service, "_AUDIT_RETRY_S", 0.0)
    # Given a worker that could not open its audit store at start (not a database there)
    audit_db = tmp_path / "audit.db"
    audit_db.write_bytes(b"not a database, " * 64)
    with service_client() as (client, tokens, _):
        assert client.get("/readyz").status_code == 503
        refused = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
        # When the store can be opened again (the file is fixed)
        audit_db.unlink()
        # Then the next calls are served and recorded, without a restart
        assert client.get("/readyz").status_code == 200
        answered = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert answered.status_code == 200
    assert verify(audit_db, key=b"test-key").records == 1


def test_given_tampered_bundle_when_started_then_not_ready(service_client, bundle, tmp_path):
    import shutil

    copy_dir = tmp_path / "tampered"
    shutil.copytree(bundle.path, copy_dir)
    (copy_dir / "scale.json").write_text((copy_dir / "scale.json").read_text() + " ")
    with service_client(bundle_path=copy_dir) as (client, _, _):
        assert client.get("/readyz").status_code == 503


def test_given_raw_records_when_scored_then_full_decision_is_returned_and_audited(running, body):
    client, tokens, audit_db = running
    response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
    assert response.status_code == 200
    out = response.json()
    assert 0 < out["pd"] < 1 and out["customer_id"] == "C00002"
    assert out["tier"] in {"low", "medium", "high", "restricted"}
    assert set(out["policy"]) >= {"credit_limit_factor", "max_payment_term_days"}
    assert len(out["reasons"]) <= 4
    assert all(r["contribution"] > 0 for r in out["reasons"])
    assert set(out["groups"]) == {"profile", "financial", "credit", "transaction"}
    assert out["model_version"] == "test-1"
    record = client.get(f"/audit/{out['decision_id']}", headers=auth(tokens["auditor"])).json()
    assert record["pd"] == out["pd"] and record["caller"] == "scorer-user"
    assert record["request"]["customer"]["customer_id"] == "C00002"
    assert record["request_pointer"] == "" and len(record["request_sha256"]) == 64
    assert len(record["payload"]["features"]) > 40
    assert verify(audit_db, key=b"test-key").ok


def test_given_lang_zh_when_scored_then_chinese_reason_texts(running, body):
    client, tokens, _ = running
    out = client.post("/score", json={**body, "lang": "zh"}, headers=auth(tokens["scorer"])).json()
    assert out["reasons"] and all(
        any("\u4e00" <= ch <= "\u9fff" for ch in r["text"]) for r in out["reasons"]
    )


def test_given_feature_vector_when_scored_then_same_pd_as_raw(running, body):
    client, tokens, _ = running
    raw = client.post("/score", json=body, headers=auth(tokens["scorer"])).json()
    record = client.get(f"/audit/{raw['decision_id']}", headers=auth(tokens["auditor"])).json()
    vector = {
        "as_of": body["as_of"],
        "feature_vector": {"customer_id": "C00002", "values": record["payload"]["features"]},
    }
    out = client.post("/score", json=vector, headers=auth(tokens["scorer"])).json()
    assert out["pd"] == raw["pd"]


def test_given_explain_when_called_then_shap_plus_base_equals_log_odds_and_chart(running, body):
    client, tokens, _ = running
    response = client.post(
        "/explain", json={**body, "chart": "png"}, headers=auth(tokens["scorer"])
    )
    assert response.status_code == 200
    out = response.json()
    total = sum(out["contributions"].values()) + out["base_log_odds"]
    assert abs(total - out["log_odds"]) < 1e-6
    assert abs(1 / (1 + np.exp(-out["log_odds"])) - out["pd"]) < 1e-6 or out["pd"] == 0.0003
    explanation = out["explanation"]
    assert explanation["grade"] == out["grade"] and explanation["tier"] == out["tier"]
    assert base64.b64decode(out["chart"]["base64"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_given_batch_when_scored_then_equals_single_calls(running, portfolio, as_of):
    client, tokens, _ = running
    bodies = [request_example(portfolio, cid, as_of) for cid in ("C00001", "C00004", "C00007")]
    batch = client.post("/score_batch", json={"requests": bodies}, headers=auth(tokens["scorer"]))
    assert batch.status_code == 200
    singles = [client.post("/score", json=b, headers=auth(tokens["scorer"])).json() for b in bodies]
    assert [r["pd"] for r in batch.json()["results"]] == [s["pd"] for s in singles]
    assert len({r["decision_id"] for r in batch.json()["results"]}) == 3


def test_given_model_endpoint_when_called_then_metadata_scale_policy_spec(running):
    client, tokens, _ = running
    out = client.get("/model", headers=auth(tokens["auditor"])).json()
    assert out["version"] == "test-1" and out["metrics"] == {"auc": 0.75}
    assert out["scale"]["grades"] and out["policy"]["tiers"] and out["feature_spec"]["features"]


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("post", "/score", "scorer"),
        ("post", "/score_batch", "scorer"),
        ("post", "/explain", "scorer"),
        ("get", "/audit/1", "auditor"),
        ("post", "/audit/1/replay", "auditor"),
        ("get", "/audit/verify", "auditor"),
        ("post", "/admin/reload", "admin"),
    ],
)
def test_given_roles_when_calling_endpoints_then_401_without_token_and_403_wrong_role(
    running, method, path, role
):
    client, tokens, _ = running
    call = getattr(client, method)
    no_token = call(path)
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "unauthorized"
    for other in {"scorer", "auditor", "admin"} - {role}:
        denied = call(path, headers=auth(tokens[other]))
        assert denied.status_code == 403, (path, other)
        assert role in denied.json()["error"]["message"]


def test_given_client_mistakes_when_posted_then_4xx_in_error_schema(service_client, body):
    with service_client(RISKGRADE_MAX_BODY_BYTES="60000") as (client, tokens, _):
        headers = auth(tokens["scorer"])
        unknown = client.post("/score", json={**body, "colour": "red"}, headers=headers)
        assert unknown.status_code == 422
        assert unknown.json()["error"]["fields"][0]["loc"] == "colour"

        nan = copy.deepcopy(body)
        nan["statements"][0]["cash"] = float("nan")
        response = client.post(
            "/score",
            content=json.dumps(nan),
            headers={**headers, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert "statements.0.cash" in [f["loc"] for f in response.json()["error"]["fields"]]

        big = {**body, "transactions": body["transactions"] * 4}
        too_large = client.post("/score", json=big, headers=headers)
        assert too_large.status_code == 413
        assert too_large.json()["error"]["code"] == "payload_too_large"

        not_json = client.post(
            "/score", content=b"<xml/>", headers={**headers, "content-type": "text/xml"}
        )
        assert not_json.status_code == 415

        broken = client.post(
            "/score", content=b"{", headers={**headers, "content-type": "application/json"}
        )
        assert broken.status_code == 422

        unknown_feature = {
            "as_of": body["as_of"],
            "feature_vector": {"customer_id": "c", "values": {"shoe_size": 1.0}},
        }
        response = client.post("/score", json=unknown_feature, headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["fields"][0]["loc"] == "feature_vector.values.shoe_size"

        assert client.get("/nowhere", headers=headers).status_code == 404
        assert client.get("/audit/999", headers=auth(tokens["auditor"])).status_code == 404


def test_given_too_many_records_when_posted_then_422_naming_list(service_client, body):
    with service_client() as (client, tokens, _):
        big = {
            **body,
            "transactions": [
                dict(t, txn_id=f"x{i}") for i, t in enumerate(body["transactions"] * 170)
            ],
        }
        response = client.post("/score", json=big, headers=auth(tokens["scorer"]))
        assert response.status_code == 422
        assert response.json()["error"]["fields"][0]["loc"] == "transactions"


def test_given_audit_store_unwritable_when_scoring_then_503_and_no_decision(running, body):
    client, tokens, audit_db = running
    before = client.post("/score", json=body, headers=auth(tokens["scorer"]))
    assert before.status_code == 200
    blocker = sqlite3.connect(audit_db, isolation_level=None, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        import bentoml

        store = bentoml.get_current_service().state.audit
        store._writer().execute("PRAGMA busy_timeout=50")
        with store.engine.connect() as conn:  # the pooled connection the readiness probe uses
            conn.exec_driver_sql("PRAGMA busy_timeout=50")
        response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "audit_unavailable"
        assert "pd" not in response.text
        assert client.get("/readyz").status_code == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert client.get("/readyz").status_code == 200


def test_given_stored_decision_when_replayed_then_equal(running, body):
    client, tokens, _ = running
    out = client.post("/explain", json=body, headers=auth(tokens["scorer"])).json()
    record = client.get(f"/audit/{out['decision_id']}", headers=auth(tokens["auditor"])).json()
    replayed = client.post(f"/audit/{record['id']}/replay", headers=auth(tokens["auditor"])).json()
    assert replayed["equal"], json.dumps(replayed)
    assert replayed["abs_diff"] <= 1e-12 and replayed["features_equal"]


def test_given_a_damaged_stored_body_when_replayed_then_409_not_500(running, body):
    # Given a decision whose stored body was deleted by someone with file access
    client, tokens, audit_db = running
    out = client.post("/score", json=body, headers=auth(tokens["scorer"])).json()
    conn = sqlite3.connect(audit_db)
    conn.execute("DROP TRIGGER request_bodies_no_delete")
    conn.execute("DELETE FROM request_bodies")
    conn.commit()
    conn.close()
    # When an auditor reads and replays it, then the record reads without a request
    # and replay answers 409 naming the damage
    record = client.get(f"/audit/{out['decision_id']}", headers=auth(tokens["auditor"]))
    assert record.status_code == 200 and record.json()["request"] is None
    replayed = client.post(f"/audit/{record.json()['id']}/replay", headers=auth(tokens["auditor"]))
    assert replayed.status_code == 409 and replayed.json()["error"]["code"] == "replay_failed"
    assert "missing or altered" in replayed.json()["error"]["message"]


def test_given_admin_when_reloading_then_model_reloaded_and_bad_bundle_refused(running, tmp_path):
    client, tokens, _ = running
    headers = auth(tokens["admin"])
    ok = client.post("/admin/reload", json={}, headers=headers)
    assert ok.status_code == 200 and ok.json()["model_version"] == "test-1"
    refused = client.post("/admin/reload", json={"bundle": str(tmp_path / "none")}, headers=headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "bundle_refused"
    assert client.get("/readyz").status_code == 200


def test_given_overload_when_slots_exhausted_then_fast_503(service_client, body):
    with service_client(RISKGRADE_MAX_CONCURRENCY="1") as (client, tokens, _):
        import bentoml

        state = bentoml.get_current_service().state
        state.acquire()  # one request in flight
        try:
            response = client.post("/score", json=body, headers=auth(tokens["scorer"]))
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "overloaded"
            assert response.headers["retry-after"] == "1"
        finally:
            state.release()
        assert client.post("/score", json=body, headers=auth(tokens["scorer"])).status_code == 200


def test_given_concurrent_clients_when_scoring_then_chain_stays_valid(running, body):
    client, tokens, audit_db = running
    statuses: list[int] = []

    def worker() -> None:
        for _ in range(3):
            statuses.append(
                client.post("/score", json=body, headers=auth(tokens["scorer"])).status_code
            )

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert verify(audit_db, key=b"test-key").ok
