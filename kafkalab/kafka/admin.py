"""Admin calls: what the cluster looks like right now."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.errors import KafkaUnavailable

# Brokers that are down are part of the lesson, not an error to log once a second.
quiet_logger = logging.getLogger("kafkalab.kafka.librdkafka")
quiet_logger.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ClusterDescription:
    cluster_id: str | None
    controller_id: int | None
    brokers: list[BrokerInfo]


def admin_client(config: dict[str, object]) -> AdminClient:
    return AdminClient({"socket.connection.setup.timeout.ms": 3000, **config}, logger=quiet_logger)


_shared_admins: dict[str, AdminClient] = {}
_shared_lock = threading.Lock()


def shared_admin(config: dict[str, object]) -> AdminClient:
    """One admin client per process and configuration (clients are thread-safe and costly)."""
    key = repr(sorted(config.items()))
    with _shared_lock:
        if key not in _shared_admins:
            _shared_admins[key] = admin_client(config)
        return _shared_admins[key]


def describe_cluster(admin: AdminClient, *, timeout: float = 3.0) -> ClusterDescription:
    """The brokers Kafka's metadata lists as registered (a fenced broker drops out)."""
    try:
        result = admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 1)
    except (KafkaException, TimeoutError) as exc:
        raise KafkaUnavailable(f"Kafka did not describe the cluster: {exc}") from exc
    except SystemError as exc:
        # A Ctrl-C that lands inside the C call comes out as a SystemError around it: let it be
        # the Ctrl-C it is, so that `kafka up` and `serve` stop the brokers they spawned.
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from exc
        raise
    brokers = sorted(
        (BrokerInfo(node_id=node.id, host=node.host, port=node.port) for node in result.nodes),
        key=lambda broker: broker.node_id,
    )
    controller = result.controller.id if result.controller is not None else None
    return ClusterDescription(cluster_id=result.cluster_id, controller_id=controller, brokers=brokers)


def broker_ids(bootstrap_servers: str, *, timeout: float = 2.0) -> set[int]:
    """Ids of the brokers Kafka reports; empty when the cluster does not answer yet."""
    try:
        description = describe_cluster(admin_client({"bootstrap.servers": bootstrap_servers}), timeout=timeout)
    except KafkaUnavailable:
        return set()
    return {broker.node_id for broker in description.brokers}


def broker_listening(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """Whether a broker's port accepts connections: a killed broker fails this at once,
    seconds before the controller fences it."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
