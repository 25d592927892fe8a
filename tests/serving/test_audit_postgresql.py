"""The service records its decisions in PostgreSQL when RISKGRADE_AUDIT_URL names one."""

from __future__ import annotations

from audit import AuditConfig, SqlAuditStore


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
