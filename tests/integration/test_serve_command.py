"""`python manage.py serve` (what `make run` runs): cluster up, daphne, and an orderly Ctrl-C."""

from __future__ import annotations

import http.cookiejar
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.server import free_port
from tests.integration.conftest import REPO_ROOT, UP_TIMEOUT, cluster_processes, manage_env, pid_files

# Above the ephemeral port range, apart from the other integration tests' ports.
SERVE_PORTS = 61892


def wait_for_home_page(url: str, server: subprocess.Popen, *, timeout: float) -> int:
    """The status GET `url` ends with, once the server answers, following redirects with the
    session cookie as a browser does."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"manage.py serve exited with code {server.returncode}"
        try:
            with browser.open(url, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.25)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def serving(cluster: LocalCluster, log_path: Path) -> Iterator[tuple[subprocess.Popen, list[psutil.Process]]]:
    """`manage.py serve --brokers 1` on a free port, answering; yields it and its children."""
    http_port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(http_port), "--brokers", "1"],
            cwd=REPO_ROOT,
            env=manage_env(cluster, PYTHONUNBUFFERED="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    children: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{http_port}/"
        assert wait_for_home_page(url, server, timeout=UP_TIMEOUT + 60) == 200
        children = psutil.Process(server.pid).children(recursive=True)
        yield server, children
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for child in children:  # daphne, started by the server this test started
            if alive(child):
                child.kill()


def test_serve_starts_the_cluster_and_stops_it_on_ctrl_c(make_cluster, tmp_path):
    cluster = make_cluster(SERVE_PORTS)
    log_path = tmp_path / "serve.log"
    with serving(cluster, log_path) as (server, children):
        [broker] = cluster.status().brokers
        assert broker.alive
        assert any("daphne" in child.cmdline() for child in children)

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0

    output = log_path.read_text()
    assert "Kafka is ready at 127.0.0.1:61892" in output
    assert "Stopped Kafka node(s) 1." in output
    assert cluster_processes(cluster) == []
    assert pid_files(cluster) == []
    assert not any(alive(child) for child in children)


def test_serve_leaves_a_cluster_it_did_not_start_running(make_cluster, tmp_path):
    cluster = make_cluster(SERVE_PORTS + 10)
    cluster.up(1, timeout=UP_TIMEOUT)
    [before] = cluster.status().brokers
    log_path = tmp_path / "serve.log"
    with serving(cluster, log_path) as (server, _children):
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0

    assert cluster.status().brokers == [before]
    assert "Stopped Kafka node(s)" not in log_path.read_text()


def test_ctrl_c_while_the_cluster_starts_stops_the_brokers_it_spawned(make_cluster, tmp_path):
    cluster = make_cluster(SERVE_PORTS + 20)
    pid_file = cluster.nodes(1)[0].pid_file
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(free_port()), "--brokers", "1"],
            cwd=REPO_ROOT,
            env=manage_env(cluster, PYTHONUNBUFFERED="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # The pid file is written the moment the broker is spawned, seconds before it is ready.
        deadline = time.monotonic() + UP_TIMEOUT
        while not pid_file.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pid_file.exists()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert cluster_processes(cluster) == []
    assert pid_files(cluster) == []


SECRET_KEY_MISSING = "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (make run sets DJANGO_DEBUG=1)."


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "serve", "--brokers", "1", "--port", "0"],
        ["manage.py", "runworker", "lab-runner"],
        ["-m", "daphne", "-b", "127.0.0.1", "-p", "0", "kafkalab.asgi:application"],
    ],
    ids=["serve", "runworker", "daphne"],
)
def test_nothing_serves_without_a_secret_key_when_debug_is_off(make_cluster, command):
    cluster = make_cluster(SERVE_PORTS + 30)
    env = manage_env(cluster, DJANGO_DEBUG="0")
    assert "DJANGO_SECRET_KEY" not in env
    result = subprocess.run(
        [sys.executable, *command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert SECRET_KEY_MISSING in result.stdout + result.stderr
    assert not cluster.cluster_dir.exists()  # refused before starting any broker
