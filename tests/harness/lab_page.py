"""The lab page in a real browser, as the browser tests and the benchmarks open it."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.harness.http_browser import LAB_URL, lab_id_in

INITIAL_PARTITIONS = 4
# A bound on waiting, not an expectation of speed: a lab's first lanes wait for its topic's
# metadata, which takes seconds while a broker of the shared cluster is down.
LANES_TIMEOUT_MS = 30_000
STARTING = re.compile(r"Starting (c\d+)…")


def open_lab(page: Page, base_url: str, *, timeout_ms: float = LANES_TIMEOUT_MS) -> str:
    """A fresh session's first visit: "Start my lab" on the start page (or, while / still does
    it, the redirect from /) leads to a lab of its own, drawn once its lanes show. Returns the
    lab's topic."""
    page.goto(base_url + "/")
    if lab_id_in(page.url) is None:
        page.get_by_role("button", name="Start my lab").click()
    expect(page).to_have_url(LAB_URL, timeout=timeout_ms)
    expect(page.locator(".lane[data-lane]")).to_have_count(INITIAL_PARTITIONS, timeout=timeout_ms)
    return f"lab-{lab_id_in(page.url)}.orders"


def add_consumer(page: Page, *, reader: str | None = None, failure_policy: str | None = None) -> str:
    """ "Add consumer", with this reader and failure policy picked in "Consumer config" (the rest as
    the form has them), until the page says the process is starting. Returns its name (c1, …)."""
    controls = page.locator("#consumer-controls")
    if reader or failure_policy:
        # The panel is redrawn after each add, with its config folded again.
        controls.locator("summary", has_text="Consumer config").click()
    if reader:
        controls.get_by_label("reader", exact=True).select_option(reader)
    if failure_policy:
        controls.get_by_label("when a record can't be read").select_option(failure_policy)
    # The answer replaces the panel: wait for that, as an earlier add's notice may still show.
    before = controls.element_handle()
    controls.get_by_role("button", name="Add consumer").click()
    before.wait_for_element_state("hidden")
    notice = page.locator("#consumer-controls [role=status]")
    expect(notice).to_contain_text("it joins the group")
    return STARTING.search(notice.inner_text()).group(1)


# A bound on a reset: it stops the lab's consumers, which may wait out a stop grace period.
RESET_TIMEOUT_MS = 30_000


def reset_lab(page: Page) -> None:
    """ "Reset lab", confirmed: the lab's consumers stopped, its topics and group made afresh."""
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset lab").click()
    expect(page.get_by_text("Lab reset")).to_be_visible(timeout=RESET_TIMEOUT_MS)
