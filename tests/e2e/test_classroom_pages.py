"""A classroom in Chromium, as an instructor and a learner live it: log in, create a classroom,
project its code; join with the code and a name; the dashboard's roster follows the learner's lab
live (no reload); a broadcast shows up on the learner's page; closing ends the learner's lab."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.browser import VIEWPORT
from tests.harness.server import Server
from tests.integration.consumer_groups.classroom_support import STAFF_PASSWORD, create_staff

pytestmark = pytest.mark.e2e

# Bounds on waiting for processes, Kafka and the page, not expectations of how long they take.
JOIN_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def server_url(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[str]:
    with Server(tmp_path_factory.mktemp("classroom-pages"), kafka_cluster) as server:
        create_staff(server, "teacher")
        yield server.url


def log_in(page: Page, server_url: str) -> None:
    page.goto(f"{server_url}/classrooms/")  # asks for the login first
    page.get_by_label("User name").fill("teacher")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Classrooms")).to_be_visible()


def test_an_instructor_runs_a_classroom_and_the_dashboard_follows_the_learner_live(server_url, page, browser):
    log_in(page, server_url)
    page.get_by_label("Name").fill("Kafka in practice")
    page.get_by_label("Learners at most").fill("10")
    page.get_by_role("button", name="Create classroom").click()
    expect(page.get_by_role("heading", name="Kafka in practice")).to_be_visible()
    code = page.locator("[data-join-code]").first.get_attribute("data-join-code")
    expect(page.locator("#roster")).to_contain_text("Nobody has joined yet")

    learner_context = browser.new_context(viewport=VIEWPORT)
    try:
        learner = learner_context.new_page()
        learner.set_default_timeout(LIVE_TIMEOUT_MS)
        learner.goto(f"{server_url}/join/")
        learner.get_by_label("Classroom code").fill(code.lower())
        learner.get_by_role("button", name="Continue").click()
        expect(learner.get_by_role("heading", name="Join “Kafka in practice”")).to_be_visible()
        learner.get_by_label("Your name").fill("Ana")
        learner.get_by_role("button", name="Join").click()
        expect(learner).to_have_url(re.compile(r"/labs/\d+/$"))
        expect(learner.locator(".classroom-strip")).to_contain_text("you joined as Ana")
        expect(learner.locator("[data-rejoin-code]")).to_have_text(re.compile(r"^[A-Z2-9]{8}$"))

        # The dashboard was open all along: Ana's row arrives over its socket, then her lab's health.
        row = page.locator("#roster tbody tr", has_text="Ana")
        expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        expect(row).to_contain_text("online", timeout=LIVE_TIMEOUT_MS)
        learner.get_by_role("button", name="Add consumer").click()
        expect(row).to_contain_text("1 running", timeout=JOIN_TIMEOUT_MS)

        # A broadcast reaches her page without a reload.
        page.get_by_label("Message to every learner").fill("Look at partition 2 now")
        page.get_by_role("button", name="Send to everyone").click()
        expect(learner.locator(".classroom-banner")).to_contain_text("Look at partition 2 now")

        # Sorted by lag (a header link): the page reloads sorted, and stays live.
        page.get_by_role("link", name="Lag").click()
        expect(page).to_have_url(re.compile(r"sort=lag"))
        expect(page.locator("#roster tbody tr", has_text="Ana")).to_contain_text("1 running", timeout=LIVE_TIMEOUT_MS)

        # The projector view: the code, large, and a QR code of the join URL.
        page.get_by_role("link", name="Projector view with QR code").click()
        expect(page.locator(".join-code--huge")).to_have_attribute("data-join-code", code)
        expect(page.get_by_role("img", name="QR code of the join address")).to_be_visible()
        page.go_back()

        # Closing ends the session: Ana's page says so.
        page.get_by_label("Yes: stop every lab of this classroom").check()
        page.get_by_role("button", name="Close classroom").click()
        expect(page.locator(".messages")).to_contain_text("is closed")
        expect(learner.locator("#lab-closed")).to_contain_text("closed this classroom", timeout=JOIN_TIMEOUT_MS)
    finally:
        learner_context.close()
