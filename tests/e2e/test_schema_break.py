"""Break the schema in Chromium, as a learner does it through the page only: a strict
NotificationService emails an order; adding `sku` makes the next order poison, which it sets aside
on the dead-letter topic; a tolerant reader and "Replay DLQ" then get that order emailed."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.harness.lab_page import add_consumer, open_lab, reset_lab

pytestmark = pytest.mark.e2e

# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 20_000


def expect_reading_everything(page: Page, name: str) -> Locator:
    card = page.locator(f'[data-consumer="{name}"]')
    expect(card).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
    expect(card).to_have_attribute("data-partitions", "0,1,2,3", timeout=JOIN_TIMEOUT_MS)
    return card


def create_order(page: Page) -> str:
    """One click on the pre-filled order form; the orderId Kafka acknowledged."""
    order_id = page.get_by_label("orderId", exact=True).input_value()
    page.get_by_role("button", name="Create order").click()
    # The panel is swapped in place (an earlier outcome may still show until then).
    expect(page.get_by_label("orderId", exact=True)).not_to_have_value(order_id)
    expect(page.get_by_test_id("produce-outcome")).to_contain_text("Kafka acknowledged it")
    return order_id


def emailed(page: Page, order_id: str) -> Locator:
    return page.locator(f'#outbox li[data-order-id="{order_id}"]')


def use_add_sku(page: Page) -> None:
    """The one-click "Add sku to items", its prediction read, then used (plain JSON: no registry)."""
    registry = page.locator("[data-panel=registry]")
    registry.locator("summary").first.click()
    registry.get_by_role("button", name="Add sku to items", exact=True).click()
    preview = registry.get_by_test_id("contract-preview")
    expect(preview.locator('tr[data-reader="strict"]')).to_have_attribute("data-reads", "false")
    expect(preview.locator('tr[data-reader="tolerant"]')).to_have_attribute("data-reads", "true")
    registry.get_by_role("button", name="Use this schema").click()
    expect(registry.get_by_test_id("contract-used")).to_be_visible()


def test_a_schema_change_poisons_a_strict_reader_and_a_replay_after_the_fix_emails_the_order(live_server_url, page):
    open_lab(page, live_server_url)
    try:
        strict = expect_reading_everything(page, add_consumer(page, reader="strict", failure_policy="dead-letter"))
        first = create_order(page)
        expect(emailed(page, first)).to_have_count(1, timeout=LIVE_TIMEOUT_MS)

        use_add_sku(page)
        poisoned = create_order(page)
        box = page.locator(f'.lane[data-lane] .event[data-key="{poisoned}"]')
        expect(box).to_have_attribute("data-poison", "contract", timeout=LIVE_TIMEOUT_MS)
        origin = f"P{box.get_attribute('data-partition')}@{box.get_attribute('data-offset')}"
        dead_letter = page.locator(f'.lane[data-dlq-lane] .event--dead-letter[data-origin="{origin}"]')
        expect(dead_letter).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        expect(strict.locator(".failures")).to_contain_text("1 dead-lettered")
        expect(emailed(page, poisoned)).to_have_count(0)

        # The fix: a reader that ignores the field it does not know.
        strict.get_by_role("button", name="Stop").click()
        expect(strict).to_have_attribute("data-status", "stopped", timeout=JOIN_TIMEOUT_MS)
        tolerant = add_consumer(page, reader="tolerant", failure_policy="dead-letter")
        expect_reading_everything(page, tolerant)

        page.get_by_role("button", name="Replay DLQ").click()
        expect(page.locator("#consumer-notice")).to_contain_text("Replayed 1 dead letter(s)")
        replayed = page.locator(f'.lane[data-lane] .event[data-key="{poisoned}"]:not([data-poison])')
        expect(replayed).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        # Emailed from the replayed record, not from the poison one read again.
        at = f"P{replayed.get_attribute('data-partition')}@{replayed.get_attribute('data-offset')}"
        email = emailed(page, poisoned)
        expect(email).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        expect(email).to_contain_text(f"{tolerant} emailed order {poisoned[:8]}")
        expect(email).to_contain_text(at)
    finally:
        reset_lab(page)  # its consumers must not outlive the test
