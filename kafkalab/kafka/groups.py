"""Consumer group state as Kafka's group coordinator reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable

GROUP_TIMEOUT = 5.0


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str
    partitions: list[int]


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str  # e.g. STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE, EMPTY, DEAD
    protocol: str  # CLASSIC or CONSUMER (KIP-848)
    assignor: str
    coordinator: int | None
    members: list[GroupMember] = field(default_factory=list)

    @property
    def state_label(self) -> str:
        return self.state.replace("_", " ").title()


def groups_describe(admin: AdminClient, topics: dict[str, str]) -> dict[str, GroupDescription | KafkaUnavailable]:
    """Each group (group id → the topic whose assignment counts), in one request to Kafka."""
    if not topics:
        return {}
    futures = admin.describe_consumer_groups(list(topics), request_timeout=GROUP_TIMEOUT)
    described: dict[str, GroupDescription | KafkaUnavailable] = {}
    for group_id, future in futures.items():
        try:
            described[group_id] = _description(future.result(timeout=GROUP_TIMEOUT + 1), group_id, topics[group_id])
        except (KafkaException, TimeoutError) as exc:
            described[group_id] = KafkaUnavailable(f"Kafka did not describe group {group_id}: {exc}")
    return described


def _description(result, group_id: str, topic: str) -> GroupDescription:
    members = [
        GroupMember(
            member_id=member.member_id,
            client_id=member.client_id,
            host=member.host,
            partitions=sorted(
                tp.partition
                for tp in (member.assignment.topic_partitions if member.assignment else [])
                if tp.topic == topic
            ),
        )
        for member in result.members
    ]
    return GroupDescription(
        group_id=group_id,
        state=result.state.name,
        protocol=getattr(result.type, "name", "CLASSIC"),
        assignor=result.partition_assignor or "",
        coordinator=result.coordinator.id if result.coordinator is not None else None,
        members=sorted(members, key=lambda m: m.client_id),
    )


def groups_committed(
    admin: AdminClient, wanted: dict[str, tuple[str, list[int]]]
) -> dict[str, dict[int, int] | KafkaUnavailable]:
    """Committed offsets per partition of each group (group id → its topic and partitions).
    librdkafka takes one group per request, so the requests go out together and are awaited after."""
    futures = {
        group_id: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, p) for p in partitions])],
            request_timeout=GROUP_TIMEOUT,
        )[group_id]
        for group_id, (topic, partitions) in wanted.items()
        if partitions
    }
    committed: dict[str, dict[int, int] | KafkaUnavailable] = {group_id: {} for group_id in wanted}
    for group_id, future in futures.items():
        try:
            result = future.result(timeout=GROUP_TIMEOUT + 1)
            committed[group_id] = {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}
        except (KafkaException, TimeoutError) as exc:
            committed[group_id] = KafkaUnavailable(f"Kafka did not list the offsets of {group_id}: {exc}")
    return committed


# The group's coordinator moved or is loading (a broker restarted, leadership of its offsets
# partition changed): Kafka says to ask again, and the next answer usually comes from the new one.
COORDINATOR_MOVING = {"NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS"}
COORDINATOR_RETRIES = 5
COORDINATOR_RETRY_WAIT = 0.5  # seconds


def group_delete(admin: AdminClient, group_id: str) -> None:
    """Delete a consumer group and its committed offsets. A group that doesn't exist is fine."""
    for attempt in range(COORDINATOR_RETRIES):
        try:
            admin.delete_consumer_groups([group_id], request_timeout=GROUP_TIMEOUT)[group_id].result(
                timeout=GROUP_TIMEOUT + 1
            )
            return
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.name() if hasattr(error, "name") else ""
            if code == "GROUP_ID_NOT_FOUND":
                return
            if code == "NON_EMPTY_GROUP":
                raise KafkaRefused(f"the group {group_id} still has members", code=code) from exc
            if code in COORDINATOR_MOVING and attempt + 1 < COORDINATOR_RETRIES:
                time.sleep(COORDINATOR_RETRY_WAIT)
                continue
            raise KafkaUnavailable(f"Kafka did not delete group {group_id}: {exc}") from exc
        except TimeoutError as exc:
            raise KafkaUnavailable(f"Kafka did not delete group {group_id} in time") from exc
