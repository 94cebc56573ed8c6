"""A lab's levers, checked by axe-core at each state (tests/e2e/accessibility.py): a schema change
poisoning a strict reader and its record dead-lettered, BillingService running, every panel
unfolded, a consumer killed, a transaction open and then aborted, the registry's preview of a
breaking change and its refusal, and forms refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.accessibility import JOIN_TIMEOUT_MS, LIVE_TIMEOUT_MS, Audit, open_every_fold
from tests.e2e.test_lab_page import create_order
from tests.e2e.test_schema_break import expect_reading_everything, use_add_sku
from tests.harness.lab_page import add_consumer, open_lab, reset_lab

pytestmark = pytest.mark.e2e


def test_every_lever_of_a_lab_has_no_violation(live_server_url, page: Page):
    audit = Audit()
    open_lab(page, live_server_url)
    try:
        strict = add_consumer(page, reader="strict", failure_policy="dead-letter")
        card = expect_reading_everything(page, strict)
        use_add_sku(page)
        create_order(page)
        expect(page.locator(".lane[data-lane] .event[data-poison]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        expect(page.locator(".lane[data-dlq-lane] .event--dead-letter")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        page.get_by_role("button", name="Start BillingService").click()
        expect(page.locator(".billing-card")).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        open_every_fold(page, ".lab")
        audit.check(page, "a poison record dead-lettered, BillingService running, every panel unfolded")

        card.get_by_role("button", name="Kill").click()
        expect(card).to_have_attribute("data-status", "killed", timeout=JOIN_TIMEOUT_MS)
        page.get_by_role("button", name="Begin transaction").click()
        expect(page.locator("#txn-live")).to_have_attribute("data-txn-state", "open", timeout=LIVE_TIMEOUT_MS)
        create_order(page)
        expect(page.locator('.lane[data-lane] .event[data-txn="open"]')).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "a consumer killed, a transaction open")
        page.get_by_role("button", name="Abort").click()
        expect(page.locator('.lane[data-lane] [data-control="abort"]')).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "a transaction aborted")

        page.get_by_label("Encoding").select_option("avro")
        page.get_by_role("button", name="Switch encoding").click()
        registry = page.locator("[data-panel=registry]")
        expect(registry.locator("#contract-editor h3")).to_contain_text("Avro")
        open_every_fold(page, "#registry-panel")
        registry.locator('[data-control="change-rename-customer-id"]').click()
        expect(registry.get_by_test_id("contract-preview")).to_be_visible()
        audit.check(page, "the registry panel: what a breaking change would do")
        registry.get_by_role("button", name="Register and use").click()
        expect(registry.get_by_test_id("registry-refusal")).to_be_visible()
        audit.check(page, "the registry refusing a breaking change")

        page.get_by_label("Partitions", exact=True).fill("2")
        page.get_by_role("button", name="Change partitions").click()
        expect(page.locator("#topic-controls [role=alert]")).to_be_visible()
        page.get_by_label("quantity of item 1").fill("0")
        page.get_by_role("button", name="Create order").click()
        expect(page.locator("#order-panel .errorlist")).not_to_have_count(0)
        audit.check(page, "forms refused: fewer partitions, a bad order")
    finally:
        reset_lab(page)
    audit.assert_clean()
