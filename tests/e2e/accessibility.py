"""axe-core in Chromium for the accessibility walks (tests/e2e/test_accessibility_*.py): WCAG 2.1
A and AA and axe's best practices, with no violation allowed.

Each walk goes through one journey on a real lab (real Kafka, real NotificationService processes)
and has axe look at the page at each state worth seeing; a failure lists every violation of every
state, with the element it was found on. A page built later joins one of the walks (or a walk of
its own), so that nothing reaches a learner unchecked. The walks are modules of their own so that
the suite's workers run them side by side.

Their server runs with DEBUG off, as a deployment does, so the error pages are the app's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.server import Server

# WCAG 2.0 and 2.1, levels A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 20_000


@contextlib.contextmanager
def accessibility_server(cluster: LocalCluster, root: Path, **env: str) -> Iterator[Server]:
    """kafkalab as a deployment serves it (DEBUG off), on loopback."""
    production = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "accessibility-test-" + "k" * 40,
        "DJANGO_SECURE_COOKIES": "0",  # plain HTTP on loopback
    }
    with Server(root, cluster, **production, **env) as server:
        yield server


class Audit:
    """axe-core run on a page at each state a walk reaches; every violation kept, by state."""

    def __init__(self) -> None:
        self.axe = Axe()
        self.states: list[str] = []
        self.found: list[str] = []

    def check(self, page: Page, state: str) -> None:
        self.states.append(state)
        for violation in self.axe.run(page, options=AXE_OPTIONS).response["violations"]:
            self.found.append(describe(state, page.url, violation))

    def assert_clean(self) -> None:
        assert self.states, "axe looked at nothing"
        assert not self.found, f"{len(self.found)} axe-core violation(s):\n\n" + "\n\n".join(self.found)


def describe(state: str, url: str, violation: dict) -> str:
    lines = [f"[{state}] {url}\n  {violation['id']} ({violation['impact']}): {violation['help']}"]
    for node in violation["nodes"]:
        lines.append(f"  - {' '.join(map(str, node['target']))}: {node['html'][:200]}")
        summary = node.get("failureSummary") or ""
        lines.extend(f"      {line.strip()}" for line in summary.splitlines()[1:3])
    return "\n".join(lines)


def open_every_fold(page: Page, within: str) -> None:
    """Unfold each closed <details> in `within`, as a curious learner would."""
    page.evaluate("(selector) => document.querySelectorAll(selector + ' details').forEach(d => d.open = true)", within)
