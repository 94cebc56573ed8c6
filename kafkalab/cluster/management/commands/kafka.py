"""`python manage.py kafka up [--brokers N] | down | status [--json] | fetch`: the local cluster."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kafkalab.kafka.config import is_external, local_cluster
from kafkalab.kafka.errors import KafkaSetupError
from kafkalab.kafka.local_cluster import fetch_jars


class Command(BaseCommand):
    help = "Start, stop and inspect the local Kafka cluster (KRaft, on 127.0.0.1)."
    # It serves nothing, so it runs without DJANGO_SECRET_KEY, which the system checks require.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{up,down,status,fetch}")
        up = actions.add_parser("up", help="start the local cluster and wait until it is ready")
        up.add_argument(
            "--brokers", type=int, default=settings.KAFKA_LOCAL_BROKERS, help="number of nodes (default %(default)s)"
        )
        up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
        down = actions.add_parser("down", help="stop the brokers this cluster started")
        down.add_argument("--grace", type=float, default=20.0, help="seconds between SIGTERM and SIGKILL")
        status = actions.add_parser("status", help="show each broker: node id, pid, ports, alive")
        status.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
        actions.add_parser("fetch", help="fetch the broker jars with Maven (make setup runs this)")

    def handle(self, *args: object, action: str, **options: object) -> None:
        try:
            getattr(self, f"handle_{action}")(**options)
        except KafkaSetupError as exc:
            raise CommandError(str(exc)) from exc

    def handle_fetch(self, **options: object) -> None:
        libs = local_cluster().libs_dir
        fetched = fetch_jars(libs)
        self.stdout.write(f"Kafka jars {'fetched into' if fetched else 'already in'} {libs}")

    def handle_up(self, *, brokers: int, timeout: float, **options: object) -> None:
        if is_external():
            self.stdout.write(
                f"KAFKA_BOOTSTRAP_SERVERS is set: using {settings.KAFKA_BOOTSTRAP_SERVERS}; no local broker started."
            )
            return
        if brokers > 9:
            raise CommandError("The local cluster runs at most 9 brokers.")
        result = local_cluster().up(brokers, timeout=timeout)
        started = ", ".join(map(str, result.started))
        self.stdout.write(f"Started node(s) {started}." if started else "Cluster already up; nothing started.")
        self.stdout.write(f"Kafka is ready at {result.bootstrap_servers}")

    def handle_down(self, *, grace: float, **options: object) -> None:
        if is_external():
            self.stdout.write("KAFKA_BOOTSTRAP_SERVERS is set: no local broker to stop.")
            return
        stopped = local_cluster().down(grace=grace)
        if stopped:
            self.stdout.write(f"Stopped node(s) {', '.join(map(str, stopped))}.")
        else:
            self.stdout.write("No local broker was running.")

    def handle_status(self, *, as_json: bool = False, **options: object) -> None:
        status = self._status()
        if as_json:
            self.stdout.write(json.dumps(status, indent=2))
            return
        self.stdout.write(f"mode: {status['mode']}   bootstrap servers: {status['bootstrap_servers'] or '-'}")
        if status["mode"] == "local" and not status["brokers"]:
            self.stdout.write("No local cluster yet: run `python manage.py kafka up`.")
        for broker in status["brokers"]:
            state = "alive" if broker["alive"] else "down"
            self.stdout.write(
                f"  node {broker['node_id']}  port {broker['port']}  controller {broker['controller_port']}"
                f"  pid {broker['pid'] or '-'}  {state}"
            )

    def _status(self) -> dict:
        if is_external():
            return {"mode": "external", "bootstrap_servers": settings.KAFKA_BOOTSTRAP_SERVERS, "brokers": []}
        return local_cluster().status().as_dict()
