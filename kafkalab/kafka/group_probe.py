"""Consumer-group admin calls, made from a process of their own.

librdkafka can abort the whole process from its coordinator-request code when a broker dies
while a group call is in flight (an assertion on ``eonce->refcnt``). A lab polls its group
twice a second and brokers are killed on purpose here, so those calls run in this small
process: if it aborts, only it is gone, and the caller starts another.

    python -m kafkalab.kafka.group_probe watch '<json>'   # a snapshot line every interval
    python -m kafkalab.kafka.group_probe delete '<json>'  # delete the group

The JSON holds ``client`` (client config), ``group_id``, ``topic`` and, for watch,
``interval`` and ``parent_pid``. Needs confluent-kafka only, not Django.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.admin import admin_client
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.groups import group_committed, group_delete, group_describe
from kafkalab.kafka.topics import topic_partitions


def snapshot(admin: AdminClient, *, group_id: str, topic: str) -> dict:
    """The topic's partitions (leader, replicas, ISR, log start, log end, last stable offset),
    the group, and its committed offsets."""
    result: dict = {"partitions": [], "group": None, "committed": None, "error": None}
    try:
        partitions = topic_partitions(admin, topic)
        result["partitions"] = [dataclasses.asdict(p) for p in partitions]
        result["group"] = dataclasses.asdict(group_describe(admin, group_id, topic))
        result["committed"] = group_committed(admin, group_id, topic, [p.partition for p in partitions])
    except (KafkaException, KafkaUnavailable, KafkaRefused) as exc:
        result["error"] = str(exc)
    return result


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
    parent = params.get("parent_pid")
    while parent is None or os.getppid() == parent:  # the observer is gone: stop
        started = time.monotonic()
        _emit(snapshot(admin, group_id=params["group_id"], topic=params["topic"]))
        time.sleep(max(0.0, params.get("interval", 0.5) - (time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:  # the reader went away
        sys.exit(0)
