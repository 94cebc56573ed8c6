"""What the browser sections share: kafkalab under daphne on a cluster of their own, and the
Chromium flags this loopback-only machine needs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from bench.cluster import REPO_LIBS, REPO_ROOT, stop_and_verify
from bench.report import progress
from kafkalab.kafka.local_cluster import LocalCluster, kafka_version

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daphne:
    """kafkalab under daphne, as tests/conftest.py serves it, on its own database and cluster."""

    def __init__(self, root: Path, cluster: LocalCluster, *, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kafkalab.settings",
            "DJANGO_DEBUG": "1",
            "KAFKA_BOOTSTRAP_SERVERS": "",
            "KAFKA_LOCAL_DIR": str(cluster.root),
            "KAFKA_LIBS_DIR": str(REPO_LIBS),
            "KAFKA_LOCAL_PORT_BASE": str(cluster.port_base),
            "DATABASE_URL": f"sqlite:///{root / 'bench.sqlite3'}",
            "REDIS_URL": "",
            **(extra_env or {}),
        }
        progress("migrate, then daphne on a free port")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True)
        self.log_path = root / "daphne.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 — closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "kafkalab.asgi:application"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.process.pid)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not listen on port {self.port} within {timeout:.0f} s")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextmanager
def lab_stack(
    name: str, *, port_base: int, brokers: int = 3, server_class: type[Daphne] = Daphne
) -> Iterator[tuple[LocalCluster, Daphne]]:
    """A cluster and a daphne of the section's own, in a temp dir; both stopped afterwards."""
    if not kafka_version(REPO_LIBS):
        raise RuntimeError(f"No Kafka jars in {REPO_LIBS}: run `make setup` first.")
    with tempfile.TemporaryDirectory(prefix=f"kafkalab-bench-{name}-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster(root / "kafka", port_base=port_base, libs_dir=REPO_LIBS)
        server = None
        try:
            progress(f"kafka up --brokers {brokers} on ports {port_base}+")
            cluster.up(brokers)
            server = server_class(root, cluster)
            yield cluster, server
        finally:
            if server is not None:
                server.stop()
            stop_and_verify(cluster)
