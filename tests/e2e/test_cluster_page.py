"""The cluster page follows the real brokers live."""

from __future__ import annotations

import os
import signal

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_cluster_page_shows_three_brokers_and_a_killed_one_goes_down(kafka_cluster, live_server_url, page):
    # "/" leads a learner to their lab; the brokers have their own page.
    page.goto(live_server_url + "/cluster/")
    brokers = page.locator("[data-broker-id]")
    expect(brokers).to_have_count(3)
    for node_id in (1, 2, 3):
        expect(page.locator(f'[data-broker-id="{node_id}"]')).to_have_attribute("data-state", "up")

    victim = next(b for b in kafka_cluster.status().brokers if b.node_id == 3)
    os.kill(victim.pid, signal.SIGKILL)
    try:
        expect(page.locator('[data-broker-id="3"]')).to_have_attribute("data-state", "down", timeout=10_000)
        expect(page.locator('[data-broker-id="1"]')).to_have_attribute("data-state", "up")
    finally:
        kafka_cluster.up(3)
    expect(page.locator('[data-broker-id="3"]')).to_have_attribute("data-state", "up", timeout=30_000)
