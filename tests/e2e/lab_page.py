"""What the browser tests share about the lab page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

INITIAL_PARTITIONS = 4
LAB_URL = re.compile(r"/labs/(\d+)/$")
# A bound on waiting, not an expectation of speed: a lab's first lanes wait for its topic's
# metadata, which takes seconds while a broker of the shared cluster is down.
LANES_TIMEOUT_MS = 30_000


def open_lab(page: Page, base_url: str) -> str:
    """A fresh session's first visit: redirected to its own lab. Returns the lab's topic."""
    page.goto(base_url + "/")
    expect(page).to_have_url(LAB_URL)
    expect(page.locator(".lane[data-lane]")).to_have_count(INITIAL_PARTITIONS, timeout=LANES_TIMEOUT_MS)
    return f"lab-{LAB_URL.search(page.url).group(1)}.orders"
