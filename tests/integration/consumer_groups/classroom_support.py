"""Driving a classroom as its instructor and learners do, on a real server: the instructor logs in
and works the dashboard; learners join with the code; the dashboard's socket is read as the page
reads it (its roster rows)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kafkalab.settings import BASE_DIR
from tests.harness.http_browser import Browser, Response, lab_id_in
from tests.harness.server import Server
from tests.harness.websocket import Websocket
from tests.integration.consumer_groups.support import WAIT, Lab

T = TypeVar("T")

STAFF_PASSWORD = "a-classroom-test-password"
JOIN_CODE = re.compile(r'data-join-code="([A-Z0-9]+)"')
DASHBOARD_URL = re.compile(r"/classrooms/(\d+)/$")
ROW = re.compile(r'<tr data-learner="(\d+)" data-lab="(\d+)"[^>]*>(.*?)</tr>', re.S)
TAG = re.compile(r"<[^>]+>")


def create_staff(server: Server, username: str) -> None:
    """An instructor account, made the documented way (createsuperuser, without prompts)."""
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD}
    command = [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username]
    subprocess.run([*command, "--email", f"{username}@example.org"], cwd=BASE_DIR, env=env, check=True, timeout=120)


class Instructor:
    def __init__(self, server: Server, username: str) -> None:
        self.browser = Browser(server.url)
        page = self.browser.get("/instructor/login/")
        assert page.status == 200, page.text[:500]
        token = self.browser.cookie("csrftoken")
        form = {"username": username, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": token}
        response = self.browser.post("/instructor/login/", form, htmx=False)
        assert response.url.endswith("/classrooms/"), f"login led to {response.url}: {response.text[:500]}"

    def create_classroom(self, name: str, *, learners: int = 30, consumers: int = 4) -> Classroom:
        form = {"name": name, "max_learners": learners, "max_consumers_per_lab": consumers}
        response = self.post("/classrooms/", form)
        match = DASHBOARD_URL.search(response.url)
        assert match, f"creating a classroom led to {response.url}: {response.text[:800]}"
        code = JOIN_CODE.search(response.text)
        assert code, response.text[:800]
        return Classroom(instructor=self, classroom_id=int(match.group(1)), code=code.group(1))

    def post(self, path: str, data: dict | None = None) -> Response:
        """A plain form post, as the dashboard's forms send them (followed to where it leads)."""
        return self.browser.post(
            path, {**(data or {}), "csrfmiddlewaretoken": self.browser.cookie("csrftoken")}, htmx=False
        )


@dataclass
class Classroom:
    instructor: Instructor
    classroom_id: int
    code: str

    def url(self, path: str = "") -> str:
        return f"/classrooms/{self.classroom_id}/{path}"

    def act(self, path: str, data: dict | None = None) -> Response:
        response = self.instructor.post(self.url(path), data)
        assert response.status == 200, response.text[:800]
        return response

    def close(self) -> Response:
        return self.instructor.post(self.url("close/"), {"confirm": "on"})


def join(browser: Browser, code: str, name: str, *, rejoin_code: str = "") -> Response:
    """Open the join URL (its page sets the CSRF cookie) and join under `name`."""
    page = browser.get(f"/join/{code}/")
    if lab_id_in(page.url) is not None or page.status != 200:  # already in, or refused
        return page
    form = {"name": name, "rejoin_code": rejoin_code, "csrfmiddlewaretoken": browser.cookie("csrftoken")}
    return browser.post(f"/join/{code}/", form, htmx=False)


def joined_lab(browser: Browser, code: str, name: str, *, rejoin_code: str = "") -> Lab:
    response = join(browser, code, name, rejoin_code=rejoin_code)
    lab_id = lab_id_in(response.url)
    assert lab_id is not None, f"joining as {name} led to {response.url} ({response.status}): {response.text[:800]}"
    return Lab(browser=browser, lab_id=lab_id)


@dataclass
class RosterRow:
    learner_id: int
    lab_id: int
    text: str  # the row as read aloud: its cells' text


class DashboardSocket:
    """A classroom dashboard's websocket, opened with a browser's session, read into its roster."""

    def __init__(self, server: Server, classroom_id: int, *, session: str | None) -> None:
        self.rows: dict[int, RosterRow] = {}  # by lab id
        self.pushes = 0
        self.closed = False
        self._changed = threading.Condition()
        self._socket = Websocket(
            server.url,
            f"/ws/classrooms/{classroom_id}/",
            session=session,
            on_text=self._apply,
            on_close=self._closing,
        )

    def wait(self, probe: Callable[[dict[int, RosterRow]], T], what: str, *, timeout: float = WAIT) -> T:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = probe(self.rows)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                assert remaining > 0 and not self.closed, f"the dashboard never showed {what} (rows: {self.rows})"
                self._changed.wait(min(remaining, 0.5))

    def close(self) -> None:
        self._socket.close()

    def _apply(self, fragment: str) -> None:
        if 'id="roster"' not in fragment:
            return
        rows = {
            int(lab): RosterRow(int(learner), int(lab), " ".join(TAG.sub(" ", html).split()))
            for learner, lab, html in ROW.findall(fragment)
        }
        with self._changed:
            self.rows, self.pushes = rows, self.pushes + 1
            self._changed.notify_all()

    def _closing(self, code: int | None) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()


def row_says(lab: Lab, *words: str) -> Callable[[dict[int, RosterRow]], bool]:
    return lambda rows: (row := rows.get(lab.lab_id)) is not None and all(word in row.text for word in words)
