"""The review page's human judgement in a real headless browser against the service
served over HTTP (``asgi_serve``).

An analyst proposes an override through the API; on the page, an approver who proposed one
himself is refused his own (four eyes), another approver approves the analyst's, the rating
changes, and the auditor sees the chain of that decision: model grade, override with proposer,
approver and comments, final grade.

Needs ``apt-get install -y chromium`` (``/usr/bin/chromium``); skipped with a reason otherwise.
"""

from __future__ import annotations

import httpx
import pytest

from rating.bundle import Bundle
from rating.config import default_rating_config
from serving.auth import create_token
from serving.batch import request_example
from tests.review.test_review_browser import ARTEFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.serving.factory import AS_OF, asgi_serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`",
    ),
]
NAMES = default_rating_config().scale.names


def _other(grade: str) -> str:
    """A non-default grade one notch from ``grade``."""
    i = NAMES.index(grade)
    return NAMES[i + 1] if i + 2 < len(NAMES) else NAMES[i - 1]


@pytest.fixture
def served(tmp_path, trained: Bundle, raw):
    """The service with two scored customers, one override proposed by ann (analyst) and
    one by dan (approver)."""
    tokens_path = tmp_path / "tokens.json"
    people = {"scorer": "scorer", "auditor": "auditor", "ann": "analyst", "bob": "approver"}
    people["dan"] = "approver"
    tokens = {name: create_token(tokens_path, name, role) for name, role in people.items()}
    with asgi_serve(trained.path, tokens_path, tmp_path) as base:

        def call(method: str, path: str, who: str, body: object = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            return httpx.request(method, f"{base}{path}", json=body, headers=headers, timeout=30)

        customers = list(raw.customers["customer_id"])[:2]
        grades = {}
        for cid in customers:
            answer = call("POST", "/score", "scorer", request_example(raw, cid, AS_OF))
            assert answer.status_code == 200, answer.text
            grades[cid] = answer.json()["final_grade"]
        proposals = {}
        for who, cid in (("ann", customers[0]), ("dan", customers[1])):
            body = {
                "customer_id": cid,
                "as_of": AS_OF.isoformat(),
                "proposed_grade": _other(grades[cid]),
                "reason_code": "OR01",
                "comment": f"recent event not in the data ({who})",
            }
            made = call("POST", "/overrides", who, body)
            assert made.status_code == 201, made.text
            proposals[who] = made.json()
        yield base, tokens, customers, grades, proposals, call


def test_given_pending_overrides_when_approvers_decide_on_the_page_then_rating_changes(
    served,
):
    from playwright.sync_api import expect, sync_playwright

    base, tokens, customers, grades, proposals, call = served
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith((base, "data:", "blob:"))
                    else (problems.append(f"external request {route.request.url}"), route.abort())
                ),
            )
            page.goto(f"{base}/review/")
            # Given dan (approver) signed in: the queue shows both pending proposals, no log
            page.fill("#token", tokens["dan"])
            page.click("#signin-button")
            expect(page.locator("#queue")).to_be_visible()
            expect(page.locator("#app")).to_be_hidden()
            rows = page.locator("#queue-table tbody tr")
            expect(rows).to_have_count(2)
            # When dan approves his own proposal, then the page shows the four-eyes refusal
            own = page.locator(f"tr[data-override='{proposals['dan']['override_id']}']")
            own.locator("input.decision-comment").fill("looks right to me")
            own.locator("button.approve").click()
            expect(page.locator("#queue-error")).to_contain_text("four_eyes")
            expect(rows).to_have_count(2)
            page.click("#sign-out")

            # Given bob (approver) signed in, when he approves ann's proposal with a comment
            page.fill("#token", tokens["bob"])
            page.click("#signin-button")
            anns = page.locator(f"tr[data-override='{proposals['ann']['override_id']}']")
            expect(anns).to_contain_text("ann")
            anns.locator("button.approve").click()
            expect(page.locator("#queue-error")).to_contain_text("reason for your decision")
            anns.locator("input.decision-comment").fill("event confirmed by the bank")
            anns.locator("button.approve").click()
            # Then it leaves the queue, approved by bob
            expect(page.locator("#queue-message")).to_contain_text("approved by bob")
            expect(rows).to_have_count(1)
            page.screenshot(path=str(ARTEFACTS / "review-queue.png"), full_page=True)
            page.click("#sign-out")

            # And the customer's rating changed to the approved grade
            target = proposals["ann"]["proposed_grade"]
            rating = call("GET", f"/customers/{customers[0]}/rating?as_of={AS_OF}", "auditor")
            assert (rating.json()["model_grade"], rating.json()["final_grade"]) == (
                grades[customers[0]],
                target,
            )
            assert (
                call("GET", "/overrides?status=pending", "auditor").json()["overrides"][0][
                    "proposer"
                ]
                == "dan"
            )

            # And the auditor sees the decision's chain: model grade, override, final grade
            page.fill("#token", tokens["auditor"])
            page.click("#signin-button")
            page.fill("#f-customer", customers[0])
            page.click("#search-button")
            expect(page.locator("#results tbody tr")).to_have_count(1)
            page.locator("#results tbody tr").first.click()
            judgement = page.locator("#d-judgement")
            expect(judgement).to_contain_text(grades[customers[0]])
            expect(judgement).to_contain_text("proposed by ann")
            expect(judgement).to_contain_text("approved by bob")
            expect(judgement).to_contain_text("event confirmed by the bank")
            expect(page.locator("#d-final-grade")).to_have_text(target)
            page.screenshot(path=str(ARTEFACTS / "review-judgement.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
