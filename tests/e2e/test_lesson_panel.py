"""A lesson beside the lab in Chromium: begin it, predict, let "Show me" point at the control,
act, and see the step pass live and explain itself in the lab's own numbers."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_lab_page import create_order
from tests.harness.lab_page import open_lab

pytestmark = pytest.mark.e2e

# A bound on waiting for Kafka and the runner, not an expectation of how long they take.
PASS_TIMEOUT_MS = 15_000


def step(page: Page, step_id: str):
    return page.locator(f'[data-step="{step_id}"]')


def test_a_step_passes_live_in_the_page_and_explains_itself(live_server_url, page: Page):
    open_lab(page, live_server_url)
    panel = page.locator("#lesson-panel")
    expect(panel.get_by_role("heading", name="Lesson 1: The log")).to_be_visible()
    expect(step(page, "write-an-event")).to_have_attribute("data-step-status", "pending")

    panel.get_by_role("button", name="Begin this lesson").click()
    expect(step(page, "write-an-event")).to_have_attribute("data-step-status", "current")

    # The prediction comes first; it is kept, and shown against what Kafka does.
    page.get_by_label("Offset 0").check()
    page.get_by_role("button", name="Lock in my prediction").click()
    expect(step(page, "write-an-event")).to_contain_text("You predicted: Offset 0")

    page.get_by_role("button", name="Show me").click()
    create = page.get_by_role("button", name="Create order")
    expect(create).to_be_focused()
    expect(create).to_have_class(re.compile(r"\bis-shown\b"))

    order_id, partition, offset = create_order(page)
    # No reload: the step passes over the websocket once the runner sees the record in Kafka.
    expect(step(page, "write-an-event")).to_have_attribute("data-step-status", "passed", timeout=PASS_TIMEOUT_MS)
    expect(step(page, "write-many")).to_have_attribute("data-step-status", "current")
    why = step(page, "write-an-event").locator(".step-why")
    expect(why).to_contain_text(f"offset {offset} of partition {partition}")
    expect(why).to_contain_text(order_id)
    expect(why).to_contain_text("You predicted that.")

    page.reload()  # progress is stored, not kept in the page
    expect(step(page, "write-an-event")).to_have_attribute("data-step-status", "passed")
    expect(page.locator("#lesson-panel .lesson-progress")).to_have_text("1 of 4 steps passed")


def test_the_catalog_lists_the_lessons_and_opens_one_beside_the_lab(live_server_url, page: Page):
    open_lab(page, live_server_url)
    page.goto(live_server_url + "/lessons/")
    expect(page.get_by_role("heading", name="Lessons", exact=True)).to_be_visible()
    page.get_by_role("link", name="1. The log").click()
    expect(page.locator("#lesson-panel[data-lesson=the-log]")).to_be_visible()
    expect(page.locator(".lane[data-lane]")).to_have_count(4)
