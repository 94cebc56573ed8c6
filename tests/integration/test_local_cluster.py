"""LocalCluster on real brokers: start, restart, stop, and the ways starting can go wrong."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import psutil
import pytest

from kafkalab.kafka.admin import admin_client, broker_ids, broker_listening, describe_cluster
from kafkalab.kafka.errors import KafkaSetupError
from kafkalab.kafka.local_cluster import BrokerStatus, LocalCluster, kafka_version
from tests.integration.conftest import (
    UP_TIMEOUT,
    cluster_processes,
    make_local_cluster,
    pid_files,
    stopped_afterwards,
)

# Port bases of their own (each node takes two ports), apart from 9092… and 29092…, and above
# the kernel's ephemeral range (32768–60999) so no client connection can be holding them.
ONE_NODE_PORTS = 61092
THREE_NODE_PORTS = 61192
STALE_PID_PORTS = 61292
CONFLICT_PORTS = 61392


def assert_is_broker_of(pid: int, cluster: LocalCluster, node_id: int) -> None:
    cmdline = psutil.Process(pid).cmdline()
    assert "kafka.Kafka" in cmdline
    assert str(cluster.nodes(node_id)[-1].properties_file) in cmdline


def loopback_listening_ports(pid: int) -> set[int]:
    """The TCP ports the process listens on, asserting each is bound to 127.0.0.1 only."""
    listening = [c for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    for conn in listening:
        assert conn.laddr.ip in {"127.0.0.1", "::ffff:127.0.0.1"}, conn
    return {conn.laddr.port for conn in listening}


def kill_and_reap(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(timeout=30)


def pids(cluster: LocalCluster) -> dict[int, int | None]:
    return {broker.node_id: broker.pid for broker in cluster.status().brokers}


# --- one node -------------------------------------------------------------------------------


def test_one_node_up_status_idempotent_up_and_down(make_cluster):
    cluster = make_cluster(ONE_NODE_PORTS)
    result = cluster.up(1, timeout=UP_TIMEOUT)
    assert result.started == [1]
    assert result.bootstrap_servers == "127.0.0.1:61092"

    status = cluster.status()
    [broker] = status.brokers
    assert broker == BrokerStatus(node_id=1, pid=broker.pid, port=61092, controller_port=61093, alive=True)
    assert status.running
    assert status.bootstrap_servers == "127.0.0.1:61092"
    assert status.kafka_version == kafka_version(cluster.libs_dir)
    assert_is_broker_of(broker.pid, cluster, 1)
    assert cluster.nodes(1)[0].pid_file.read_text().strip() == str(broker.pid)
    assert loopback_listening_ports(broker.pid) == {61092, 61093}

    assert broker_ids("127.0.0.1:61092") == {1}
    description = describe_cluster(admin_client({"bootstrap.servers": "127.0.0.1:61092"}))
    assert [(b.node_id, b.address) for b in description.brokers] == [(1, "127.0.0.1:61092")]
    assert description.controller_id == 1

    again = cluster.up(1, timeout=UP_TIMEOUT)
    assert again.started == []
    assert again.bootstrap_servers == "127.0.0.1:61092"
    assert pids(cluster) == {1: broker.pid}

    with pytest.raises(KafkaSetupError, match="kafka down"):
        cluster.up(3, timeout=UP_TIMEOUT)
    assert pids(cluster) == {1: broker.pid}
    assert not cluster.wipe(), "a running cluster's storage is never wiped"
    assert cluster.formatted_broker_count() == 1

    assert cluster.down() == [1]
    assert not psutil.pid_exists(broker.pid) or psutil.Process(broker.pid).status() == psutil.STATUS_ZOMBIE
    assert cluster_processes(cluster) == []
    assert pid_files(cluster) == []
    assert cluster.status().brokers == [
        BrokerStatus(node_id=1, pid=None, port=61092, controller_port=61093, alive=False)
    ]
    assert not broker_listening("127.0.0.1", 61092)

    assert cluster.down() == []
    assert cluster.wipe(), "a stopped cluster's storage is wiped"
    assert not cluster.cluster_dir.exists()
    assert cluster.formatted_broker_count() is None


# --- three nodes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = make_local_cluster(tmp_path_factory.mktemp("three-nodes"), THREE_NODE_PORTS)
    with stopped_afterwards(cluster):
        cluster.up(3, timeout=UP_TIMEOUT)
        yield cluster


def test_three_nodes_are_alive_and_registered(three_nodes):
    status = three_nodes.status()
    assert [(b.node_id, b.port, b.controller_port, b.alive) for b in status.brokers] == [
        (1, 61192, 61193, True),
        (2, 61194, 61195, True),
        (3, 61196, 61197, True),
    ]
    assert len({b.pid for b in status.brokers}) == 3
    for broker in status.brokers:
        assert_is_broker_of(broker.pid, three_nodes, broker.node_id)
        assert loopback_listening_ports(broker.pid) == {broker.port, broker.controller_port}
    assert status.bootstrap_servers == "127.0.0.1:61192,127.0.0.1:61194,127.0.0.1:61196"
    assert broker_ids(status.bootstrap_servers) == {1, 2, 3}


def test_up_restarts_only_a_killed_broker(three_nodes):
    before = pids(three_nodes)
    kill_and_reap(before[2])
    status = three_nodes.status()
    assert [(b.node_id, b.alive) for b in status.brokers] == [(1, True), (2, False), (3, True)]
    assert not three_nodes.nodes(3)[1].pid_file.exists()

    result = three_nodes.up(3, timeout=UP_TIMEOUT)

    assert result.started == [2]
    after = pids(three_nodes)
    assert after[1] == before[1]
    assert after[3] == before[3]
    assert after[2] not in (None, before[2])
    assert_is_broker_of(after[2], three_nodes, 2)
    # Ready means ready: the restarted node accepts clients once up() returns.
    assert broker_listening("127.0.0.1", 61194)
    assert broker_ids(result.bootstrap_servers) == {1, 2, 3}


def test_up_with_another_size_while_running_says_to_run_kafka_down(three_nodes):
    before = pids(three_nodes)
    with pytest.raises(KafkaSetupError, match=r"of 3 broker\(s\) is already running") as excinfo:
        three_nodes.up(1, timeout=UP_TIMEOUT)
    assert "kafka down" in str(excinfo.value)
    assert pids(three_nodes) == before
    assert three_nodes.formatted_broker_count() == 3


# --- stale pid files ------------------------------------------------------------------------


def test_stale_pid_files_are_cleaned_up_and_lost_ones_recovered(make_cluster):
    cluster = make_cluster(STALE_PID_PORTS)
    cluster.up(1, timeout=UP_TIMEOUT)
    node = cluster.nodes(1)[0]

    # A broker that crashed leaves its pid file behind, pointing at a dead pid.
    crashed = int(node.pid_file.read_text())
    kill_and_reap(crashed)
    assert node.pid_file.read_text().strip() == str(crashed)
    [broker] = cluster.status().brokers
    assert (broker.alive, broker.pid) == (False, None)
    assert not node.pid_file.exists()

    # The pid may since belong to another program: never ours to report, stop or kill.
    other_program = subprocess.Popen(["sleep", "60"])
    try:
        node.pid_file.write_text(str(other_program.pid))
        [broker] = cluster.status().brokers
        assert (broker.alive, broker.pid) == (False, None)
        assert not node.pid_file.exists()

        node.pid_file.write_text(str(other_program.pid))
        assert cluster.down() == []
        assert other_program.poll() is None

        node.pid_file.write_text(f"{other_program.pid}\n")
        result = cluster.up(1, timeout=UP_TIMEOUT)
        assert result.started == [1]
        [broker] = cluster.status().brokers
        assert broker.alive
        assert broker.pid != other_program.pid
        assert_is_broker_of(broker.pid, cluster, 1)
        assert node.pid_file.read_text().strip() == str(broker.pid)
        assert broker_ids(result.bootstrap_servers) == {1}
        assert other_program.poll() is None
    finally:
        other_program.kill()
        other_program.wait()

    # A garbled or lost pid file must not orphan a running broker: status and down find it.
    node.pid_file.write_text("not a pid")
    [found] = cluster.status().brokers
    assert (found.alive, found.pid) == (True, broker.pid)
    assert node.pid_file.read_text().strip() == str(broker.pid)
    node.pid_file.unlink()
    assert cluster.down() == [1]
    assert cluster_processes(cluster) == []


# --- port conflicts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("brokers", "port_base", "taken_offset"),
    [
        (1, CONFLICT_PORTS, 0),  # node 1's client port
        (2, CONFLICT_PORTS + 10, 3),  # node 2's controller port: node 1 must not start either
    ],
)
def test_a_taken_port_is_named_and_nothing_is_left_running(make_cluster, brokers, port_base, taken_offset):
    cluster = make_cluster(port_base)
    taken = port_base + taken_offset
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with pytest.raises(KafkaSetupError) as excinfo:
            cluster.up(brokers, timeout=30)
    message = str(excinfo.value)
    assert f"Port {taken} on 127.0.0.1 is already in use" in message
    assert f"pid {os.getpid()}" in message
    assert "KAFKA_LOCAL_PORT_BASE" in message
    assert f"now {port_base}" in message
    assert cluster_processes(cluster) == []
    assert pid_files(cluster) == []
    assert [broker.alive for broker in cluster.status().brokers] == [False] * brokers
