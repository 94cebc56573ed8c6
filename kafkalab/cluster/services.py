"""Cluster health: which brokers are up, who is the controller, which Kafka runs."""

from __future__ import annotations

from kafkalab.kafka.admin import (
    BrokerInfo,
    ClusterDescription,
    admin_client,
    broker_listening,
    describe_cluster,
)
from kafkalab.kafka.config import client_config, is_external, local_cluster
from kafkalab.kafka.errors import KafkaUnavailable
from kafkalab.kafka.local_cluster import kafka_version


class ClusterHealthProbe:
    """Reads the cluster's health. Keeps one admin client, and remembers every broker it has
    seen so that a broker that vanished from Kafka's metadata is still listed, as down."""

    def __init__(self) -> None:
        self._admin = None
        self._known: dict[int, str] = {}

    def read(self) -> dict:
        if self._admin is None:
            self._admin = admin_client(client_config())
        try:
            description = describe_cluster(self._admin)
        except KafkaUnavailable as exc:
            return cluster_health(description=None, known=self._known, error=str(exc))
        return cluster_health(description=description, known=self._known, error=None)


def cluster_health(*, description: ClusterDescription | None, known: dict[int, str], error: str | None) -> dict:
    """A plain dict (it travels over the channel layer) describing every broker.

    A broker is up when Kafka lists it as registered *and* its port accepts connections.
    When Kafka's metadata could not be read (`description` is None), the port alone decides.
    `known` maps node id to address for every broker seen so far; it is updated in place.
    """
    if description is None:
        description = ClusterDescription(cluster_id=None, controller_id=None, brokers=[])
        registered = None
    else:
        registered = {broker.node_id for broker in description.brokers}
    expected = _expected_brokers()
    for broker in description.brokers:
        known[broker.node_id] = broker.address
    known.update(expected)
    brokers = []
    for node_id in sorted(known):
        address = known[node_id]
        host, _, port = address.rpartition(":")
        listening = broker_listening(host, int(port))
        brokers.append(
            {
                "node_id": node_id,
                "address": address,
                "registered": registered is None or node_id in registered,
                "listening": listening,
                "up": listening and (registered is None or node_id in registered),
                "controller": node_id == description.controller_id,
            }
        )
    return {
        "mode": "external" if is_external() else "local",
        "cluster_id": description.cluster_id,
        "controller_id": description.controller_id,
        "kafka_version": None if is_external() else kafka_version(local_cluster().libs_dir),
        "brokers": brokers,
        "brokers_up": sum(1 for broker in brokers if broker["up"]),
        "error": error,
    }


def _expected_brokers() -> dict[int, str]:
    """For the local cluster, every node it was formatted with, running or not."""
    if is_external():
        return {}
    cluster = local_cluster()
    count = cluster.formatted_broker_count() or 0
    return {node.node_id: BrokerInfo(node.node_id, "127.0.0.1", node.port).address for node in cluster.nodes(count)}
