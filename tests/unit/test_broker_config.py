"""The local cluster's layout and broker configuration, without starting a broker."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from kafkalab.kafka import local_cluster
from kafkalab.kafka.errors import KafkaSetupError
from kafkalab.kafka.local_cluster import (
    LocalCluster,
    _java_major_version,
    java_executable,
    kafka_version,
    new_cluster_id,
    render_node_properties,
)

LAB_FAST = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.session.timeout.ms": "10000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.heartbeat.interval.ms": "1000",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.num.partitions": "10",
}


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    properties: dict[str, str] = {}
    for key, value in pairs:
        assert key not in properties, f"{key} is set twice"
        properties[key] = value
    return properties


def node_properties(tmp_path: Path, count: int, *, port_base: int = 40092) -> list[dict[str, str]]:
    nodes = LocalCluster(tmp_path, port_base=port_base).nodes(count)
    return [parse_properties(render_node_properties(node, nodes)) for node in nodes]


# --- render_node_properties -----------------------------------------------------------------


def test_one_node_is_a_combined_broker_and_controller_on_loopback(tmp_path):
    [props] = node_properties(tmp_path, 1)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:40093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:40092,CONTROLLER://127.0.0.1:40093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path.resolve() / "cluster" / "node-1" / "data")


def test_one_node_sizes_internal_topics_to_a_single_replica(tmp_path):
    [props] = node_properties(tmp_path, 1)
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key


def test_three_nodes_share_one_quorum_and_each_listen_on_their_own_ports(tmp_path):
    all_props = node_properties(tmp_path, 3)
    voters = "1@127.0.0.1:40093,2@127.0.0.1:40095,3@127.0.0.1:40097"
    for node_id, props in enumerate(all_props, start=1):
        port = 40092 + 2 * (node_id - 1)
        assert props["node.id"] == str(node_id)
        assert props["controller.quorum.voters"] == voters
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}"
        assert props["advertised.listeners"] == props["listeners"]
        assert props["log.dirs"] == str(tmp_path.resolve() / "cluster" / f"node-{node_id}" / "data")


def test_three_nodes_replicate_internal_topics_three_ways_with_min_isr_two(tmp_path):
    for props in node_properties(tmp_path, 3):
        assert props["default.replication.factor"] == "3"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["share.coordinator.state.topic.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["share.coordinator.state.topic.min.isr"] == "2"


@pytest.mark.parametrize(("count", "replication", "min_isr"), [(1, 1, 1), (2, 2, 2), (3, 3, 2), (5, 3, 2)])
def test_replication_is_min_3_n_and_min_isr_min_2_n(tmp_path, count, replication, min_isr):
    for props in node_properties(tmp_path, count):
        assert props["offsets.topic.replication.factor"] == str(replication)
        assert props["transaction.state.log.min.isr"] == str(min_isr)
        assert len(props["controller.quorum.voters"].split(",")) == count


@pytest.mark.parametrize("count", [1, 3])
def test_lab_fast_settings_and_no_topic_auto_creation(tmp_path, count):
    for props in node_properties(tmp_path, count):
        assert props["auto.create.topics.enable"] == "false"
        for key, value in LAB_FAST.items():
            assert props[key] == value, key
        # The broker enforces min <= value for the KIP-848 group timeouts.
        assert int(props["group.consumer.min.session.timeout.ms"]) <= int(props["group.consumer.session.timeout.ms"])
        assert int(props["group.consumer.min.heartbeat.interval.ms"]) <= int(
            props["group.consumer.heartbeat.interval.ms"]
        )


@pytest.mark.parametrize("count", [1, 3])
def test_every_listener_is_on_loopback_only(tmp_path, count):
    for props in node_properties(tmp_path, count):
        addresses = props["listeners"].split(",") + props["advertised.listeners"].split(",")
        addresses += [voter.split("@", 1)[1] for voter in props["controller.quorum.voters"].split(",")]
        for address in addresses:
            assert re.fullmatch(r"(\w+://)?127\.0\.0\.1:\d+", address), address


# --- layout ---------------------------------------------------------------------------------


def test_nodes_take_two_consecutive_ports_each_from_the_port_base(tmp_path):
    cluster = LocalCluster(tmp_path, port_base=40092)
    nodes = cluster.nodes(3)
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 40092, 40093),
        (2, 40094, 40095),
        (3, 40096, 40097),
    ]
    assert [n.directory for n in nodes] == [tmp_path.resolve() / "cluster" / f"node-{i}" for i in (1, 2, 3)]
    assert nodes[0].properties_file == tmp_path.resolve() / "cluster" / "node-1" / "node.properties"
    assert nodes[0].pid_file == tmp_path.resolve() / "cluster" / "node-1" / "broker.pid"


def test_a_new_cluster_is_not_formatted_and_not_running(tmp_path):
    cluster = LocalCluster(tmp_path, port_base=40092, libs_dir=settings.KAFKA_LIBS_DIR)
    assert cluster.formatted_broker_count() is None
    assert cluster.bootstrap_servers() == "127.0.0.1:40092"
    assert cluster.bootstrap_servers(3) == "127.0.0.1:40092,127.0.0.1:40094,127.0.0.1:40096"
    status = cluster.status()
    assert status.brokers == []
    assert status.bootstrap_servers == ""
    assert not status.running
    assert status.as_dict()["mode"] == "local"
    assert not (tmp_path / "cluster").exists()


def test_formatted_broker_count_needs_the_same_port_base(tmp_path):
    (tmp_path / "cluster").mkdir()
    state = {"cluster_id": new_cluster_id(), "brokers": 3, "port_base": 40092}
    (tmp_path / "cluster" / "cluster.json").write_text(json.dumps(state))
    assert LocalCluster(tmp_path, port_base=40092).formatted_broker_count() == 3
    assert LocalCluster(tmp_path, port_base=40092).bootstrap_servers() == (
        "127.0.0.1:40092,127.0.0.1:40094,127.0.0.1:40096"
    )
    # Storage formatted for other ports has other listeners in it: it does not count.
    assert LocalCluster(tmp_path, port_base=41092).formatted_broker_count() is None


def test_a_corrupt_state_file_counts_as_unformatted(tmp_path):
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "cluster.json").write_text("{not json")
    assert LocalCluster(tmp_path, port_base=40092).formatted_broker_count() is None


def test_status_of_a_formatted_cluster_with_nothing_running_shows_every_node_down(tmp_path):
    cluster = LocalCluster(tmp_path, port_base=40092, libs_dir=settings.KAFKA_LIBS_DIR)
    (tmp_path / "cluster").mkdir()
    cluster.state_file.write_text(json.dumps({"cluster_id": "x", "brokers": 2, "port_base": 40092}))
    status = cluster.status().as_dict()
    assert status["bootstrap_servers"] == "127.0.0.1:40092,127.0.0.1:40094"
    assert status["brokers"] == [
        {"node_id": 1, "pid": None, "port": 40092, "controller_port": 40093, "alive": False},
        {"node_id": 2, "pid": None, "port": 40094, "controller_port": 40095, "alive": False},
    ]


def test_up_refuses_zero_brokers(tmp_path):
    with pytest.raises(KafkaSetupError, match="at least one broker"):
        LocalCluster(tmp_path, port_base=40092, libs_dir=settings.KAFKA_LIBS_DIR).up(0)


def test_up_without_jars_says_how_to_fetch_them(tmp_path):
    cluster = LocalCluster(tmp_path, port_base=40092, libs_dir=tmp_path / "no-libs")
    with pytest.raises(KafkaSetupError, match=r"make setup") as excinfo:
        cluster.up(1)
    assert "manage.py kafka fetch" in str(excinfo.value)
    assert not cluster.cluster_dir.exists()


# --- cluster ids ----------------------------------------------------------------------------


def test_new_cluster_id_is_a_base64url_uuid_without_padding():
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_new_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xF8 puts 62 in the top six bits, which base64url writes as "-".
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=b"\x04" + bytes(15))
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(local_cluster.uuid, "uuid4", lambda: next(draws))
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    assert new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()


# --- kafka version --------------------------------------------------------------------------


def test_kafka_version_comes_from_the_broker_jar_name(tmp_path):
    for name in ("kafka-clients-4.1.1.jar", "kafka-server-4.1.1.jar", "kafka_2.13-4.1.1.jar", "zstd-jni-1.5.6-10.jar"):
        (tmp_path / name).touch()
    assert kafka_version(tmp_path) == "4.1.1"


def test_kafka_version_without_the_broker_jar_is_none(tmp_path):
    (tmp_path / "kafka-clients-4.1.1.jar").touch()
    assert kafka_version(tmp_path) is None
    assert kafka_version(tmp_path / "missing") is None


def test_kafka_version_of_the_fetched_jars_is_kafka_4():
    assert re.fullmatch(r"4\.\d+\.\d+", kafka_version(settings.KAFKA_LIBS_DIR) or "")


# --- java -----------------------------------------------------------------------------------


def fake_java(directory: Path, version_line: str) -> Path:
    """A `java` that reports a version on stderr, as the real one does."""
    directory.mkdir(parents=True, exist_ok=True)
    java = directory / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\necho 'Runtime Environment' >&2\n")
    java.chmod(0o755)
    return java


@pytest.mark.parametrize(
    ("version_line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25.0.1" 2025-10-21 LTS', 25),
        ('java version "1.8.0_392"', 8),
        ('java version "11.0.2" 2019-01-15 LTS', 11),
    ],
)
def test_java_major_version_reads_java_dash_version(tmp_path, version_line, major):
    assert _java_major_version(str(fake_java(tmp_path, version_line))) == major


def test_java_major_version_that_cannot_be_read_is_a_setup_error(tmp_path):
    with pytest.raises(KafkaSetupError, match="Could not tell which Java version"):
        _java_major_version(str(fake_java(tmp_path, "Segmentation fault")))


def test_java_executable_finds_java_17_on_path(tmp_path, monkeypatch):
    java = fake_java(tmp_path / "bin", 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(java.parent))
    assert java_executable() == str(java)


def test_java_executable_prefers_java_home(tmp_path, monkeypatch):
    fake_java(tmp_path / "path-bin", 'java version "1.8.0_392"')
    home_java = fake_java(tmp_path / "jdk-21" / "bin", 'openjdk version "21.0.4" 2024-07-16')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk-21"))
    monkeypatch.setenv("PATH", str(tmp_path / "path-bin"))
    assert java_executable() == str(home_java)


def test_java_8_is_refused_with_what_to_install(tmp_path, monkeypatch):
    java = fake_java(tmp_path / "bin", 'java version "1.8.0_392"')
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(java.parent))
    with pytest.raises(KafkaSetupError) as excinfo:
        java_executable()
    message = str(excinfo.value)
    assert "Java 17 or newer" in message
    assert "is Java 8" in message
    assert "openjdk-17" in message
    assert "docker compose" in message


def test_missing_java_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaSetupError) as excinfo:
        java_executable()
    message = str(excinfo.value)
    assert "Java 17 or newer" in message
    assert "openjdk-17-jdk-headless" in message
    assert "docker compose" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
