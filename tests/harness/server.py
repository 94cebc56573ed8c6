"""kafkalab under daphne, as `make run` serves it, for the tests and the benchmarks alike.

The lab runner and the NotificationService processes it starts live in that daphne, as under
`make run`; SERVER_PIDS remembers every daphne this process started, so that checks for
leftover consumer processes can tell ours from another test run's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

from kafkalab.kafka.local_cluster import LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
# Bounds on waiting, not expectations of speed: the machine may be busy with other test runs.
START_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0

# Every daphne (or lab runner) this process started: their consumer processes are ours, even once orphaned.
SERVER_PIDS: set[int] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM to a process this harness started; SIGKILL if it lingers past STOP_TIMEOUT."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_env(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    """Environment for a daphne or manage.py child on `cluster`, with the embedded lab runner."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kafkalab.settings",
        "DJANGO_DEBUG": "1",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "KAFKA_LOCAL_DIR": str(cluster.root),
        "KAFKA_LIBS_DIR": str(cluster.libs_dir),
        "KAFKA_LOCAL_PORT_BASE": str(cluster.port_base),
        "REDIS_URL": "",
        # Every learner of a harness server comes from 127.0.0.1: the per-address cap would count
        # a whole test session (or bench section) as one learner.
        "LAB_MAX_LABS_PER_ADDRESS": "1000",
        # A test's lab is torn down (its topics deleted) once the test ends: its observer need
        # not read it for the half minute a learner's reload would want (the brokers are shared).
        "LAB_OBSERVER_GRACE_SECONDS": "3",
        **extra,
    }


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a process's log, for an error message."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _run_migrate(env: dict[str, str], log_path: Path, database_url: str) -> None:
    with open(log_path, "ab") as log:
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=REPO_ROOT,
            env={**env, "DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=MIGRATE_TIMEOUT,
        )
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed on {database_url}:\n{log_tail(log_path)}")


_sqlite_template: Path | None = None


def _migrated_sqlite(env: dict[str, str]) -> Path:
    """An empty SQLite database migrated by `manage.py migrate`, once per process: a new server's
    database is a copy of it (migrating takes seconds of a busy machine, copying milliseconds)."""
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="kafkalab-migrated-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _run_migrate(env, folder / "migrate.log", f"sqlite:///{folder / 'db.sqlite3'}")
        _sqlite_template = folder / "db.sqlite3"
    return _sqlite_template


class Server:
    """kafkalab under daphne on a free loopback port, on a database of its own that survives a
    restart of the server: SQLite in `root` unless `database_url` is given. `root` keeps the log.
    `migrated`: another server already migrated that database."""

    def __init__(
        self, root: Path, cluster: LocalCluster, *, database_url: str | None = None, migrated: bool = False, **env: str
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.sqlite_path = None if database_url else root / "db.sqlite3"
        self.database_url = database_url or f"sqlite:///{self.sqlite_path}"
        self.env = server_env(cluster, DATABASE_URL=self.database_url, **env)
        self.log_path = root / "daphne.log"
        self.process: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None  # kept, so that cpu_percent() measures between calls
        self.port: int | None = None
        self._migrated = migrated

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server has not started"
        return self.process.pid

    def start(self) -> Server:
        """Migrates (the first time), starts daphne and returns once it listens."""
        if not self._migrated:
            self.migrate()
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "kafkalab.asgi:application"],
                cwd=REPO_ROOT,
                # Consumer processes reach the embedded registry at the server's own address.
                env={"KAFKALAB_SITE_URL": self.url, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        SERVER_PIDS.add(self.process.pid)
        self.ps = psutil.Process(self.process.pid)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def migrate(self) -> None:
        if self.sqlite_path is not None and not self.sqlite_path.exists():
            shutil.copyfile(_migrated_sqlite(self.env), self.sqlite_path)
        else:
            _run_migrate(self.env, self.log_path, self.database_url)
        self._lab_ids_apart()
        self._migrated = True

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C under `make run` ends it; SIGKILL if it lingers."""
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the server."""
        assert self.process is not None, "the server has not started"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def sql(self, statement: str, *params: object) -> None:
        """Change the server's SQLite database behind its back (what an older version may have left)."""
        assert self.sqlite_path is not None, "sql() speaks SQLite only"
        with contextlib.closing(sqlite3.connect(self.sqlite_path)) as connection, connection:
            connection.execute(statement, params)

    def __enter__(self) -> Server:
        # `with Server(...).start() as server` must not start a second daphne over the first.
        running = self.process is not None and self.process.poll() is None
        return self if running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_listening(self) -> None:
        assert self.process is not None and self.port is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with code {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not listen on port {self.port} within {START_TIMEOUT:.0f}s")
            time.sleep(0.1)

    def _lab_ids_apart(self) -> None:
        """Lab topics are named after lab ids, and other test runs share the suite's cluster: a
        fresh database counting from 1 would create (and so wipe) their labs' topics. So a fresh
        database counts from a random height instead; one that already has labs is left alone."""
        base = random.SystemRandom().randrange(10**6, 10**9)
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as connection, connection:
                if connection.execute("SELECT 1 FROM labs_lab LIMIT 1").fetchone() is None:
                    connection.execute("DELETE FROM sqlite_sequence WHERE name = 'labs_lab'")
                    connection.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('labs_lab', ?)", (base,))
            return
        with psycopg.connect(self.database_url) as connection:
            connection.execute(
                "SELECT setval(pg_get_serial_sequence('labs_lab', 'id'), %s) WHERE NOT EXISTS (SELECT 1 FROM labs_lab)",
                (base,),
            )


class LabRunnerWorker:
    """The lab runner as a process of its own (`manage.py runworker lab-runner`), as the classroom
    runs it: on a shared (Redis) channel layer, for web servers started with LAB_RUNNER_EMBEDDED=0."""

    def __init__(self, root: Path, cluster: LocalCluster, *, database_url: str, redis_url: str, **env: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.env = server_env(cluster, DATABASE_URL=database_url, REDIS_URL=redis_url, LAB_RUNNER_EMBEDDED="0", **env)
        self.log_path = root / "runworker.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the runner has not started"
        return self.process.pid

    def start(self) -> LabRunnerWorker:
        """Starts the worker and returns once it listens on its channel."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runworker", "lab-runner"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        SERVER_PIDS.add(self.process.pid)  # its consumer processes are ours too
        deadline = time.monotonic() + START_TIMEOUT
        while "Running worker for channels" not in self.log_tail():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"runworker did not start listening:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        """SIGTERM to its own pid; SIGKILL if it lingers."""
        stop_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def __enter__(self) -> LabRunnerWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
