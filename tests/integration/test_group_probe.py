"""The group probe: one process watching every lab of its runner, restarted when it dies.

librdkafka may abort a process whose group call meets a dying broker, so those calls live in the
probe; here it is killed outright (as such an abort would end it) and must come back on its own.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
from confluent_kafka.admin import AdminClient, NewTopic

from kafkalab.kafka.group_watch import ProbeHub

TIMEOUT = 60.0  # a bound on waiting, not an expectation
PROBE_MODULE = "kafkalab.kafka.group_probe"


def probes() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children():
        try:
            if PROBE_MODULE in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:  # it just ended
            continue
    return found


def wait_for(probe, what: str):
    deadline = time.monotonic() + TIMEOUT
    while not (value := probe()):
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.1)
    return value


def test_one_probe_watches_several_labs_and_comes_back_when_killed(kafka_cluster):
    bootstrap = kafka_cluster.bootstrap_servers()
    topics = [f"probe-test-{os.getpid()}-{n}" for n in range(3)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in topics]).values():
        future.result(timeout=TIMEOUT)
    hub = ProbeHub(client={"bootstrap.servers": bootstrap}, interval=0.2)
    try:
        for topic in topics:
            hub.watch(group_id=f"{topic}.group", topic=topic)

        # A brand-new topic's partitions may reach the probe's metadata a moment after the topic.
        snapshots = wait_for(
            lambda: (
                all((s := hub.latest(f"{t}.group")) is not None and s.partitions for t in topics)
                and [hub.latest(f"{t}.group") for t in topics]
            ),
            "a snapshot of every lab, with its partitions",
        )
        assert [[p.partition for p in s.partitions] for s in snapshots] == [[0, 1]] * 3
        first = hub.pid
        assert first in {p.pid for p in probes()}, "the probe is a process of its own"

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: hub.pid not in (None, first), "another probe starting")
        hub.unwatch(f"{topics[0]}.group")
        wait_for(
            lambda: hub.latest(f"{topics[1]}.group") is not None and hub.latest(f"{topics[1]}.group").error is None,
            "snapshots again, from the new probe",
        )
        assert hub.latest(f"{topics[0]}.group") is None, "an unwatched lab is forgotten"
    finally:
        for topic in topics:
            hub.unwatch(f"{topic}.group")
        if hub.pid is not None:
            os.kill(hub.pid, signal.SIGKILL)
        admin.delete_topics(topics)
