"""Topic administration and per-partition state, for lab topics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic, OffsetSpec

from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable

ADMIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class PartitionState:
    partition: int
    leader: int | None
    replicas: list[int]
    isr: list[int]
    log_start: int | None
    log_end: int | None
    last_stable: int | None


def _result(future, what: str):
    """Wait for an admin future; turn Kafka's answer into our two error kinds."""
    try:
        return future.result(timeout=ADMIN_TIMEOUT + 2)
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.code() in _UNAVAILABLE_CODES:
            raise KafkaUnavailable(f"{what}: Kafka did not answer ({error.str()})") from exc
        raise KafkaRefused(f"{what}: {error.str() if error else exc}", code=error.name() if error else None) from exc
    except TimeoutError as exc:
        raise KafkaUnavailable(f"{what}: Kafka did not answer within {ADMIN_TIMEOUT:.0f}s") from exc


_UNAVAILABLE_CODES = {
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_CONTROLLER,
    KafkaError.BROKER_NOT_AVAILABLE,
    KafkaError.LEADER_NOT_AVAILABLE,
}


def _metadata(admin: AdminClient, topic: str | None = None):
    try:
        return admin.list_topics(topic=topic, timeout=ADMIN_TIMEOUT)
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka did not send its metadata: {exc}") from exc


def broker_count(admin: AdminClient) -> int:
    return len(_metadata(admin).brokers)


def topic_create(
    admin: AdminClient,
    name: str,
    *,
    partitions: int,
    replication: int,
    config: dict[str, str],
    exist_ok: bool = False,
) -> None:
    """Create a topic, retrying while Kafka still finishes deleting an old one of that name.
    With `exist_ok`, a topic of that name that is there to stay (someone made it meanwhile) will do."""
    deadline = time.monotonic() + 30
    while True:
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replication, config=config)],
            request_timeout=ADMIN_TIMEOUT,
        )
        try:
            _result(futures[name], f"Creating topic {name}")
            _wait_for_metadata(admin, name, partitions)
            return
        except KafkaRefused as exc:
            if exc.code == "TOPIC_ALREADY_EXISTS" and exist_ok and topic_exists(admin, name):
                return
            # Deletion is asynchronous: the name stays taken for a moment after delete_topics.
            if exc.code == "TOPIC_ALREADY_EXISTS" and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise


def _wait_for_metadata(admin: AdminClient, name: str, partitions: int, timeout: float = 10.0) -> None:
    """Creation returns before every broker knows the topic; wait until metadata lists it."""
    deadline = time.monotonic() + timeout
    while partition_count(admin, name) != partitions:
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"Kafka created {name} but its metadata did not show it within {timeout:.0f}s")
        time.sleep(0.1)


def topic_exists(admin: AdminClient, name: str) -> bool:
    topic = _metadata(admin, name).topics.get(name)
    return topic is not None and topic.error is None


def topics_delete(admin: AdminClient, names: list[str]) -> None:
    """Delete topics and wait until Kafka no longer lists them. Missing topics are fine."""
    futures = admin.delete_topics(names, request_timeout=ADMIN_TIMEOUT)
    for name, future in futures.items():
        try:
            _result(future, f"Deleting topic {name}")
        except KafkaRefused as exc:
            if exc.code != "UNKNOWN_TOPIC_OR_PART":
                raise
    deadline = time.monotonic() + 30
    while any(topic_exists(admin, name) for name in names):
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"Kafka had not finished deleting {', '.join(names)} after 30s")
        time.sleep(0.2)


def partitions_increase(admin: AdminClient, name: str, *, total: int) -> None:
    """Ask Kafka for `total` partitions. Kafka refuses a decrease (INVALID_PARTITIONS)."""
    futures = admin.create_partitions([NewPartitions(name, total)], request_timeout=ADMIN_TIMEOUT)
    _result(futures[name], f"Changing the partitions of {name}")


def partition_count(admin: AdminClient, name: str) -> int | None:
    topic = _metadata(admin, name).topics.get(name)
    if topic is None or topic.error is not None:
        return None
    return len(topic.partitions)


def topic_partitions(admin: AdminClient, name: str) -> list[PartitionState]:
    """Leader, replicas, ISR and the three offsets (log start, log end, last stable) per partition."""
    found = topics_partitions(admin, [name])[name]
    if isinstance(found, Exception):
        raise found
    return found


def topics_partitions(
    admin: AdminClient, names: list[str]
) -> dict[str, list[PartitionState] | KafkaRefused | KafkaUnavailable]:
    """topic_partitions for several topics, in one request of each kind to Kafka."""
    futures = admin.describe_topics(TopicCollection(names), request_timeout=ADMIN_TIMEOUT) if names else {}
    descriptions: dict[str, object] = {}
    for name, future in futures.items():
        try:
            descriptions[name] = _result(future, f"Describing topic {name}")
        except (KafkaRefused, KafkaUnavailable) as exc:
            descriptions[name] = exc
    tps = [
        TopicPartition(name, p.id)
        for name, description in descriptions.items()
        if not isinstance(description, Exception)
        for p in description.partitions
    ]
    earliest = _offsets(admin, tps, OffsetSpec.earliest(), IsolationLevel.READ_UNCOMMITTED)
    latest = _offsets(admin, tps, OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED)
    stable = _offsets(admin, tps, OffsetSpec.latest(), IsolationLevel.READ_COMMITTED)
    return {
        name: description
        if isinstance(description, Exception)
        else [
            PartitionState(
                partition=p.id,
                leader=p.leader.id if p.leader is not None else None,
                replicas=[node.id for node in p.replicas],
                isr=[node.id for node in p.isr],
                log_start=earliest.get((name, p.id)),
                log_end=latest.get((name, p.id)),
                last_stable=stable.get((name, p.id)),
            )
            for p in sorted(description.partitions, key=lambda p: p.id)
        ]
        for name, description in descriptions.items()
    }


def _offsets(admin: AdminClient, tps: list[TopicPartition], spec, isolation) -> dict[tuple[str, int], int | None]:
    if not tps:
        return {}
    futures = admin.list_offsets(dict.fromkeys(tps, spec), isolation_level=isolation, request_timeout=ADMIN_TIMEOUT)
    offsets: dict[tuple[str, int], int | None] = {}
    for tp, future in futures.items():
        try:
            offsets[(tp.topic, tp.partition)] = _result(future, "Listing offsets").offset
        except (KafkaRefused, KafkaUnavailable):
            offsets[(tp.topic, tp.partition)] = None  # that partition's leader is down: unknown, not zero
    return offsets
