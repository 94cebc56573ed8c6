"""Chromium as this loopback-only machine runs it, for the browser tests and the benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

# Debian's Chromium: Playwright's own browser download does not work everywhere.
CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium keeps dialling out to services this loopback-only machine can't reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Wide enough for four lanes and the consumer cards side by side.
VIEWPORT = {"width": 1400, "height": 900}


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
