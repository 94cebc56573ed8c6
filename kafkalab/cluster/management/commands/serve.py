"""`python manage.py serve`: what `make run` runs.

Brings up the local cluster (unless KAFKA_BOOTSTRAP_SERVERS is set), migrating meanwhile, and
serves the app with daphne on 127.0.0.1. Ctrl-C (or SIGTERM) stops daphne, then the brokers this
command started — brokers that were already running before it are left alone. With DJANGO_DEBUG
off it refuses to start without DJANGO_SECRET_KEY.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from kafkalab.checks import require_secret_key
from kafkalab.kafka.config import is_external, local_cluster
from kafkalab.kafka.errors import KafkaSetupError

# daphne, started at once but told to listen only once Kafka is ready: importing Django,
# Channels and the app takes it about a second, which then passes while the brokers start.
# "daphne" in argv[1] names the process for `ps`.
DAPHNE_ON_GO = """
import sys
try:
    import kafkalab.asgi
    go = sys.stdin.readline() == "go\\n"
except KeyboardInterrupt:  # Ctrl-C before Kafka was ready: serve says so and cleans up
    go = False
if go:
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(sys.argv[2:])
"""


class Command(BaseCommand):
    help = "Start the local Kafka cluster if needed, migrate, and serve kafkalab with daphne."
    # Not before anything starts: the migrations run them, in a thread, while the brokers start.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--brokers", type=int, default=settings.KAFKA_LOCAL_BROKERS)

    def handle(self, *args: object, port: int, brokers: int, **options: object) -> None:
        try:
            require_secret_key()  # now, not from the system checks once the brokers are up
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        # SIGTERM takes the same orderly path as Ctrl-C, and Ctrl-C works even when this was
        # started from a shell that ignores SIGINT for background jobs.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        started: list[int] = []
        daphne = _daphne(port)
        try:
            # The brokers take seconds to start and the migrations need none of them, so they
            # run side by side; leaving the `with` waits for the migrations, even on Ctrl-C.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate") as pool:
                migrated = pool.submit(_migrate)
                started = self._cluster_up(brokers)
                migrated.result()
            self._serve(daphne, port)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        except KafkaSetupError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            _stop(daphne)
            if started:
                stopped = local_cluster().down()
                self.stdout.write(f"Stopped Kafka node(s) {', '.join(map(str, stopped)) or 'none'}.")

    def _cluster_up(self, brokers: int) -> list[int]:
        if is_external():
            self.stdout.write(f"Using the Kafka cluster at {settings.KAFKA_BOOTSTRAP_SERVERS}.")
            return []
        self.stdout.write(f"Starting a local Kafka cluster of {brokers} broker(s)…")
        result = local_cluster().up(brokers)
        self.stdout.write(f"Kafka is ready at {result.bootstrap_servers}")
        return result.started

    def _serve(self, daphne: subprocess.Popen, port: int) -> None:
        try:
            daphne.stdin.write("go\n")
            daphne.stdin.close()
        except BrokenPipeError:
            pass  # it exited already, and said why
        if daphne.poll() is not None:
            raise CommandError(f"daphne exited with code {daphne.returncode} before serving.")
        self.stdout.write(self.style.SUCCESS(f"kafkalab is at http://127.0.0.1:{port}/  (Ctrl-C stops it)"))
        daphne.wait()


def _daphne(port: int) -> subprocess.Popen:
    arguments = ["-b", "127.0.0.1", "-p", str(port), "kafkalab.asgi:application"]
    # The app's own address, for what reaches it from outside a request: consumer processes
    # asking the embedded schema registry. A deployment behind a proxy sets it itself.
    env = {"KAFKALAB_SITE_URL": f"http://127.0.0.1:{port}", **os.environ}
    return subprocess.Popen(
        [sys.executable, "-c", DAPHNE_ON_GO, "daphne", *arguments], stdin=subprocess.PIPE, text=True, env=env
    )


def _stop(daphne: subprocess.Popen) -> None:
    if daphne.poll() is None:
        daphne.terminate()  # daphne shuts down cleanly on SIGTERM (SIGINT may be ignored)
        try:
            daphne.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daphne.kill()
            daphne.wait()


def _migrate() -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # SQLite creates the file but not its folder, and this runs before anything else could.
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    try:
        call_command("migrate", interactive=False, verbosity=0, skip_checks=False)  # the system checks too
    finally:
        connections.close_all()  # this thread's own; daphne opens its own in its process


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
