"""A classroom, checked by axe-core at each state (tests/e2e/accessibility.py): the instructor's
login, classroom list, dashboard (empty, then following a learner) and projector; the join pages
and their refusals (name taken, classroom full, a wrong code, too many wrong codes); a learner's
lab with the instructor's banner, the instructor's lab watched, and the learner's lab closed. And,
on this server with DEBUG off as a deployment runs, the app's own 404 and the lab limit's page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from kafkalab.kafka.local_cluster import LocalCluster
from tests.e2e.accessibility import JOIN_TIMEOUT_MS, LIVE_TIMEOUT_MS, Audit, accessibility_server
from tests.harness.browser import VIEWPORT
from tests.harness.lab_page import open_lab, reset_lab
from tests.integration.consumer_groups.classroom_support import STAFF_PASSWORD, create_staff

pytestmark = pytest.mark.e2e

# Wrong classroom codes an address may type before it is refused for a while.
JOIN_FAILURES = 3
# Labs of one's own an address may hold (classroom labs do not count): a second is refused.
LABS_PER_ADDRESS = 1


@pytest.fixture(scope="module")
def server_url(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("accessibility-classroom")
    limits = {"CLASSROOM_JOIN_FAILURES": str(JOIN_FAILURES), "LAB_MAX_LABS_PER_ADDRESS": str(LABS_PER_ADDRESS)}
    with accessibility_server(kafka_cluster, root, **limits) as server:
        create_staff(server, "teacher")
        yield server.url


def log_in(page: Page, server_url: str) -> None:
    page.goto(f"{server_url}/classrooms/")
    page.get_by_label("User name").fill("teacher")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Classrooms")).to_be_visible()


def test_a_classroom_in_every_state_has_no_violation(server_url, page: Page, browser):
    audit = Audit()
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


def test_the_error_and_limit_pages_have_no_violation(server_url, page: Page, browser):
    audit = Audit()
    page.goto(server_url + "/no/such/page/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    audit.check(page, "404")
    page.goto(server_url + "/lessons/the-log/")
    expect(page.get_by_text("Start a lab first")).to_be_visible()
    audit.check(page, "a lesson before any lab: the start page says why")
    open_lab(page, server_url)
    other = browser.new_context(viewport=VIEWPORT).new_page()
    try:
        other.goto(server_url + "/")
        other.get_by_role("button", name="Start my lab").click()
        expect(other.locator("[role=alert]")).to_contain_text("lab")
        audit.check(other, "limit: no more labs from this address")
    finally:
        other.context.close()
        reset_lab(page)
    audit.assert_clean()
