"""Fixtures shared by the whole suite: a real Kafka cluster, a real server, a real browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from kafkalab.kafka.config import local_cluster
from kafkalab.kafka.local_cluster import LocalCluster

REPO_ROOT = Path(__file__).resolve().parent.parent
# Per pytest run, so that two runs on one machine never share (or delete) each other's.
E2E_DATABASE = Path(settings.KAFKA_LOCAL_DIR) / f"e2e-{os.getpid()}.sqlite3"
E2E_LOG = Path(settings.KAFKA_LOCAL_DIR) / f"daphne-{os.getpid()}.log"
CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium keeps dialling out to services this loopback-only machine can't reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalCluster]:
    """The suite's 3-broker cluster, started once through the project's own cluster code.

    Several pytest runs may share it (a developer's and an editor's, say): each registers its
    pid, and the last one to finish stops the brokers.
    """
    cluster = local_cluster()
    users = Path(settings.KAFKA_LOCAL_DIR) / "users"
    users.mkdir(parents=True, exist_ok=True)
    mine = users / str(os.getpid())
    mine.touch()
    try:
        cluster.up(settings.KAFKA_LOCAL_BROKERS)
        yield cluster
    finally:
        mine.unlink(missing_ok=True)
        if not any(_pid_alive(int(other.name)) for other in users.iterdir() if other.name.isdigit()):
            cluster.down()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """Environment for a daphne or manage.py child that talks to the suite's cluster."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kafkalab.settings",
        "DJANGO_DEBUG": "1",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "KAFKA_LOCAL_DIR": str(settings.KAFKA_LOCAL_DIR),
        "KAFKA_LIBS_DIR": str(settings.KAFKA_LIBS_DIR),
        "KAFKA_LOCAL_PORT_BASE": str(settings.KAFKA_LOCAL_PORT_BASE),
        "CLUSTER_WATCH_INTERVAL": "0.5",
        "DATABASE_URL": f"sqlite:///{E2E_DATABASE}",
        "REDIS_URL": "",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def live_server_url(kafka_cluster: LocalCluster) -> Iterator[str]:
    """kafkalab under daphne, as `make run` serves it, on a free loopback port."""
    env = server_env()
    db = E2E_DATABASE
    db.unlink(missing_ok=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True)
    port = free_port()
    log = open(E2E_LOG, "wb")  # noqa: SIM115 — closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "kafkalab.asgi:application"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        db.unlink(missing_ok=True)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with code {process.returncode}; see {E2E_LOG}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"daphne did not listen on port {port} within {timeout}s")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
