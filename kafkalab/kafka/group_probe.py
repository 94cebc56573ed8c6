"""Consumer-group admin calls, made from a process of their own.

librdkafka can abort the whole process from its coordinator-request code when a broker dies
while a group call is in flight (an assertion on ``eonce->refcnt``). A lab polls its group
twice a second and brokers are killed on purpose here, so those calls run in this small
process: if it aborts, only it is gone, and the caller starts another.

    python -m kafkalab.kafka.group_probe watch '<json>'   # a snapshot line every interval
    python -m kafkalab.kafka.group_probe once '<json>'    # one snapshot line
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

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafkalab.kafka.admin import admin_client
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.groups import group_committed, group_delete, group_describe

PROBE_TIMEOUT = 5.0


def snapshot(admin: AdminClient, *, group_id: str, topic: str) -> dict:
    """Partitions with their log start and end, the group, and its committed offsets."""
    result: dict = {"partitions": {}, "group": None, "committed": None, "error": None}
    try:
        metadata = admin.list_topics(topic=topic, timeout=PROBE_TIMEOUT)
        described = metadata.topics.get(topic)
        partitions = sorted(described.partitions) if described is not None and described.error is None else []
        result["partitions"] = _watermarks(admin, topic, partitions)
        result["group"] = dataclasses.asdict(group_describe(admin, group_id, topic))
        result["committed"] = group_committed(admin, group_id, topic, partitions)
    except (KafkaException, KafkaUnavailable, KafkaRefused) as exc:
        result["error"] = str(exc)
    return result


def _watermarks(admin: AdminClient, topic: str, partitions: list[int]) -> dict[str, list[int]]:
    if not partitions:
        return {}
    tps = [TopicPartition(topic, p) for p in partitions]
    low = admin.list_offsets({tp: OffsetSpec.earliest() for tp in tps}, request_timeout=PROBE_TIMEOUT)
    high = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=PROBE_TIMEOUT)
    marks = {}
    for tp in tps:
        try:
            marks[str(tp.partition)] = [
                low[tp].result(timeout=PROBE_TIMEOUT).offset,
                high[tp].result(timeout=PROBE_TIMEOUT).offset,
            ]
        except (KafkaException, TimeoutError):
            continue  # its leader is down: unknown this round
    return marks


def _emit(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"watch", "once", "delete"}:
        print("usage: python -m kafkalab.kafka.group_probe watch|once|delete '<json>'", file=sys.stderr)
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
    if mode == "once":
        _emit(snapshot(admin, group_id=params["group_id"], topic=params["topic"]))
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
