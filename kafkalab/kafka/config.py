"""Client configuration shared by every producer, consumer and admin client."""

from __future__ import annotations

from django.conf import settings

from kafkalab.kafka.local_cluster import LocalCluster


def is_external() -> bool:
    return bool(settings.KAFKA_BOOTSTRAP_SERVERS)


def local_cluster() -> LocalCluster:
    return LocalCluster(
        settings.KAFKA_LOCAL_DIR,
        port_base=settings.KAFKA_LOCAL_PORT_BASE,
        heap_mb=settings.KAFKA_LOCAL_HEAP_MB,
        libs_dir=settings.KAFKA_LIBS_DIR,
    )


def bootstrap_servers() -> str:
    """The external cluster when KAFKA_BOOTSTRAP_SERVERS is set, else the local one."""
    if is_external():
        return settings.KAFKA_BOOTSTRAP_SERVERS
    cluster = local_cluster()
    return cluster.bootstrap_servers(cluster.formatted_broker_count() or settings.KAFKA_LOCAL_BROKERS)


def client_config(**overrides: object) -> dict[str, object]:
    """Base config for any client: bootstrap servers plus the KAFKA_* security settings."""
    config: dict[str, object] = {"bootstrap.servers": bootstrap_servers()}
    config.update(settings.KAFKA_CLIENT_SECURITY)
    config.update(overrides)
    return config
