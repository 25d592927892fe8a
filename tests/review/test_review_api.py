"""The review API: auditor-only, search, one decision with its waterfall, export, report."""

from __future__ import annotations

import base64
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from rating.bundle import REPORT_FILE, load_bundle
from serving.review import CONTENT_SECURITY_POLICY, ReviewConfig
from tests.review.conftest import REPORT_HTML, start_review
from tests.serving.factory import AS_OF, make_bundle, shared_asgi_app


def test_given_no_token_when_opening_the_page_then_static_html_with_a_strict_csp(review):
    page = review.client.get("/review/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert 'src="static/review.js"' in page.text and "http" not in page.text.split("<body>")[1]
    script = review.client.get("/review/static/review.js")
    assert script.status_code == 200 and "Bearer" in script.text and "决策审阅" in script.text
    assert review.client.get("/review/static/review.css").status_code == 200
    missing = review.client.get("/review/static/../review.py")
    assert missing.status_code == 404


def test_given_the_page_when_reading_its_files_then_no_external_resource_is_loaded(review):
    for name in ("/review/", "/review/static/review.js", "/review/static/review.css"):
        text = review.client.get(name).text
        assert "https://" not in text and "http://" not in text, name
        assert "cdn" not in text.lower(), name


@pytest.mark.parametrize(
    "role,status,code",
    [(None, 401, "unauthorized"), ("scorer", 403, "forbidden"), ("admin", 403, "forbidden")],
)
def test_given_a_non_auditor_when_calling_the_api_then_refused(review, role, status, code):
    for path in (
        "/review/api/facets",
        "/review/api/decisions",
        "/review/api/decisions/1",
        "/review/api/chain",
        "/review/api/export",
    ):
        response = review.get(path, role=role)
        assert response.status_code == status, path
        assert response.json()["error"]["code"] == code
    if role is None:
        assert response.headers["www-authenticate"] == "Bearer"


def test_given_decisions_when_searching_then_filters_combine_newest_first(review):
    everything = review.get("/review/api/decisions").json()
    assert everything["total"] == len(review.customers) + 1
    ids = [r["id"] for r in everything["records"]]
    assert ids == sorted(ids, reverse=True)
    first = review.customers[0]
    by_customer = review.get("/review/api/decisions", customer_id=first).json()
    assert by_customer["total"] == 2 and {r["customer_id"] for r in by_customer["records"]} == {
        first
    }
    tier = everything["records"][0]["tier"]
    by_tier = review.get("/review/api/decisions", tier=tier).json()
    assert by_tier["total"] == sum(r["tier"] == tier for r in everything["records"])
    version = everything["records"][0]["model_version"]
    assert (
        review.get("/review/api/decisions", model_version=version).json()["total"]
        == everything["total"]
    )
    assert review.get("/review/api/decisions", model_version="other-9").json()["total"] == 0
    today = datetime.now(UTC).date()
    assert (
        review.get("/review/api/decisions", **{"from": str(today), "to": str(today)}).json()[
            "total"
        ]
        == everything["total"]
    )
    tomorrow = str(today + timedelta(days=1))
    assert review.get("/review/api/decisions", **{"from": tomorrow}).json()["total"] == 0
    page = review.get("/review/api/decisions", limit="2", offset="2").json()
    assert [r["id"] for r in page["records"]] == ids[2:4]


def test_given_a_rating_date_range_when_searching_then_decisions_rated_in_it(review):
    # Given decisions rated on the factory's as_of, recorded today
    rated = str(AS_OF)
    # When searched by rating date, then all of them; a range before it finds none
    everything = review.get("/review/api/decisions", rated_from=rated, rated_to=rated).json()
    assert everything["total"] == len(review.customers) + 1
    assert {r["as_of"] for r in everything["records"]} == {rated}
    before = review.get("/review/api/decisions", rated_to=str(AS_OF - timedelta(days=1))).json()
    assert before["total"] == 0
    document = review.get("/review/api/export", rated_from=rated).json()
    assert document["count"] == everything["total"] and document["filters"]["rated_from"] == rated
    # And an inverted range names the parameter
    bad = review.get("/review/api/decisions", rated_from=rated, rated_to="2000-01-01")
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["loc"] == "rated_from"


def test_given_bad_search_parameters_when_searching_then_422_names_the_parameter(review):
    bad_date = review.get("/review/api/decisions", **{"from": "yesterday"})
    assert bad_date.status_code == 422 and bad_date.json()["error"]["fields"][0]["loc"] == "from"
    inverted = review.get("/review/api/decisions", **{"from": "2024-02-01", "to": "2024-01-01"})
    assert inverted.status_code == 422 and "after" in inverted.json()["error"]["message"]
    too_many = review.get("/review/api/decisions", limit="100000")
    assert too_many.status_code == 422 and too_many.json()["error"]["fields"][0]["loc"] == "limit"
    unknown = review.get("/review/api/decisions", colour="red")
    assert unknown.status_code == 422 and unknown.json()["error"]["fields"][0]["loc"] == "colour"
    # Numbers are not dates (lax parsing would read them as epoch seconds)
    for name in ("from", "to", "rated_from", "rated_to"):
        number = review.get("/review/api/decisions", **{name: "0.5" if name[0] != "r" else "0"})
        assert number.status_code == 422 and number.json()["error"]["fields"][0]["loc"] == name
    timed = review.get("/review/api/decisions", **{"from": "2024-01-01T08:00:00Z"})
    assert timed.status_code == 200


def test_given_facets_when_signed_in_then_tiers_versions_and_loaded_model(review):
    facets = review.get("/review/api/facets").json()
    assert facets["records"] == len(review.customers) + 1
    assert facets["model_versions"] == ["test-1"] and facets["loaded_model"] == "test-1"
    assert set(facets["tiers"]) <= {"low", "medium", "high", "restricted"} and facets["tiers"]


def test_given_a_score_decision_when_opened_then_recomputed_waterfall_matches_the_record(review):
    record_id = review.get("/review/api/decisions").json()["records"][0]["id"]
    detail = review.get(f"/review/api/decisions/{record_id}").json()
    explanation = detail["explanation"]
    assert explanation["available"] and explanation["source"] == "recomputed"
    assert explanation["matches_record"] is True
    assert explanation["pd"] == pytest.approx(detail["record"]["pd"], rel=1e-9)
    svg = base64.b64decode(explanation["svg_base64"])
    assert b"<svg" in svg[:2000]
    assert [b["tier"] for b in explanation["tier_bands"]] == ["low", "medium", "high", "restricted"]
    contributions = [f["contribution"] for f in detail["features"]]
    assert all(c is not None for c in contributions)
    industry = next(f for f in detail["features"] if f["name"] == "industry")
    assert industry["label"] == detail["inputs"]["customer"]["industry"]
    assert sum(contributions) + explanation["base_log_odds"] == pytest.approx(
        explanation["log_odds"], abs=1e-9
    )
    assert detail["record_check"] == {"ok": True, "hash_ok": True, "link_ok": True, "problem": None}
    assert detail["inputs"]["customer"]["customer_id"] == detail["record"]["customer_id"]
    for reason in detail["reasons"]:
        assert reason["text_en"] and reason["text_zh"]
    assert detail["model"]["loaded"] and detail["model"]["version"] == "test-1"
    assert detail["model"]["report"] == {
        "available": True,
        "url": f"api/report/{detail['record']['bundle_hash']}",
        "external": False,
    }


def test_given_a_decision_when_opened_then_each_factor_has_its_english_and_chinese_text(review):
    # Given a decision, when opened
    detail = review.get("/review/api/decisions/2").json()
    factors = detail["factors"]
    # Then every feature and every waterfall step has the spec's descriptions
    assert factors["debt_ratio"] == {"en": "Total liabilities / total assets", "zh": "资产负债率"}
    assert factors["ocf_to_liabilities"]["zh"] == "经营现金流负债比（年化）"
    steps = detail["explanation"]["steps"]
    assert steps and all(s["feature"] in factors for s in steps)
    assert {f["name"] for f in detail["features"]} <= set(factors)


def test_given_an_explain_decision_when_opened_then_the_stored_explanation_is_shown(review):
    detail = review.get("/review/api/decisions/1").json()
    assert detail["record"]["kind"] == "explain"
    assert detail["explanation"]["source"] == "stored" and detail["explanation"]["matches_record"]
    by_decision_id = review.get(f"/review/api/decisions/{detail['record']['decision_id']}").json()
    assert by_decision_id["record"]["id"] == 1


def test_given_an_unknown_or_bad_id_when_opened_then_404_or_422(review):
    assert review.get("/review/api/decisions/999").status_code == 404
    assert review.get(f"/review/api/decisions/{'x' * 65}").status_code == 422


@pytest.mark.parametrize(
    "record_id",
    ["%C2%B2", "%D9%A3", "9" * 30, "0"],
    ids=["superscript-two", "arabic-three", "beyond-int64", "zero"],
)
def test_given_a_unicode_digit_id_when_opened_or_exported_then_404_not_500(review, record_id):
    # Given a record id that str.isdigit() accepts but int() refuses (or out of range)
    # When the decision is opened or exported
    opened = review.client.get(
        f"/review/api/decisions/{record_id}",
        headers={"Authorization": f"Bearer {review.tokens['auditor']}"},
    )
    exported = review.client.get(
        f"/review/api/export?id={record_id}",
        headers={"Authorization": f"Bearer {review.tokens['auditor']}"},
    )
    # Then not found, in the error schema
    for response in (opened, exported):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_given_the_loaded_bundle_when_asking_for_its_report_then_the_training_report(
    review, trained
):
    response = review.get(f"/review/api/report/{trained.bundle_hash}")
    assert response.status_code == 200 and response.text == REPORT_HTML
    assert review.get(f"/review/api/report/{'0' * 64}").status_code == 404
    assert review.get(f"/review/api/report/{trained.bundle_hash}", role="scorer").status_code == 403


def test_given_one_decision_when_exported_then_attachment_equals_the_audit_record(review):
    response = review.get("/review/api/export", id="3")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="decision-3.json"'
    exported = response.json()
    assert exported == review.state.audit.show(3).to_dict()


def test_given_a_date_range_when_exported_then_every_matching_record_oldest_first(review):
    today = str(datetime.now(UTC).date())
    document = review.get("/review/api/export", **{"from": today, "to": today}).json()
    assert document["count"] == len(review.customers) + 1
    assert [r["id"] for r in document["records"]] == list(range(1, document["count"] + 1))
    assert document["filters"]["from"] == today
    chained = [r["prev_hash"] for r in document["records"][1:]] == [
        r["hash"] for r in document["records"][:-1]
    ]
    assert chained
    one = review.get("/review/api/export", customer_id=review.customers[1]).json()
    assert one["count"] == 1


def test_given_an_export_above_the_cap_when_exported_then_422_asks_to_narrow(
    tmp_path, trained, raw
):
    capped = start_review(tmp_path, trained, raw, ReviewConfig(max_export=3))
    with capped.client:
        response = capped.get("/review/api/export")
    assert response.status_code == 422 and "narrow" in response.json()["error"]["message"]


def test_given_an_edited_record_when_reviewed_then_record_and_chain_checks_fail(review):
    db = review.state.audit.path
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER decisions_no_update")
        conn.execute("UPDATE decisions SET pd = 0.0001 WHERE id = 2")
    detail = review.get("/review/api/decisions/2").json()
    assert detail["record_check"]["ok"] is False and "hash" in detail["record_check"]["problem"]
    chain = review.get("/review/api/chain").json()
    assert chain["ok"] is False and chain["first_bad_id"] == 2
    assert review.get("/review/api/decisions/3").json()["record_check"]["ok"] is True


def test_given_a_decision_of_another_bundle_when_opened_then_waterfall_and_report_say_why(
    review, tmp_path
):
    other = make_bundle(tmp_path / "other" / "bundle", seed=5, n_customers=200)
    review.state.load_model(other.path, None)
    detail = review.get("/review/api/decisions/2").json()
    assert detail["explanation"]["available"] is False and "bundle" in detail["explanation"]["why"]
    assert detail["model"]["loaded"] is False and detail["model"]["report"]["available"] is False
    assert all(f["contribution"] is None for f in detail["features"])
    stored = review.get("/review/api/decisions/1").json()
    assert stored["explanation"]["source"] == "stored"


def test_given_a_bundle_without_report_when_opened_then_report_not_available(tmp_path, raw):
    bare = make_bundle(tmp_path / "models" / "champion", seed=3, n_customers=200)
    started = start_review(tmp_path, bare, raw)
    with started.client:
        detail = started.get("/review/api/decisions/2").json()
    assert detail["model"]["report"]["available"] is False
    assert detail["model"]["report"]["why"] == "no validation report in this bundle"
    missing = started.get(f"/review/api/report/{bare.bundle_hash}")
    assert missing.status_code == 404 and "no validation report" in missing.text


def test_given_a_bundle_in_a_folder_of_its_own_when_reviewed_then_its_report_is_shown(
    tmp_path, trained, raw
):
    # Given the trained bundle copied alone to a folder outside data/bundles (no report beside it)
    folder = tmp_path / "somewhere" / "model-under-review"
    shutil.copytree(trained.path, folder)
    started = start_review(tmp_path, load_bundle(folder), raw)
    with started.client:
        # When a decision is opened, then the report link is there and serves the report
        report = started.get("/review/api/decisions/2").json()["model"]["report"]
        assert report == {
            "available": True,
            "url": f"api/report/{trained.bundle_hash}",
            "external": False,
        }
        assert started.get("/review/" + report["url"]).text == REPORT_HTML
        # And a report edited after the bundle was loaded is refused, not served
        (folder / REPORT_FILE).write_text("<p>forged</p>")
        edited = started.get("/review/" + report["url"])
    assert edited.status_code == 409 and REPORT_FILE in edited.json()["error"]["message"]
    started.state.audit.close()


def test_given_the_service_app_when_mounted_then_review_routes_answer(tmp_path, trained, raw):
    from starlette.testclient import TestClient

    from serving.auth import create_token

    tokens_path = tmp_path / "tokens.json"
    auditor = create_token(tokens_path, "aud", "auditor")
    scorer = create_token(tokens_path, "sc", "scorer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RISKGRADE_BUNDLE", str(trained.path))
        mp.setenv("RISKGRADE_AUDIT_DB", str(tmp_path / "audit.db"))
        mp.setenv("RISKGRADE_TOKENS", str(tokens_path))
        with TestClient(shared_asgi_app(), raise_server_exceptions=False) as client:
            assert client.get("/review/").status_code == 200
            ok = client.get("/review/api/facets", headers={"Authorization": f"Bearer {auditor}"})
            assert ok.status_code == 200 and ok.json()["records"] == 0
            refused = client.get(
                "/review/api/facets", headers={"Authorization": f"Bearer {scorer}"}
            )
            assert refused.status_code == 403


def test_given_an_assessment_when_a_decision_is_reviewed_then_its_chain_is_shown(review):
    # Given an analyst's assessment of the first customer at the decisions' rating date
    from datetime import UTC, datetime

    from management import Actor
    from management.judgement import AssessmentInput, RatingRules, record_assessment
    from tests.serving.factory import AS_OF

    state = review.state
    rules = RatingRules(state.engine.model.scale, state.engine.model.policy, state.judgement)
    answers = {f.code: f.answers[0].code for f in state.judgement.qualitative.factors}
    cid = review.customers[0]
    recorded = record_assessment(
        state.audit,
        rules,
        Actor(name="ann", role="analyst"),
        AssessmentInput(cid, AS_OF, answers, "strong on every count"),
        at=datetime.now(UTC),
    )
    record = next(
        r for r in review.get("/review/api/decisions").json()["records"] if r["customer_id"] == cid
    )
    # When the auditor opens its decision
    detail = review.get(f"/review/api/decisions/{record['id']}").json()
    # Then the rating chain shows the model grade, the answers, who assessed, the final grade
    judgement = detail["judgement"]
    assert judgement["model_grade"] == record["grade"]
    assert judgement["assessment"]["answers"] == answers
    assert judgement["assessment"]["analyst"] == "ann"
    assert judgement["assessment_id"] == recorded.assessment.assessment_id
    names = rules.scale.names
    moved = names.index(judgement["model_grade"]) - names.index(judgement["final_grade"])
    assert moved == judgement["qualitative_notches"] > 0 or judgement["model_grade"] in ("1", "D")
    assert judgement["override"] is None
