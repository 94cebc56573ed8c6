"""The lab page in a real browser, as the browser tests and the benchmarks open it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.harness.http_browser import LAB_URL, lab_id_in

INITIAL_PARTITIONS = 4
# A bound on waiting, not an expectation of speed: a lab's first lanes wait for its topic's
# metadata, which takes seconds while a broker of the shared cluster is down.
LANES_TIMEOUT_MS = 30_000


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
