"""Fixtures for the consumer-group tests: one daphne for the session, fresh labs on it, servers
of a test's own when it kills or restarts one, and after every test a check that none of the
consumer processes it started is left running."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.http_browser import Browser
from tests.harness.server import Server
from tests.integration.consumer_groups.support import (
    GroupView,
    Lab,
    LabSocket,
    end_processes,
    service_processes,
    wait_for,
)

# Consumers end on SIGTERM within their stop deadline (10 s); this bounds the wait for that.
GONE_TIMEOUT = 20.0
RESET_TIMEOUT = 90.0


def wait_until_no_consumers(who: Callable[[], list]) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while (left := who()) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        end_processes(left)
    assert left == [], f"consumer processes were left running: {left}"


@pytest.fixture(autouse=True)
def no_consumer_left() -> Iterator[None]:
    """After each test (and its fixtures' teardown): no NotificationService of ours is alive."""
    yield
    wait_until_no_consumers(service_processes)


@pytest.fixture(scope="session")
def lab_server(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[Server]:
    """kafkalab under daphne, shared by the tests that don't stop or restart their server."""
    server = Server(tmp_path_factory.mktemp("lab-server"), kafka_cluster).start()
    try:
        yield server
    finally:
        server.stop()
        wait_until_no_consumers(lambda: [p for p in service_processes() if p.parent_pid == server.pid])


@pytest.fixture
def make_server(kafka_cluster: LocalCluster, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """make_server(**env) → a started daphne of the test's own (which it may kill and restart)."""
    servers: list[Server] = []

    def make(**env: str) -> Server:
        servers.append(Server(tmp_path / f"server-{len(servers)}", kafka_cluster, **env).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def open_lab(lab_server: Server, kafka_cluster: LocalCluster) -> Iterator[Callable[..., Lab]]:
    """open_lab(browser=None) → a new lab on the shared server; reset and its topic deleted afterwards."""
    opened: list[Lab] = []

    def open_(browser: Browser | None = None) -> Lab:
        opened.append(Lab.open(browser or Browser(lab_server.url)))
        return opened[-1]

    yield open_
    for lab in opened:
        # Reaps the lab's consumers and deletes its group, once no dead member holds it.
        wait_for(lambda lab=lab: lab.reset() is None, f"a reset of {lab.topic}", timeout=RESET_TIMEOUT)
        assert all(c["pid"] is None for c in lab.state()["consumers"])
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
    if opened:
        for future in admin.delete_topics(
            [
                topic
                for lab in opened
                for topic in (lab.topic, f"{lab.topic}.dlq", lab.topic.removesuffix(".orders") + ".invoices")
            ]
        ).values():
            with contextlib.suppress(Exception):  # a leftover topic is harmless
                future.result(timeout=30)


@pytest.fixture
def lab(open_lab) -> Lab:
    return open_lab()


@pytest.fixture
def group(lab: Lab, kafka_cluster: LocalCluster) -> Iterator[GroupView]:
    view = GroupView(kafka_cluster.bootstrap_servers(), lab)
    try:
        yield view
    finally:
        view.close()


@pytest.fixture
def page(lab: Lab, lab_server: Server) -> Iterator[LabSocket]:
    """The lab page's live view: its websocket, open for the whole test."""
    socket = LabSocket(lab_server.url, lab)
    try:
        yield socket
    finally:
        socket.close()
