"""Helpers for tests that run real brokers: clusters of their own, and manage.py as a user runs it.

Each test gets a LocalCluster in its own temporary folder and on its own ports, apart from the
development cluster (9092…) and the suite's session cluster (29092…). Whatever a test starts is
stopped afterwards, and the teardown checks that no broker of that cluster is left running.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import pytest
from channels.layers import channel_layers
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection
from django.test import Client

from kafkalab.kafka.local_cluster import LocalCluster
from kafkalab.labs.models import Lab
from tests.factories import lab_open
from tests.integration.lab_support import CLUSTER_UP_TIMEOUT, Learner, observer_threads

REPO_ROOT = Path(__file__).resolve().parents[2]
# A bound on waiting for readiness, not an expectation of how long it takes.
UP_TIMEOUT = 120.0
# Fixed ports sit above Linux's ephemeral range (32768–60999), where an outgoing connection
# of any process could hold them when a broker wants to listen.
LONE_BROKER_PORTS = 62192


def make_local_cluster(root: Path, port_base: int) -> LocalCluster:
    """A cluster in a folder of its own that shares the jars the suite already fetched."""
    return LocalCluster(root, port_base=port_base, libs_dir=settings.KAFKA_LIBS_DIR)


def cluster_processes(cluster: LocalCluster) -> list[psutil.Process]:
    """Live processes (brokers or storage formatters) running on this cluster's files."""
    prefix = str(cluster.cluster_dir) + os.sep
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(arg.startswith(prefix) for arg in process.info["cmdline"] or []):
            found.append(process)
    return found


def pid_files(cluster: LocalCluster) -> list[Path]:
    return sorted(cluster.cluster_dir.glob("node-*/broker.pid"))


def assert_nothing_left(cluster: LocalCluster) -> None:
    leftovers = cluster_processes(cluster)
    for process in leftovers:  # ours: never leave a JVM behind, even when the check fails
        process.kill()
    assert leftovers == [], f"processes left running for {cluster.cluster_dir}"
    assert pid_files(cluster) == []


@contextmanager
def stopped_afterwards(cluster: LocalCluster) -> Iterator[LocalCluster]:
    try:
        yield cluster
    finally:
        cluster.down()
        assert_nothing_left(cluster)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[[int], LocalCluster]]:
    """make_cluster(port_base) → a LocalCluster under tmp_path, brought down after the test."""
    with ExitStack() as stack:

        def make(port_base: int) -> LocalCluster:
            cluster = make_local_cluster(tmp_path / f"kafka-{port_base}", port_base)
            return stack.enter_context(stopped_afterwards(cluster))

        yield make


def manage_env(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    """Environment for a manage.py child that manages `cluster` with the project's settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("KAFKA_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "kafkalab.settings",
            "DJANGO_DEBUG": "1",
            "KAFKA_BOOTSTRAP_SERVERS": "",
            "KAFKA_LOCAL_DIR": str(cluster.root),
            "KAFKA_LIBS_DIR": str(cluster.libs_dir),
            "KAFKA_LOCAL_PORT_BASE": str(cluster.port_base),
            "DATABASE_URL": f"sqlite:///{cluster.root / 'db.sqlite3'}",
            "REDIS_URL": "",
        }
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = UP_TIMEOUT + 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# === The live lab (issue 3): fixtures for tests/integration/test_lab_*.py =====================
# Labs are opened as a learner opens them (GET /), on the suite's cluster, with lab ids no other
# pytest run uses; their topics are deleted afterwards, and no lab observer outlives its test.


@pytest.fixture
def lab_ids_apart(db) -> None:
    """Start this test's lab ids at a random height: runs share the suite's cluster, and a lab's
    topic is named after its id, so two runs counting from 1 would wipe each other's topics."""
    table, base = Lab._meta.db_table, random.SystemRandom().randrange(10**6, 10**9)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, base])
        else:
            assert connection.vendor == "sqlite", connection.vendor
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, base])


@pytest.fixture
def lab_channel_layers() -> Iterator[None]:
    """A fresh InMemoryChannelLayer for each test, so it binds to that test's event loop.

    Torn down after the test's event loop is closed: by then every lab observer must have stopped.
    """
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}
    deadline = time.monotonic() + 15
    while observer_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert observer_threads() == [], "lab observers outlived the event loop they pushed to"


@pytest.fixture
def open_lab(kafka_cluster: LocalCluster, lab_ids_apart, lab_channel_layers) -> Iterator[Callable[[Client], int]]:
    """open_lab(client) → the id of a new lab bound to the client's session, on the suite's cluster."""
    opened: list[int] = []

    def open_(client: Client) -> int:
        opened.append(lab_open(client))
        return opened[-1]

    yield open_
    if opened:
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
        topics = [
            topic
            for lab_id in opened
            for topic in (f"lab-{lab_id}.orders", f"lab-{lab_id}.orders.dlq", f"lab-{lab_id}.invoices")
        ]
        for future in admin.delete_topics(topics).values():
            # Already gone (a test may delete it) or Kafka is busy: a leftover topic is harmless.
            with contextlib.suppress(Exception):
                future.result(timeout=30)


@pytest.fixture
def learner(open_lab) -> Learner:
    """A learner's browser session and the lab it got on its first visit."""
    client = Client()
    return Learner(client=client, lab_id=open_lab(client))


@pytest.fixture(scope="module")
def lone_broker_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """A 1-broker cluster of the module's own, started once for its tests."""
    cluster = LocalCluster(
        tmp_path_factory.mktemp("lone-broker"), port_base=LONE_BROKER_PORTS, libs_dir=settings.KAFKA_LIBS_DIR
    )
    try:
        cluster.up(1, timeout=CLUSTER_UP_TIMEOUT)
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def lone_broker(lone_broker_cluster, settings, lab_ids_apart, lab_channel_layers) -> LocalCluster:
    """The module's lone broker, up (a test may stop it), with the app pointed at it."""
    settings.KAFKA_LOCAL_DIR = lone_broker_cluster.root
    settings.KAFKA_LOCAL_PORT_BASE = lone_broker_cluster.port_base
    settings.KAFKA_LOCAL_BROKERS = 1
    lone_broker_cluster.up(1, timeout=CLUSTER_UP_TIMEOUT)  # nothing to do unless a test left it down
    return lone_broker_cluster
