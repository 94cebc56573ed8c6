"""A PostgreSQL server of the suite's own: Debian's binaries, a throwaway data directory, a free
loopback port, trust auth for the `kafkalab` user and database; stopped and deleted afterwards.

PostgreSQL refuses to run as root, and CI runs as root: then initdb, pg_ctl and the server run
as an unprivileged user (`postgres`, which Debian's package creates, else `nobody`), and the
data directory belongs to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.harness.server import REPO_ROOT, free_port

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-tools.sh"
USER = "kafkalab"
DATABASE = "kafkalab"
# Bounds on waiting, not expectations of speed.
START_TIMEOUT = 60
STOP_TIMEOUT = 60
# A test database: nothing here needs to survive a crash of the machine.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",  # TCP on loopback only: no socket file in a shared folder
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
}


def postgres_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl, after installing Debian's `postgresql` (with the
    script `make test` runs first) if they are missing: the suite never skips for want of it."""
    found = _find_bin_dir()
    if found is None:
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True)
        found = _find_bin_dir()
    if found is None:
        raise RuntimeError(f"initdb and pg_ctl are missing even after {INSTALL_SCRIPT}: install PostgreSQL.")
    return found


def _find_bin_dir() -> Path | None:
    """On PATH, else Debian's newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH)."""
    on_path = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(on_path[0]).resolve().parent
    debian = sorted(
        (d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists() and (d / "pg_ctl").exists()),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    return debian[-1] if debian else None


class PostgresServer:
    """One PostgreSQL server in a temporary folder; `start()`, `url`, `stop()`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        # As root: an unprivileged user; otherwise whoever runs the tests.
        self.os_user = _unprivileged_user() if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="kafkalab-postgres-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port: int | None = None
        if self.os_user is not None:
            os.chown(self.root, self.os_user.pw_uid, self.os_user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> PostgresServer:
        """initdb, then the server on a free loopback port, then the `kafkalab` database."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._run("initdb", "-D", self.data, "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
        self.port = free_port()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# kafkalab's test harness\n")
            conf.writelines(f"{name} = {value}\n" for name, value in {**SETTINGS, "port": self.port}.items())
        try:
            self._run("pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", str(START_TIMEOUT), "start")
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.log_tail()}") from None
        self._create_database()

    def stop(self) -> None:
        """Stops this server (by its data directory, so its own postmaster) and deletes its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", str(STOP_TIMEOUT), "stop")
                except RuntimeError:
                    self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _create_database(self) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{USER}"')

    def _run(self, program: str, *args: object) -> None:
        as_user = {}
        if self.os_user is not None:
            as_user = {"user": self.os_user.pw_uid, "group": self.os_user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bin_dir / program), *map(str, args)],
            cwd=self.root,  # the user must be able to read its working directory
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 30,
            **as_user,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("PostgreSQL will not run as root, and there is no `postgres` or `nobody` user to run it as.")
