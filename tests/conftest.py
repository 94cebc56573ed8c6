"""Fixtures shared by the whole suite: a real Kafka cluster, a real server, a real browser, and a
PostgreSQL and a Redis of the suite's own. How each is started lives in tests/harness, shared with bench/."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from kafkalab.kafka.config import local_cluster
from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.browser import VIEWPORT, launch_chromium
from tests.harness.postgres import PostgresServer
from tests.harness.redis import RedisServer
from tests.harness.server import Server


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalCluster]:
    """The suite's 3-broker cluster, started once through the project's own cluster code, from
    empty storage unless another run is using it.

    Several pytest runs may share it (a developer's and an editor's, or xdist's workers): each
    registers its pid and start time, and the last one to finish stops the brokers.
    """
    cluster = local_cluster()
    users = Path(settings.KAFKA_LOCAL_DIR) / "users"
    users.mkdir(parents=True, exist_ok=True)
    mine = users / str(os.getpid())
    with _users_lock(users):
        mine.write_text(repr(psutil.Process().create_time()))
        # A cluster nobody runs starts from empty storage, as on a fresh clone: the topics that
        # earlier runs left behind would make every start slower (thousands of partitions to load).
        cluster.wipe()
        cluster.up(settings.KAFKA_LOCAL_BROKERS)
    try:
        yield cluster
    finally:
        with _users_lock(users):
            mine.unlink(missing_ok=True)
            if not any(_still_running(other) for other in users.iterdir() if other.name.isdigit()):
                cluster.down()


@contextlib.contextmanager
def _users_lock(users: Path) -> Iterator[None]:
    """One run at a time starts or stops the shared cluster (xdist workers start together)."""
    with open(users / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _still_running(registration: Path) -> bool:
    """The run that wrote `registration` is alive: its pid, started when it said (a run killed
    before it could unregister leaves a file whose pid another process may have taken since)."""
    try:
        started = float(registration.read_text() or "nan")
        return abs(psutil.Process(int(registration.name)).create_time() - started) < 1
    except (psutil.NoSuchProcess, ValueError, OSError):
        registration.unlink(missing_ok=True)
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """DATABASE_URL of a PostgreSQL of this run's own (the classroom's database), on a free
    loopback port; installed from Debian's packages when missing, stopped at the end."""
    with PostgresServer() as postgres:
        yield postgres.url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL of a Redis of this run's own (the classroom's channel layer), on a free loopback
    port, saving nothing; installed from Debian's packages when missing, stopped at the end."""
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def live_server_url(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[str]:
    """kafkalab under daphne, as `make run` serves it, on a free loopback port."""
    # The cluster page polls the brokers this often: a killed one shows as down within a second.
    with Server(tmp_path_factory.mktemp("live-server"), kafka_cluster, CLUSTER_WATCH_INTERVAL="0.5") as server:
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an event
    loop marked as running in the main thread while it is open, and an async test (or Django's
    async-safety check) after it in the same worker would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
