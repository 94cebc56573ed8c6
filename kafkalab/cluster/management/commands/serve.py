"""`python manage.py serve`: what `make run` runs.

Brings up the local cluster (unless KAFKA_BOOTSTRAP_SERVERS is set), migrates, and serves the
app with daphne on 127.0.0.1. Ctrl-C (or SIGTERM) stops daphne, then the brokers this command
started — brokers that were already running before it are left alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafkalab.kafka.config import is_external, local_cluster
from kafkalab.kafka.errors import KafkaSetupError


class Command(BaseCommand):
    help = "Start the local Kafka cluster if needed, migrate, and serve kafkalab with daphne."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--brokers", type=int, default=settings.KAFKA_LOCAL_BROKERS)

    def handle(self, *args: object, port: int, brokers: int, **options: object) -> None:
        # SIGTERM takes the same orderly path as Ctrl-C, and Ctrl-C works even when this was
        # started from a shell that ignores SIGINT for background jobs.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        started: list[int] = []
        try:
            started = self._cluster_up(brokers)
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write(self.style.SUCCESS(f"kafkalab is at http://127.0.0.1:{port}/  (Ctrl-C stops it)"))
            self._serve(port)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        except KafkaSetupError as exc:
            raise CommandError(str(exc)) from exc
        finally:
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

    def _serve(self, port: int) -> None:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "kafkalab.asgi:application"]
        daphne = subprocess.Popen(command)
        try:
            daphne.wait()
        finally:
            if daphne.poll() is None:
                daphne.terminate()  # daphne shuts down cleanly on SIGTERM (SIGINT may be ignored)
                try:
                    daphne.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    daphne.kill()
                    daphne.wait()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
