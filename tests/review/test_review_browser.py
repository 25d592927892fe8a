"""The review page in a real headless browser (Playwright driving Debian's chromium) against
the service's app served over HTTP in process (``asgi_serve``; real ``bentoml serve`` is
tested in tests/serving): sign in, search, open a decision, see its waterfall; a scorer
token is refused. Screenshots are kept under ``reports/review/`` (paths printed).

Needs ``apt-get install -y chromium`` (``/usr/bin/chromium``); skipped with a reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from rating.bundle import Bundle
from serving.auth import create_token
from serving.batch import request_example
from tests.serving.factory import AS_OF, asgi_serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("RISKGRADE_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = ROOT / "reports" / "review"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`",
    ),
]


@pytest.fixture
def served(tmp_path, trained: Bundle, raw):
    """The service on loopback with decisions of three customers (one explained)."""
    tokens_path = tmp_path / "tokens.json"
    tokens = {r: create_token(tokens_path, f"{r}-user", r) for r in ("scorer", "auditor")}
    with asgi_serve(trained.path, tokens_path, tmp_path) as base:
        scorer = {"Authorization": f"Bearer {tokens['scorer']}"}
        customers = list(raw.customers["customer_id"])[:3]
        for cid in customers:
            body = request_example(raw, cid, AS_OF)
            assert httpx.post(f"{base}/score", json=body, headers=scorer).status_code == 200
        explained = {**request_example(raw, customers[0], AS_OF), "chart": "none"}
        assert httpx.post(f"{base}/explain", json=explained, headers=scorer).status_code == 200
        yield base, tokens, customers


def test_given_the_review_page_when_an_auditor_reviews_a_decision_then_waterfall_shown(served):
    from playwright.sync_api import expect, sync_playwright

    base, tokens, customers = served
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="en-GB"
            )
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            # Anything but loopback would be an external resource: record and block it.
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith((base, "data:", "blob:"))
                    else (problems.append(f"external request {route.request.url}"), route.abort())
                ),
            )
            page.goto(f"{base}/review/")
            expect(page.locator("h1")).to_contain_text("Decision review")

            # Given a scorer token, when signing in, then access is refused (403).
            page.fill("#token", tokens["scorer"])
            page.click("#signin-button")
            expect(page.locator("#signin-error")).to_be_visible()
            expect(page.locator("#signin-error")).to_contain_text("403")
            expect(page.locator("#app")).to_be_hidden()
            problems.clear()  # the refused fetch logs a console error on purpose

            # Given an auditor token, when signing in, then the log and chain status show.
            page.fill("#token", tokens["auditor"])
            page.click("#signin-button")
            expect(page.locator("#app")).to_be_visible()
            expect(page.locator("#chain-status")).to_have_class("chain ok")
            expect(page.locator("#results tbody tr")).to_have_count(4)

            # When searching one customer, then only their decisions are listed.
            page.fill("#f-customer", customers[0])
            page.click("#search-button")
            rows = page.locator("#results tbody tr")
            expect(rows).to_have_count(2)
            expect(page.locator("#search-info")).to_contain_text("2 decisions found")

            # When opening the score decision, then its waterfall on the tier bands shows.
            page.locator("#results tbody tr:has(td[data-kind=score])").first.click()
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#d-id")).to_contain_text(customers[0])
            waterfall = page.locator("#d-waterfall")
            expect(waterfall).to_be_visible()
            assert waterfall.evaluate("img => img.complete && img.naturalWidth > 100")
            assert page.locator("#d-steps tbody tr").count() > 0
            expect(page.locator("#d-expl-note")).to_contain_text("matches the record")
            expect(page.locator("#d-record-check")).to_have_class("chain ok")
            expect(page.locator("#d-chain-check")).to_contain_text("intact")
            expect(page.locator("#report-link")).to_be_visible()
            assert page.locator("#d-features tbody tr").count() > 10
            # And factors read as their descriptions, the internal name kept in small text
            debt = page.locator(
                "#d-features tbody td.factor",
                has=page.locator(".factor-name", has_text=re.compile(r"^debt_ratio$")),
            )
            expect(debt).to_contain_text("Total liabilities / total assets")
            expect(debt).to_have_attribute("title", "debt_ratio")
            first_step = page.locator("#d-steps tbody td.factor").first
            expect(first_step.locator("span")).not_to_be_empty()

            # When exporting the decision, then a JSON file of that audit record downloads.
            with page.expect_download() as download_info:
                page.click("#export-one")
            exported = json.loads(Path(download_info.value.path()).read_text())
            assert exported["customer_id"] == customers[0] and exported["kind"] == "score"

            shot = ARTEFACTS / "review-page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nreview page screenshot: {shot}")

            # When switching to Chinese, then the page reads in Chinese.
            page.click("#lang-toggle")
            expect(page.locator("h1")).to_contain_text("决策审阅")
            expect(page.locator("#d-chain-check")).to_contain_text("审计链校验通过")
            expect(debt).to_contain_text("资产负债率")
            shot_zh = ARTEFACTS / "review-page-zh.png"
            page.screenshot(path=str(shot_zh), full_page=False)
            print(f"review page screenshot (zh): {shot_zh}")
        finally:
            browser.close()
    assert problems == []


def test_given_chromium_when_checked_then_the_apt_package_is_the_one_used():
    assert shutil.which(str(CHROMIUM)) is not None
