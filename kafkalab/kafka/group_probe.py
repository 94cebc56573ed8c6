"""Consumer-group admin calls, made from a process of their own.

librdkafka can abort the whole process from its coordinator-request code when a broker dies
while a group call is in flight (an assertion on ``eonce->refcnt``). Labs poll their groups
twice a second and brokers are killed on purpose here, so those calls run in this small
process: if it aborts, only it is gone, and the caller starts another.

    python -m kafkalab.kafka.group_probe watch '<json>'   # snapshots of every watched lab, each interval
    python -m kafkalab.kafka.group_probe delete '<json>'  # delete the group

One watch process serves every lab its runner watches: it reads the labs to watch from stdin
(a JSON line ``{"labs": {group_id: topic, ...}}`` replaces the set) and writes, every interval,
one line ``{"snapshots": {group_id: snapshot, ...}}``, asking Kafka for all labs in one request of
each kind (one per group for committed offsets, as librdkafka wants), so thirty labs cost about
what one does. The JSON argument holds ``client`` (client config) and, for watch, ``interval``
and ``parent_pid``; for delete, ``group_id``. Needs confluent-kafka only, not Django.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.admin import admin_client
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.groups import group_delete, groups_committed, groups_describe
from kafkalab.kafka.topics import topics_partitions


def snapshots(admin: AdminClient, labs: dict[str, str]) -> dict[str, dict]:
    """Per group (group id → topic): the topic's partitions (leader, replicas, ISR, log start,
    log end, last stable offset), the group, and its committed offsets."""
    try:
        partitions = topics_partitions(admin, sorted(set(labs.values())))
        described = groups_describe(admin, labs)
        committed = groups_committed(
            admin,
            {
                group_id: (topic, [p.partition for p in partitions[topic]])
                for group_id, topic in labs.items()
                if not isinstance(partitions.get(topic), Exception)
            },
        )
    except (KafkaException, KafkaUnavailable, KafkaRefused) as exc:
        return {group_id: _snapshot_of(None, None, None, exc) for group_id in labs}
    return {
        group_id: _snapshot_of(partitions.get(topic), described.get(group_id), committed.get(group_id), None)
        for group_id, topic in labs.items()
    }


def _snapshot_of(partitions, group, committed, error) -> dict:
    """One lab's snapshot as plain data; the first thing Kafka refused is its error."""
    errors = [item for item in (error, partitions, group, committed) if isinstance(item, Exception)]
    return {
        "partitions": [dataclasses.asdict(p) for p in partitions] if isinstance(partitions, list) else [],
        "group": dataclasses.asdict(group) if group is not None and not isinstance(group, Exception) else None,
        "committed": {str(p): o for p, o in committed.items()} if isinstance(committed, dict) else None,
        "error": str(errors[0]) if errors else None,
    }


class WatchSetReader:
    """The watch sets the runner writes to stdin, newest wins. Reads the raw descriptor: a
    buffered readline would keep a second line in its buffer, where select() can't see it."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self.pending = b""

    def newest(self, current: dict[str, str], timeout: float) -> dict[str, str] | None:
        """The newest set written, waiting up to `timeout` for one; None when stdin closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        while ready:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    current = json.loads(line).get("labs", {})
            ready, _, _ = select.select([self.fd], [], [], 0)
        return current


def _emit(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"watch", "delete"}:
        print("usage: python -m kafkalab.kafka.group_probe watch|delete '<json>'", file=sys.stderr)
        return 2
    mode, params = argv[1], json.loads(argv[2])
    admin = admin_client(params["client"])
    if mode == "delete":
        try:
            group_delete(admin, params["group_id"])
            _emit({"deleted": True})
        except KafkaRefused as exc:
            _emit({"deleted": False, "refused": str(exc)})
        except KafkaUnavailable as exc:
            _emit({"deleted": False, "error": str(exc)})
        return 0
    return watch(admin, interval=params.get("interval", 0.5), parent=params.get("parent_pid"))


def watch(admin: AdminClient, *, interval: float, parent: int | None) -> int:
    labs: dict[str, str] = {}
    watch_sets = WatchSetReader()
    while parent is None or os.getppid() == parent:  # the runner is gone: stop
        started = time.monotonic()
        if labs:
            _emit({"snapshots": snapshots(admin, labs)})
        wait = max(0.0, interval - (time.monotonic() - started))
        labs = watch_sets.newest(labs, wait)
        if labs is None:
            return 0
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:  # the reader went away
        sys.exit(0)
