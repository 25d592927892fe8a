"""The customer page in a real headless browser against the service served over HTTP
(``asgi_serve``): an analyst proposes a suspension through the API, an approver confirms it
on the page, the status and policy change; the proposer's own confirmation on the page is
refused (four eyes). Screenshots go to ``reports/review/`` (paths printed).
"""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from rating.bundle import Bundle
from serving.auth import create_token
from serving.batch import request_example
from tests.review.test_review_browser import ARTEFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.serving.factory import AS_OF, asgi_serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent"),
]
WHY = "covenant breach confirmed at the site visit"


def test_given_a_pending_suspension_when_an_approver_confirms_on_the_page_then_applied(
    tmp_path, trained: Bundle, raw
):
    from playwright.sync_api import expect, sync_playwright

    tokens_path = tmp_path / "tokens.json"
    people = {"scorer": "scorer", "ann": "analyst", "bob": "approver"}
    tokens = {name: create_token(tokens_path, name, role) for name, role in people.items()}
    customer = str(raw.customers["customer_id"].iloc[0])
    with asgi_serve(trained.path, tokens_path, tmp_path) as base:
        # Given a rated customer and ann's proposal to suspend it (through the API)
        body = request_example(raw, customer, AS_OF)
        scorer = {"Authorization": f"Bearer {tokens['scorer']}"}
        assert httpx.post(f"{base}/score", json=body, headers=scorer).status_code == 200
        ann = {"Authorization": f"Bearer {tokens['ann']}"}
        proposed = httpx.post(
            f"{base}/customers/{customer}/status",
            json={"status": "suspended", "reason": WHY},
            headers=ann,
        )
        assert proposed.status_code == 201 and proposed.json()["status"] == "pending"
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        problems: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-GB")
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.route(
                    "**/*",
                    lambda route: (
                        route.continue_()
                        if route.request.url.startswith((base, "data:", "blob:"))
                        else (problems.append(route.request.url), route.abort())
                    ),
                )
                # When ann signs in and tries to approve her own proposal, then it is refused
                page.goto(f"{base}/review/customer?customer={customer}")
                page.fill("#token", tokens["ann"])
                page.click("#signin-button")
                expect(page.locator("#who")).to_contain_text("ann (analyst)")
                expect(page.locator("#pending")).to_be_visible()
                expect(page.locator("#status-badge")).to_have_text("normal")
                page.click("#approve-button")
                expect(page.locator("#decision-error")).to_contain_text("403")
                page.click("#sign-out")
                # When bob signs in and approves it on the page
                page.fill("#token", tokens["bob"])
                page.click("#signin-button")
                expect(page.locator("#who")).to_contain_text("bob (approver)")
                page.fill("#c-asof", date.today().isoformat())
                page.click("#open-button")
                expect(page.locator("#pending-text")).to_contain_text("ann")
                page.fill("#decision-comment", "agreed after the call with the CFO")
                page.click("#approve-button")
                # Then the customer is suspended, confirmed by bob, and no new credit is allowed
                expect(page.locator("#status-badge")).to_have_text("suspended")
                expect(page.locator("#status-since")).to_contain_text("bob")
                expect(page.locator("#pending")).to_be_hidden()
                expect(page.locator("#history tbody")).to_contain_text("status_change.approved")
                shot = ARTEFACTS / "customer-page.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"\ncustomer page screenshot: {shot}")
                # And the page reads in Chinese
                page.click("#lang-toggle")
                expect(page.locator("#status-badge")).to_have_text("暂停")
                page.screenshot(path=str(ARTEFACTS / "customer-page-zh.png"), full_page=False)
            finally:
                browser.close()
        status = httpx.get(f"{base}/customers/{customer}/status", headers=scorer).json()
        assert status["status"] == "suspended" and status["change"]["confirmed_by"] == "bob"
    assert problems == [], problems
