"""The embedded schema registry served by a real daphne on the suite's cluster.

The server keeps its schemas in a topic of its own (SCHEMA_REGISTRY_TOPIC), so that these tests
may change the global compatibility level without touching another test run's registry.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.server import Server


@pytest.fixture(scope="module")
def registry_topic() -> str:
    return f"_schemas-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def registry_server(kafka_cluster: LocalCluster, registry_topic: str, tmp_path_factory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("registry-server"), kafka_cluster, SCHEMA_REGISTRY_TOPIC=registry_topic)
    with server:
        yield server
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
    with contextlib.suppress(Exception):  # a leftover test topic is harmless
        admin.delete_topics([registry_topic])[registry_topic].result(timeout=30)


@pytest.fixture
def registry_url(registry_server: Server) -> str:
    return f"{registry_server.url}/registry"


@pytest.fixture
def client(registry_url: str) -> SchemaRegistryClient:
    # A new client per test: the client caches ids and schemas, and some tests restart the server.
    return SchemaRegistryClient({"url": registry_url})


@pytest.fixture
def subject() -> str:
    return f"lab-test-{uuid.uuid4().hex[:8]}.orders-value"
