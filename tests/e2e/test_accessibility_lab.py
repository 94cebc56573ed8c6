"""A learner's way through kafkalab, checked by axe-core at each state (tests/e2e/accessibility.py):
the start page, a lab empty and then with a lesson, records, consumers, a rebalance, emails and the
inspector; a record's own page; the observer's read-only view; another learner's lab (403); the
lessons and the cluster. (The 404 and the limits' pages are checked with the classroom's, on a
server with DEBUG off.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.accessibility import JOIN_TIMEOUT_MS, LIVE_TIMEOUT_MS, Audit
from tests.e2e.test_lab_page import create_order
from tests.harness.browser import VIEWPORT
from tests.harness.lab_page import add_consumer, open_lab, reset_lab

pytestmark = pytest.mark.e2e


def test_a_learners_way_through_a_lab_has_no_violation(live_server_url, page: Page, browser):
    server_url = live_server_url
    audit = Audit()
    page.goto(server_url + "/")
    audit.check(page, "start page")
    open_lab(page, server_url)
    audit.check(page, "empty lab")
    lab_url = page.url
    try:
        page.get_by_role("button", name="Begin this lesson").click()
        expect(page.locator('[data-step-status="current"]')).to_have_count(1)
        audit.check(page, "a lesson begun: predict first")
        page.locator(".prediction input[type=radio]").first.check()
        page.get_by_role("button", name="Lock in my prediction").click()
        expect(page.get_by_text("You predicted:")).to_be_visible()
        create_order(page)
        create_order(page)
        audit.check(page, "lab with records, a prediction locked in")

        first = add_consumer(page)
        expect(page.locator(f'[data-consumer="{first}"]')).to_have_attribute(
            "data-partitions", "0,1,2,3", timeout=JOIN_TIMEOUT_MS
        )
        second = add_consumer(page)
        expect(page.locator(f'[data-consumer="{second}"]')).not_to_have_attribute(
            "data-partitions", "", timeout=JOIN_TIMEOUT_MS
        )
        expect(page.locator("#rebalances .rebalance")).not_to_have_count(0)
        create_order(page)
        expect(page.locator("#outbox li[data-order-id]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "two consumers, a rebalance, emails")

        page.locator(".lane[data-lane] .event[data-offset]").first.click()
        expect(page.locator("#inspector")).to_contain_text("Why partition")
        audit.check(page, "inspector open")

        box = page.locator(".lane[data-lane] .event[data-offset]").first
        page.goto(server_url + box.get_attribute("href"))
        audit.check(page, "a record on a page of its own")

        page.goto(lab_url)
        page.get_by_role("button", name="Share read-only").click()
        share_url = page.locator("[data-share-url]").get_attribute("data-share-url")
        observer = browser.new_context(viewport=VIEWPORT).new_page()
        try:
            observer.goto(share_url)
            expect(observer.locator(".lane[data-lane]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
            expect(observer.locator(".consumer-card")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
            audit.check(observer, "the observer's read-only view")
            observer.goto(lab_url)
            expect(observer.get_by_role("heading", name="This is not your lab")).to_be_visible()
            audit.check(observer, "403: another learner's lab")
        finally:
            observer.context.close()

        for path, state in [("/lessons/", "lesson catalog"), ("/cluster/", "cluster page")]:
            page.goto(server_url + path)
            audit.check(page, state)
        page.goto(server_url + "/lessons/offsets-and-commits/")
        expect(page.get_by_role("heading", name="Lesson 6: Offsets and commits")).to_be_visible()
        audit.check(page, "another lesson, in the lab")
    finally:
        page.goto(lab_url)
        reset_lab(page)

    audit.assert_clean()
