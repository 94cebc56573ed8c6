"""Consumer group state as Kafka's group coordinator reports it."""

from __future__ import annotations

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


def group_describe(admin: AdminClient, group_id: str, topic: str) -> GroupDescription:
    try:
        result = admin.describe_consumer_groups([group_id], request_timeout=GROUP_TIMEOUT)[group_id].result(
            timeout=GROUP_TIMEOUT + 1
        )
    except (KafkaException, TimeoutError) as exc:
        raise KafkaUnavailable(f"Kafka did not describe group {group_id}: {exc}") from exc
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


def group_committed(admin: AdminClient, group_id: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """Committed offset per partition; partitions the group never committed are left out."""
    if not partitions:
        return {}
    request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, p) for p in partitions])
    try:
        result = admin.list_consumer_group_offsets([request], request_timeout=GROUP_TIMEOUT)[group_id].result(
            timeout=GROUP_TIMEOUT + 1
        )
    except (KafkaException, TimeoutError) as exc:
        raise KafkaUnavailable(f"Kafka did not list the offsets of {group_id}: {exc}") from exc
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def group_delete(admin: AdminClient, group_id: str) -> None:
    """Delete a consumer group and its committed offsets. A group that doesn't exist is fine."""
    try:
        admin.delete_consumer_groups([group_id], request_timeout=GROUP_TIMEOUT)[group_id].result(
            timeout=GROUP_TIMEOUT + 1
        )
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        code = error.name() if hasattr(error, "name") else ""
        if code in {"GROUP_ID_NOT_FOUND"}:
            return
        if code in {"NON_EMPTY_GROUP"}:
            raise KafkaRefused(f"the group {group_id} still has members", code=code) from exc
        raise KafkaUnavailable(f"Kafka did not delete group {group_id}: {exc}") from exc
    except TimeoutError as exc:
        raise KafkaUnavailable(f"Kafka did not delete group {group_id} in time") from exc
