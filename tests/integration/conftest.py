"""Helpers for tests that run real brokers: clusters of their own, and manage.py as a user runs it.

Each test gets a LocalCluster in its own temporary folder and on its own ports, apart from the
development cluster (9092…) and the suite's session cluster (29092…). Whatever a test starts is
stopped afterwards, and the teardown checks that no broker of that cluster is left running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from kafkalab.kafka.local_cluster import LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
# A bound on waiting for readiness, not an expectation of how long it takes.
UP_TIMEOUT = 120.0


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
