"""The lab's topics: more partitions (and which keys move because of them), the dead-letter and invoices topics."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from kafkalab.kafka import topics as kafka_topics
from kafkalab.kafka.admin import shared_admin
from kafkalab.kafka.config import client_config
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.notification_service import DEAD_LETTER_MAX_BYTES
from kafkalab.kafka.partitioner import partition_for
from kafkalab.kafka.producer import producers_refresh
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab, LabOrder
from kafkalab.runner.protocol import LabRefresh, runner_send_sync

KEYS_CHECKED = 200
# The dead letters are one lane on the page, in the order they were set aside.
DEAD_LETTER_PARTITIONS = 1
# A new lab's orders topic has 4 partitions: its invoices topic starts with as many.
INVOICE_PARTITIONS = 4


@dataclass(frozen=True)
class KeyMove:
    key: str
    before: int
    after: int


@dataclass(frozen=True)
class PartitionChange:
    before: int
    after: int
    moves: list[KeyMove]
    keys_checked: int


def topic_partitions_increase(*, lab: Lab, total: int) -> PartitionChange:
    """Grow the orders topic to `total` partitions and show which recent keys now hash elsewhere."""
    if total > settings.LAB_MAX_PARTITIONS:
        raise LabError(f"A lab topic may have at most {settings.LAB_MAX_PARTITIONS} partitions.")
    admin = shared_admin(client_config())
    try:
        before = kafka_topics.partition_count(admin, lab.orders_topic)
        if before is None:
            raise LabError("This lab's orders topic is missing; reset the lab to recreate it.")
        if total == before:
            raise LabError(f"The topic already has {before} partitions.")
        kafka_topics.partitions_increase(admin, lab.orders_topic, total=total)
    except KafkaRefused as exc:
        if total < before:
            raise LabError(
                f"Kafka refused: a topic's partition count can only grow ({before} → {total} asked). "
                "Removing a partition would drop its records and break the order of its keys. "
                f"Kafka said: {exc}"
            ) from exc
        raise LabError(f"Kafka refused: {exc}") from exc
    except KafkaUnavailable as exc:
        raise LabError(f"Kafka did not answer, so the partition count is unchanged: {exc}") from exc
    producers_refresh(lab.orders_topic, expected=total, config=client_config())
    runner_send_sync(LabRefresh(lab_id=lab.pk))
    return PartitionChange(before=before, after=total, **_key_moves(lab, before, total))


def _key_moves(lab: Lab, before: int, after: int) -> dict:
    orders = lab.orders.filter(acknowledged=True).exclude(key_strategy=LabOrder.KeyStrategy.NONE)[:KEYS_CHECKED]
    keys = list(dict.fromkeys(order.key for order in orders if order.key))
    moves = [
        KeyMove(key=key.decode(), before=partition_for(key, before), after=partition_for(key, after))
        for key in keys
        if partition_for(key, before) != partition_for(key, after)
    ]
    return {"moves": moves, "keys_checked": len(keys)}


def dead_letter_topic_ensure(*, lab: Lab, fresh: bool = False) -> None:
    """The lab's dead-letter topic, made if it is missing (labs older than it have none). It takes
    any record of the orders topic with the headers that say why it was set aside. `fresh`: it was
    just deleted, so make it without asking first (see lab_topics_ensure)."""
    admin = shared_admin(client_config())
    try:
        if not fresh and kafka_topics.partition_count(admin, lab.dlq_topic) is not None:
            return
        replication = min(3, kafka_topics.broker_count(admin))
        kafka_topics.topic_create(
            admin,
            lab.dlq_topic,
            partitions=DEAD_LETTER_PARTITIONS,
            replication=replication,
            config={"min.insync.replicas": str(min(2, replication)), "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
            # Fresh, the name may still be taken by the deletion: wait for it rather than believe it.
            exist_ok=not fresh,
        )
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not create this lab's dead-letter topic: {exc}") from exc


def invoices_topic_ensure(*, lab: Lab, fresh: bool = False) -> None:
    """The lab's invoices topic (BillingService writes it), made if missing, with as many
    partitions as the orders topic has then (4 for a new lab). `fresh` as for the dead-letter topic."""
    admin = shared_admin(client_config())
    try:
        if not fresh and kafka_topics.partition_count(admin, lab.invoices_topic) is not None:
            return
        partitions = (None if fresh else kafka_topics.partition_count(admin, lab.orders_topic)) or INVOICE_PARTITIONS
        replication = min(3, kafka_topics.broker_count(admin))
        kafka_topics.topic_create(
            admin,
            lab.invoices_topic,
            partitions=partitions,
            replication=replication,
            config={"min.insync.replicas": str(min(2, replication))},
            exist_ok=not fresh,
        )
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not create this lab's invoices topic: {exc}") from exc
