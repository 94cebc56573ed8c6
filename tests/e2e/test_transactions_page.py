"""Transactions in Chromium, as a learner clicks them: commit, abort, then leave one open. The lanes
mark what Kafka holds (open and aborted records, the COMMIT and ABORT markers, the LSO) and a
read_committed NotificationService emails only the committed order."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.harness.lab_page import add_consumer, open_lab, reset_lab

pytestmark = pytest.mark.e2e

# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 20_000
ACKNOWLEDGED = re.compile(r"partition (\d+), offset (\d+)")


def begin(page: Page) -> None:
    page.get_by_role("button", name="Begin transaction").click()
    expect(page.locator("#txn-live")).to_have_attribute("data-txn-state", "open", timeout=LIVE_TIMEOUT_MS)


def order_in_transaction(page: Page) -> Locator:
    """One click on "Create order" while a transaction is open; the order's box in its lane."""
    order_id = page.get_by_label("orderId", exact=True).input_value()
    page.get_by_role("button", name="Create order").click()
    expect(page.get_by_label("orderId", exact=True)).not_to_have_value(order_id)
    outcome = page.get_by_test_id("produce-outcome")
    expect(outcome.get_by_test_id("produce-in-transaction")).to_be_visible()
    partition, offset = ACKNOWLEDGED.search(outcome.inner_text()).groups()
    box = page.locator(f'#lane-{partition}-events .event[data-offset="{offset}"]')
    expect(box).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    return box


def marker_after(page: Page, box: Locator, control: str) -> Locator:
    partition = box.get_attribute("data-partition")
    return page.locator(f'#lane-{partition}-events [data-control="{control}"]')


def test_commit_then_abort_then_leave_open(live_server_url: str, page: Page):
    open_lab(page, live_server_url)
    name = add_consumer(page)  # read_committed: librdkafka's default
    card = page.locator(f'[data-consumer="{name}"]')
    expect(card).to_have_attribute("data-partitions", "0,1,2,3", timeout=JOIN_TIMEOUT_MS)
    expect(card).to_contain_text("read_committed")

    # Commit: open while undecided, then a plain record with a COMMIT marker after it, emailed.
    begin(page)
    committed = order_in_transaction(page)
    expect(committed).to_have_attribute("data-txn", "open", timeout=LIVE_TIMEOUT_MS)
    lane = page.locator(f'.lane[data-lane="{committed.get_attribute("data-partition")}"]')
    expect(lane).to_have_attribute("data-lso", committed.get_attribute("data-offset"), timeout=LIVE_TIMEOUT_MS)
    page.get_by_role("button", name="Commit", exact=True).click()
    expect(marker_after(page, committed, "commit")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(committed).not_to_have_attribute("data-txn", "open", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#outbox li[data-order-id]")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)

    # Abort: the record stays in the log, marked aborted, with an ABORT marker; nobody emails it.
    begin(page)
    aborted = order_in_transaction(page)
    page.get_by_role("button", name="Abort", exact=True).click()
    expect(aborted).to_have_attribute("data-txn", "aborted", timeout=LIVE_TIMEOUT_MS)
    expect(marker_after(page, aborted, "abort")).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    lane = page.locator(f'.lane[data-lane="{aborted.get_attribute("data-partition")}"]').element_handle()
    page.wait_for_function(
        "lane => lane.dataset.lso !== '' && lane.dataset.lso === lane.dataset.logEnd", arg=lane, timeout=LIVE_TIMEOUT_MS
    )  # decided: the LSO is back at the log end

    # Leave open: the panel counts down to the broker's own abort; the consumer waits at the LSO.
    begin(page)
    waiting = order_in_transaction(page)
    page.get_by_role("button", name="Leave open").click()
    expect(page.locator("[data-txn-countdown]")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(waiting).to_have_attribute("data-txn", "open", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#outbox li[data-order-id]")).to_have_count(1)

    reset_lab(page)  # aborts the open transaction and stops the consumer
