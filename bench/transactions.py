"""Section `transactions`: from a learner's Commit or Abort click to the marks on their screen.

On one cluster and daphne of the section's own, in Chromium, as a learner clicks: Begin
transaction, Create order (one order in the transaction), then Commit or Abort, in turns. The
page's own clock times the click (a capturing click listener) and the moment the COMMIT or ABORT
marker's element is added to the lane (a MutationObserver); for an abort, also the moment the
order's box is redrawn marked aborted. The marks come from Kafka: the observer's read_committed
reader has to pass the transaction's records and its marker before either shows.
"""

from __future__ import annotations

import re

from bench.report import Figure, percentile, progress
from bench.server import lab_stack
from tests.harness.browser import VIEWPORT, launch_chromium
from tests.harness.lab_page import open_lab

PORT_BASE = 64292
BROKERS = 3
ROUNDS = 12  # commits, and as many aborts
# Bounds on waiting, not expectations of speed.
MARK_TIMEOUT_MS = 30_000
ACKNOWLEDGED = re.compile(r"partition (\d+), offset (\d+)")

# Installed before any page script runs: when a Commit/Abort button was last clicked, and when
# each marker (by lane and offset) and each aborted box first appeared.
MARKS_OBSERVER_JS = """
window.__clicked = 0;
window.__markers = {};
window.__aborted = {};
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button");
  if (button && ["Commit", "Abort"].includes(button.textContent.trim())) window.__clicked = Date.now();
}, true);
new MutationObserver((mutations) => {
  const now = Date.now();
  for (const mutation of mutations) {
    for (const node of mutation.addedNodes) {
      if (node.nodeType !== 1) continue;
      const found = node.matches("[data-control][data-offset], .event[data-txn]") ? [node]
        : node.querySelectorAll("[data-control][data-offset], .event[data-txn]");
      for (const el of found) {
        const where = el.dataset.partition + "@" + el.dataset.offset;
        if (el.dataset.control && !(where in window.__markers)) window.__markers[where] = now;
        if (el.dataset.txn === "aborted" && !(where in window.__aborted)) window.__aborted[where] = now;
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


def run() -> list[Figure]:
    from playwright.sync_api import sync_playwright

    with lab_stack("transactions", port_base=PORT_BASE, brokers=BROKERS) as (_, server), sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(MARKS_OBSERVER_JS)
            open_lab(page, server.url)
            progress(f"{ROUNDS} commits and {ROUNDS} aborts of one order each, clicked in Chromium")
            commits, aborts, boxes = [], [], []
            for _ in range(ROUNDS):
                commits.append(_round(page, "Commit")[0])
                marker, box = _round(page, "Abort")
                aborts.append(marker)
                boxes.append(box)
        finally:
            browser.close()
    return [
        Figure("Commit click → COMMIT marker on screen, p50", percentile(commits, 50), "ms", digits=0),
        Figure(
            "Commit click → COMMIT marker on screen, p99", percentile(commits, 99), "ms", f"{ROUNDS} samples", digits=0
        ),
        Figure("Abort click → ABORT marker on screen, p50", percentile(aborts, 50), "ms", digits=0),
        Figure(
            "Abort click → ABORT marker on screen, p99", percentile(aborts, 99), "ms", f"{ROUNDS} samples", digits=0
        ),
        Figure(
            "Abort click → box marked aborted, p50",
            percentile(boxes, 50),
            "ms",
            f"p99 {percentile(boxes, 99):.0f} ms: the order's box redrawn in place",
            digits=0,
        ),
    ]


def _round(page, decide: str) -> tuple[float, float]:
    """Begin, one order, then `decide`; ms from the click to the marker, and to the aborted box."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Begin transaction").click()
    expect(page.locator("#txn-live")).to_have_attribute("data-txn-state", "open", timeout=MARK_TIMEOUT_MS)
    order_id = page.get_by_label("orderId", exact=True).input_value()
    page.get_by_role("button", name="Create order").click()
    expect(page.get_by_label("orderId", exact=True)).not_to_have_value(order_id, timeout=MARK_TIMEOUT_MS)
    partition, offset = ACKNOWLEDGED.search(page.get_by_test_id("produce-outcome").inner_text()).groups()
    marker = f"{partition}@{int(offset) + 1}"  # one order: its transaction's marker follows it
    page.get_by_role("button", name=decide, exact=True).click()
    page.wait_for_function("(where) => where in window.__markers", arg=marker, timeout=MARK_TIMEOUT_MS)
    clicked, shown = page.evaluate("(where) => [window.__clicked, window.__markers[where]]", marker)
    if decide != "Abort":
        return shown - clicked, 0.0
    box = f"{partition}@{offset}"
    page.wait_for_function("(where) => where in window.__aborted", arg=box, timeout=MARK_TIMEOUT_MS)
    return shown - clicked, page.evaluate("(where) => window.__aborted[where]", box) - clicked
