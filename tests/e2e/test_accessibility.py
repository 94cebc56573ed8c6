"""Every page and state a learner or an instructor can reach, checked by axe-core in Chromium: WCAG
2.1 A and AA and axe's best practices, with no violation allowed.

Each test walks one journey on a real lab (real Kafka, real NotificationService processes) and has
axe look at the page at each state worth seeing; a failure lists every violation of every state,
with the element it was found on. A page built later joins one of these walks (or a walk of its
own), so that nothing reaches a learner unchecked.

The server runs with DEBUG off, as a deployment does, so the error pages are the app's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from kafkalab.kafka.local_cluster import LocalCluster
from tests.e2e.test_lab_page import create_order
from tests.e2e.test_schema_break import expect_reading_everything, use_add_sku
from tests.harness.browser import VIEWPORT
from tests.harness.lab_page import add_consumer, open_lab, reset_lab
from tests.harness.server import Server
from tests.integration.consumer_groups.classroom_support import STAFF_PASSWORD, create_staff

pytestmark = pytest.mark.e2e

# WCAG 2.0 and 2.1, levels A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 20_000
# Each address may hold two labs: the third "Start my lab" shows the limit's page.
LABS_PER_ADDRESS = 2
# Wrong classroom codes an address may type before it is refused for a while.
JOIN_FAILURES = 3


@pytest.fixture(scope="module")
def server_url(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[str]:
    env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "accessibility-test-" + "k" * 40,
        "DJANGO_SECURE_COOKIES": "0",  # plain HTTP on loopback
        "LAB_MAX_LABS_PER_ADDRESS": str(LABS_PER_ADDRESS),
        "CLASSROOM_JOIN_FAILURES": str(JOIN_FAILURES),
    }
    with Server(tmp_path_factory.mktemp("accessibility"), kafka_cluster, **env) as server:
        create_staff(server, "teacher")
        yield server.url


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
        assert not self.found, f"{len(self.found)} axe-core violation(s):\n\n" + "\n\n".join(self.found)


def describe(state: str, url: str, violation: dict) -> str:
    lines = [f"[{state}] {url}\n  {violation['id']} ({violation['impact']}): {violation['help']}"]
    for node in violation["nodes"]:
        lines.append(f"  - {' '.join(map(str, node['target']))}: {node['html'][:200]}")
        summary = node.get("failureSummary") or ""
        lines.extend(f"      {line.strip()}" for line in summary.splitlines()[1:3])
    return "\n".join(lines)


@pytest.fixture
def audit() -> Audit:
    return Audit()


def open_every_fold(page: Page, within: str) -> None:
    """Unfold each closed <details> in `within`, as a curious learner would."""
    page.evaluate("(selector) => document.querySelectorAll(selector + ' details').forEach(d => d.open = true)", within)


# --- a learner's lab, from the start page to every lever ------------------------------------


def test_a_learners_lab_in_every_state_has_no_violation(server_url, page: Page, browser, audit: Audit):
    page.goto(server_url + "/")
    audit.check(page, "start page")
    open_lab(page, server_url)
    audit.check(page, "empty lab")
    lab_url = page.url
    try:
        page.get_by_role("button", name="Begin this lesson").click()
        expect(page.locator('[data-step-status="current"]')).to_have_count(1)
        audit.check(page, "a lesson begun: predict first")
        page.locator(".prediction input[type=radio]").first.check()
        page.get_by_role("button", name="Lock in my prediction").click()
        expect(page.get_by_text("You predicted:")).to_be_visible()
        create_order(page)
        create_order(page)
        audit.check(page, "lab with records, a prediction locked in")

        first = add_consumer(page, reader="strict", failure_policy="dead-letter")
        expect_reading_everything(page, first)
        second = add_consumer(page)
        expect(page.locator("#rebalances .rebalance")).not_to_have_count(0, timeout=JOIN_TIMEOUT_MS)
        expect(page.locator(f'[data-consumer="{second}"]')).not_to_have_attribute(
            "data-partitions", "", timeout=JOIN_TIMEOUT_MS
        )
        create_order(page)
        expect(page.locator("#outbox li")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "two consumers, a rebalance, emails")

        page.locator(".lane[data-lane] .event[data-offset]").first.click()
        expect(page.locator("#inspector")).to_contain_text("Why partition")
        audit.check(page, "inspector open")

        use_add_sku(page)
        create_order(page)
        expect(page.locator(".lane[data-lane] .event[data-poison]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        expect(page.locator(".lane[data-dlq-lane] .event--dead-letter")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        page.get_by_role("button", name="Start BillingService").click()
        expect(page.locator(".billing-card")).to_have_attribute("data-status", "running", timeout=JOIN_TIMEOUT_MS)
        open_every_fold(page, ".lab")
        audit.check(page, "a poison record dead-lettered, BillingService running, every panel unfolded")

        page.locator(f'[data-consumer="{second}"]').get_by_role("button", name="Kill").click()
        expect(page.locator(f'[data-consumer="{second}"]')).to_have_attribute(
            "data-status", "killed", timeout=JOIN_TIMEOUT_MS
        )
        page.get_by_role("button", name="Begin transaction").click()
        expect(page.locator("#txn-live")).to_have_attribute("data-txn-state", "open", timeout=LIVE_TIMEOUT_MS)
        create_order(page)
        expect(page.locator('.lane[data-lane] .event[data-txn="open"]')).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "a consumer killed, a transaction open")
        page.get_by_role("button", name="Abort").click()
        expect(page.locator('.lane[data-lane] [data-control="abort"]')).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "a transaction aborted")

        page.get_by_label("Encoding").select_option("avro")
        page.get_by_role("button", name="Switch encoding").click()
        registry = page.locator("[data-panel=registry]")
        expect(registry.locator("#contract-editor h3")).to_contain_text("Avro")
        open_every_fold(page, "#registry-panel")
        registry.locator('[data-control="change-rename-customer-id"]').click()
        expect(registry.get_by_test_id("contract-preview")).to_be_visible()
        audit.check(page, "the registry panel: what a breaking change would do")
        registry.get_by_role("button", name="Register and use").click()
        expect(registry.get_by_test_id("registry-refusal")).to_be_visible()
        audit.check(page, "the registry refusing a breaking change")

        page.get_by_label("Partitions", exact=True).fill("2")
        page.get_by_role("button", name="Change partitions").click()
        expect(page.locator("#topic-controls [role=alert]")).to_be_visible()
        page.get_by_label("quantity of item 1").fill("0")
        page.get_by_role("button", name="Create order").click()
        expect(page.locator("#order-panel .errorlist")).not_to_have_count(0)
        audit.check(page, "forms refused: fewer partitions, a bad order")

        box = page.locator(".lane[data-lane] .event[data-offset]").first
        page.goto(server_url + box.get_attribute("href"))
        audit.check(page, "a record on a page of its own")

        page.goto(lab_url)
        page.get_by_role("button", name="Share read-only").click()
        share_url = page.locator("[data-share-url]").get_attribute("data-share-url")
        observer = browser.new_context(viewport=VIEWPORT).new_page()
        try:
            observer.goto(share_url)
            expect(observer.locator(".lane[data-lane]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
            expect(observer.locator(".consumer-card")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
            audit.check(observer, "the observer's read-only view")
            observer.goto(lab_url)
            expect(observer.get_by_role("heading", name="This is not your lab")).to_be_visible()
            audit.check(observer, "403: another learner's lab")
        finally:
            observer.context.close()

        for path, state in [("/lessons/", "lesson catalog"), ("/cluster/", "cluster page"), ("/no/such/page/", "404")]:
            page.goto(server_url + path)
            audit.check(page, state)
        page.goto(server_url + "/lessons/offsets-and-commits/")
        expect(page.get_by_role("heading", name="Lesson 6: Offsets and commits")).to_be_visible()
        audit.check(page, "another lesson, in the lab")
    finally:
        page.goto(lab_url)
        reset_lab(page)

    # The address's second lab is its last: a third is refused with the limit's page.
    other = browser.new_context(viewport=VIEWPORT).new_page()
    try:
        other.goto(server_url + "/lessons/the-log/")
        expect(other.get_by_text("Start a lab first")).to_be_visible()
        audit.check(other, "a lesson before any lab: the start page says why")
        open_lab(other, server_url)
        third = browser.new_context(viewport=VIEWPORT).new_page()
        third.goto(server_url + "/")
        third.get_by_role("button", name="Start my lab").click()
        expect(third.locator("[role=alert]")).to_be_visible()
        audit.check(third, "limit: no more labs from this address")
        third.context.close()
    finally:
        other.context.close()
    audit.assert_clean()


# --- a classroom: the instructor's pages, a learner's, the limits --------------------------


def log_in(page: Page, server_url: str) -> None:
    page.goto(f"{server_url}/classrooms/")
    page.get_by_label("User name").fill("teacher")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Classrooms")).to_be_visible()


def test_a_classroom_in_every_state_has_no_violation(server_url, page: Page, browser, audit: Audit):
    page.goto(f"{server_url}/classrooms/")
    audit.check(page, "instructor login")
    log_in(page, server_url)
    audit.check(page, "classroom list, none yet")
    page.get_by_label("Name").fill("Accessible Kafka")
    page.get_by_label("Learners at most").fill("1")
    page.get_by_role("button", name="Create classroom").click()
    expect(page.get_by_role("heading", name="Accessible Kafka")).to_be_visible()
    code = page.locator("[data-join-code]").first.get_attribute("data-join-code")
    audit.check(page, "dashboard, nobody joined")
    dashboard_url = page.url

    learner = browser.new_context(viewport=VIEWPORT).new_page()
    latecomer = browser.new_context(viewport=VIEWPORT).new_page()
    try:
        learner.goto(f"{server_url}/join/")
        audit.check(learner, "join: type the code")
        learner.get_by_label("Classroom code").fill(code)
        learner.get_by_role("button", name="Continue").click()
        audit.check(learner, "join: your name")
        learner.get_by_label("Your name").fill("Ana")
        learner.get_by_role("button", name="Join").click()
        expect(learner).to_have_url(re.compile(r"/labs/\d+/$"), timeout=JOIN_TIMEOUT_MS)
        learner_lab = learner.url
        learner.get_by_role("button", name="Add consumer").click()

        row = page.locator("#roster tbody tr", has_text="Ana")
        expect(row).to_contain_text("1 running", timeout=JOIN_TIMEOUT_MS)
        page.get_by_label("Message to every learner").fill("Look at partition 2")
        page.get_by_role("button", name="Send to everyone").click()
        page.get_by_role("button", name="Create my lab").click()
        page.goto(dashboard_url)
        page.get_by_role("button", name="Follow me").click()
        expect(learner.locator(".classroom-banner")).to_contain_text("Look at partition 2")
        audit.check(learner, "learner's lab: strip, banner, follow link")
        page.goto(dashboard_url)
        expect(row).to_contain_text("1 running", timeout=LIVE_TIMEOUT_MS)
        audit.check(page, "dashboard with a learner, following")

        page.goto(dashboard_url + "projector/")
        audit.check(page, "projector")
        learner.goto(server_url + learner.locator(".classroom-strip a", has_text="Follow").get_attribute("href"))
        expect(learner.locator(".lane[data-lane]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        audit.check(learner, "watching the instructor's lab")
        learner.goto(learner_lab)

        latecomer.goto(f"{server_url}/join/{code}/")
        latecomer.get_by_label("Your name").fill("Ana")
        latecomer.get_by_role("button", name="Join").click()
        expect(latecomer.get_by_text("Someone joined as 'Ana' already")).to_be_visible()
        audit.check(latecomer, "join refused: name taken")
        latecomer.get_by_label("Your name").fill("Ben")
        latecomer.get_by_role("button", name="Join").click()
        expect(latecomer.get_by_text("This classroom is full")).to_be_visible()
        audit.check(latecomer, "join refused: classroom full")
        latecomer.goto(f"{server_url}/join/")
        latecomer.get_by_label("Classroom code").fill("ZZZ-ZZZ")
        latecomer.get_by_role("button", name="Continue").click()
        audit.check(latecomer, "join: a wrong code")
        for _ in range(JOIN_FAILURES):
            latecomer.goto(f"{server_url}/join/")
            latecomer.get_by_label("Classroom code").fill("ZZZ-ZZZ")
            latecomer.get_by_role("button", name="Continue").click()
        expect(latecomer.get_by_text("Too many wrong codes")).to_be_visible()
        audit.check(latecomer, "join refused: too many wrong codes")

        expect(learner.locator(".lane[data-lane]")).not_to_have_count(0, timeout=LIVE_TIMEOUT_MS)
        page.goto(dashboard_url)
        page.get_by_label("Yes: stop every lab of this classroom").check()
        page.get_by_role("button", name="Close classroom").click()
        expect(learner.locator("#lab-closed")).to_contain_text("closed this classroom", timeout=JOIN_TIMEOUT_MS)
        audit.check(learner, "the learner's lab, closed")
        audit.check(page, "classroom list, one closed")
    finally:
        learner.context.close()
        latecomer.context.close()
    audit.assert_clean()
