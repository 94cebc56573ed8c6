"""A Redis server of the suite's own (the classroom's channel layer): Debian's `redis-server`, a
throwaway directory, a free loopback port, no persistence; stopped (by its own pid) and deleted
afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.harness.server import REPO_ROOT, free_port

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-tools.sh"
# Bounds on waiting, not expectations of speed.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def redis_server_bin() -> Path:
    """Debian's `redis-server`, installed first (with the script `make test` runs first) when it
    is missing: the suite never skips for want of it."""
    found = shutil.which("redis-server")
    if found is None:
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True)
        found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(f"redis-server is missing even after {INSTALL_SCRIPT}: install Redis.")
    return Path(found)


class RedisServer:
    """One Redis server in a temporary folder; `start()`, `url`, `stop()`."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or redis_server_bin()
        self.root = Path(tempfile.mkdtemp(prefix="kafkalab-redis-"))
        self.log_path = self.root / "redis.log"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server has not started"
        return self.process.pid

    def start(self) -> RedisServer:
        """The server on a free loopback port; returns once it answers PING."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.port = free_port()
        # A channel layer's messages live for seconds: nothing is saved to disk.
        args = ["--port", self.port, "--bind", "127.0.0.1", "--dir", self.root, "--save", "", "--appendonly", "no"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), *map(str, args)], cwd=self.root, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to this server's own pid (SIGKILL if it lingers), then deletes its files."""
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answers_ping(self) -> bool:
        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(self.url, socket_timeout=1) as client:
            return bool(client.ping())
        return False
