"""The read-only share link in Chromium: a second browser watches the owner's lab live, with
nothing to click but the boxes, and is told when the owner stops sharing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_lab_page import create_order, fact
from tests.harness.browser import VIEWPORT
from tests.harness.lab_page import INITIAL_PARTITIONS, LANES_TIMEOUT_MS, open_lab, reset_lab

pytestmark = pytest.mark.e2e

# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 15_000
SHARE_PATH = re.compile(r"/share/([^/]+)/$")

# Before the page's own scripts: keep the close code of every lab websocket the page sees closed.
RECORD_LAB_SOCKET_CLOSES = """
window.labSocketCloses = [];
document.addEventListener("htmx:wsClose", (e) => {
  if (e.detail.event.target.url.includes("/ws/labs/")) window.labSocketCloses.push(e.detail.event.code);
});
"""


def card(page: Page, name: str):
    return page.locator(f'[data-consumer="{name}"]')


def post_from_page(page: Page, path: str) -> tuple[int, str]:
    """A POST from the page's own session, with whatever CSRF header its htmx would send: (status, body)."""
    return page.evaluate(
        """async (path) => {
            const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
            const response = await fetch(path, {method: "POST", headers: {...headers, "HX-Request": "true"}});
            return [response.status, await response.text()];
        }""",
        path,
    )


def test_an_observer_watches_the_lab_live_with_no_control_until_sharing_stops(live_server_url, page, browser):
    topic = open_lab(page, live_server_url)
    lab_id = int(topic.removeprefix("lab-").removesuffix(".orders"))
    observer_context = browser.new_context(viewport=VIEWPORT)
    try:
        # The owner starts a consumer and shares the lab.
        page.get_by_role("button", name="Add consumer").click()
        expect(page.locator("#consumer-controls [role=status]")).to_contain_text("it joins the group")
        expect(card(page, "c1")).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        expect(card(page, "c1").get_by_role("button", name="Kill")).to_be_visible()
        page.get_by_role("button", name="Share read-only").click()
        link = page.locator("[data-share-url]")
        expect(link).to_be_visible()
        share_url = link.get_attribute("data-share-url")
        token = SHARE_PATH.search(share_url).group(1)
        expect(page.get_by_role("button", name="Stop sharing")).to_be_visible()

        # Another browser opens the link: the same lab, live, with no button and no form.
        observer = observer_context.new_page()
        observer.set_default_timeout(LIVE_TIMEOUT_MS)
        observer.add_init_script(RECORD_LAB_SOCKET_CLOSES)
        response = observer.goto(share_url)
        assert response.status == 200
        expect(observer.locator(".lane[data-lane]")).to_have_count(INITIAL_PARTITIONS, timeout=LANES_TIMEOUT_MS)
        expect(observer.locator(".lab-name")).to_contain_text("read-only")
        expect(card(observer, "c1")).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        all_partitions = ",".join(str(p) for p in range(INITIAL_PARTITIONS))
        expect(card(observer, "c1")).to_have_attribute("data-partitions", all_partitions, timeout=JOIN_TIMEOUT_MS)

        order_id, partition, offset = create_order(page)
        box = observer.locator(f'.lane[data-lane="{partition}"] .event[data-key="{order_id}"]')
        expect(box).to_have_attribute("data-offset", str(offset), timeout=LIVE_TIMEOUT_MS)
        expect(box).to_have_attribute("data-partition", str(partition))
        expect(box).to_have_attribute("href", f"/labs/{lab_id}/events/{partition}/{offset}/?share={token}")

        # Nothing acts on the lab: the one button is the page's own Large display switch.
        expect(observer.get_by_role("button")).to_have_count(1)
        expect(observer.get_by_role("button")).to_have_text("Large display")
        expect(observer.locator("form, input, select, textarea, [hx-post]")).to_have_count(0)
        expect(observer.locator("[data-share-url]")).to_have_count(0)
        # No CSRF token on a read-only page, and its session owns nothing: a hand-made POST is refused.
        assert observer.evaluate("() => document.body.getAttribute('hx-headers')") is None
        for action in ("orders/burst/", "share/revoke/"):
            status, body = post_from_page(observer, f"/labs/{lab_id}/{action}")
            assert status == 403, body[:300]

        # A click on a box opens the inspector for the observer too.
        with observer.expect_response(lambda r: f"/labs/{lab_id}/events/" in r.url) as inspected:
            box.click()
        assert inspected.value.status == 200
        inspector = observer.locator("#inspector")
        expect(fact(inspector, "Partition")).to_have_text(str(partition))
        expect(fact(inspector, "Offset")).to_have_text(str(offset))
        expect(inspector.get_by_text(order_id, exact=True).first).to_be_visible()
        # Nothing acts on the lab: the one button is the page's own Large display switch.
        expect(observer.get_by_role("button")).to_have_count(1)
        expect(observer.get_by_role("button")).to_have_text("Large display")
        observer.screenshot(path="/tmp/kafkalab-observer.png", full_page=True)

        # The owner stops sharing: the observer is told, its socket is closed, and the link is dead.
        page.get_by_role("button", name="Stop sharing").click()
        expect(page.locator("#share-panel [role=status]")).to_contain_text("Sharing stopped")
        expect(page.get_by_role("button", name="Share read-only")).to_be_visible()
        expect(page.locator("[data-share-url]")).to_have_count(0)
        expect(observer.locator("#lab-closed")).to_contain_text("stopped sharing", timeout=LIVE_TIMEOUT_MS)
        observer.wait_for_function("() => window.labSocketCloses.length > 0")
        assert observer.evaluate("() => window.labSocketCloses") == [4403]
        assert observer.reload().status == 404
        expect(observer.get_by_role("heading", name="Not found")).to_be_visible()
        expect(observer.locator(".lane")).to_have_count(0)
        page.screenshot(path="/tmp/kafkalab-owner-after-unshare.png", full_page=True)
    finally:
        observer_context.close()
        reset_lab(page)
