"""The consumer group in Chromium: real NotificationService processes join, share the partitions,
email a burst, the group heals after a kill only once the killed member's session times out, and a
graceful stop hands the partitions over at once."""

from __future__ import annotations

import re

import psutil
import pytest
from playwright.sync_api import Page, expect

from tests.harness.lab_page import INITIAL_PARTITIONS, open_lab, reset_lab

pytestmark = pytest.mark.e2e

SESSION_TIMEOUT_MS = 4000  # short, so the group notices a kill quickly
BURST = 200
# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
COMMIT_TIMEOUT_MS = 30_000
HEAL_TIMEOUT_MS = 45_000

PER_PARTITION = re.compile(r"P(\d+) (\d+)")


def add_consumer(page: Page) -> None:
    """Set the session timeout in "Consumer config", then one click on "Add consumer"."""
    controls = page.locator("#consumer-controls")
    controls.locator("summary", has_text="Consumer config").click()
    controls.get_by_label("session.timeout.ms").fill(str(SESSION_TIMEOUT_MS))
    controls.get_by_role("button", name="Add consumer").click()
    expect(page.locator("#consumer-controls [role=status]")).to_contain_text("it joins the group")


def card(page: Page, name: str):
    return page.locator(f'[data-consumer="{name}"]')


def expect_owner(page: Page, partition: int, owner: str | None) -> None:
    chip = page.locator(f"#lane-{partition}-meta .owner")
    expect(chip).to_have_text(owner or "—", timeout=JOIN_TIMEOUT_MS)


def expect_split(page: Page) -> None:
    """Range over c1 and c2 (c1 sorts first): c1 reads 0 and 1, c2 reads 2 and 3."""
    expect(card(page, "c1")).to_have_attribute("data-partitions", "0,1", timeout=JOIN_TIMEOUT_MS)
    expect(card(page, "c2")).to_have_attribute("data-partitions", "2,3", timeout=JOIN_TIMEOUT_MS)
    for partition, owner in ((0, "c1"), (1, "c1"), (2, "c2"), (3, "c2")):
        expect_owner(page, partition, owner)


def burst(page: Page, count: int) -> dict[int, int]:
    """Produce a burst from the page; returns how many records Kafka acknowledged per partition."""
    page.locator("#burst-count").fill(str(count))
    page.get_by_role("button", name="Burst").click()
    outcome = page.get_by_test_id("produce-outcome")
    expect(outcome).to_contain_text(f"Kafka acknowledged all {count} orders")
    return {int(p): int(n) for p, n in PER_PARTITION.findall(outcome.inner_text())}


def consumer_pids(page: Page) -> list[int]:
    return [int(pid) for pid in re.findall(r"pid (\d+)", page.locator(".consumer-cards").inner_text())]


def test_consumers_share_partitions_and_the_group_heals_after_a_kill(live_server_url, page):
    open_lab(page, live_server_url)
    expect(page.locator("#group-live")).to_contain_text("No NotificationService is running")
    pids: set[int] = set()
    try:
        # One consumer: it reads every partition.
        add_consumer(page)
        c1 = card(page, "c1")
        expect(c1).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        expect(c1).to_have_attribute("data-partitions", "0,1,2,3", timeout=JOIN_TIMEOUT_MS)
        expect(c1).to_contain_text(f"session {SESSION_TIMEOUT_MS} ms")
        for partition in range(INITIAL_PARTITIONS):
            expect_owner(page, partition, "c1")

        # A second one: Kafka rebalances and range splits the four partitions two and two.
        add_consumer(page)
        expect(card(page, "c2")).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        expect(card(page, "c2")).to_contain_text(f"session {SESSION_TIMEOUT_MS} ms")
        expect_split(page)
        expect(page.locator("#rebalances")).to_contain_text("c2 joined the group", timeout=JOIN_TIMEOUT_MS)
        pids.update(consumer_pids(page))
        assert len(pids) == 2

        # A burst: both consumers email their partitions' orders and auto-commit past them.
        acknowledged = burst(page, BURST)
        assert sum(acknowledged.values()) == BURST
        expect(page.locator("[data-sent]")).to_have_attribute("data-sent", str(BURST), timeout=COMMIT_TIMEOUT_MS)
        for partition in range(INITIAL_PARTITIONS):
            meta = page.locator(f"#lane-{partition}-meta")
            end = str(acknowledged.get(partition, 0))
            expect(meta).to_have_attribute("data-committed", end, timeout=COMMIT_TIMEOUT_MS)
            expect(meta).to_have_attribute("data-position", end)
        expect(page.locator("[data-duplicates]")).to_have_attribute("data-duplicates", "0")
        expect(page.locator("[data-missed]")).to_have_attribute("data-missed", "0")

        # Kill c1: it never says goodbye, so for a while its partitions have no reader...
        c1.get_by_role("button", name="Kill").click()
        expect(c1).to_have_attribute("data-status", "killed", timeout=JOIN_TIMEOUT_MS)
        expect(c1).to_have_attribute("data-partitions", "")
        expect(card(page, "c2")).to_have_attribute("data-partitions", "2,3")
        expect_owner(page, 0, None)
        expect_owner(page, 1, None)
        # ...until its session times out and the group gives them to the survivor.
        expect(card(page, "c2")).to_have_attribute("data-partitions", "0,1,2,3", timeout=HEAL_TIMEOUT_MS)
        for partition in range(INITIAL_PARTITIONS):
            expect_owner(page, partition, "c2")
        kill_entry = page.get_by_test_id("rebalance").filter(has_text="c1 was killed")
        expect(kill_entry).to_have_count(1, timeout=HEAL_TIMEOUT_MS)
        expect(kill_entry).to_contain_text(f"session timeout ({SESSION_TIMEOUT_MS / 1000:g} s from its last heartbeat)")
        expect(kill_entry).to_contain_text("took", timeout=HEAL_TIMEOUT_MS)
        expect(page.locator("[data-missed]")).to_have_attribute("data-missed", "0")

        # Restart c1: a new process rejoins and the partitions split again.
        c1.get_by_role("button", name="Restart").click()
        expect(c1).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        expect_split(page)
        pids.update(consumer_pids(page))
        assert len(pids) == 3, "the restart should be a new process"

        # Stop c2: it leaves the group, and one timeline entry shows who lost and who gained.
        card(page, "c2").get_by_role("button", name="Stop").click()
        expect(card(page, "c2")).to_have_attribute("data-status", "stopped", timeout=JOIN_TIMEOUT_MS)
        expect(c1).to_have_attribute("data-partitions", "0,1,2,3", timeout=JOIN_TIMEOUT_MS)
        stop_entry = page.get_by_test_id("rebalance").filter(has_text="c2 stopped and left the group")
        expect(stop_entry).to_contain_text("took", timeout=JOIN_TIMEOUT_MS)
        expect(stop_entry.locator("li", has_text="c2")).to_contain_text("revoked P2 P3")
        expect(stop_entry.locator("li", has_text="c1")).to_contain_text("assigned P0 P1 P2 P3")
        page.screenshot(path="/tmp/kafkalab-consumer-group.png", full_page=True)
    finally:
        reset_lab(page)
    assert not [pid for pid in pids if still_running(pid)], "a consumer process outlived the lab's reset"


def still_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
