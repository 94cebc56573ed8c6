"""Lab behaviour: create and reset labs, produce orders, change partitions, read state.

Every function takes keyword-only arguments and talks to Kafka only through kafkalab.kafka.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from kafkalab.kafka import topics as kafka_topics
from kafkalab.kafka.admin import shared_admin
from kafkalab.kafka.config import bootstrap_servers, client_config
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.partitioner import explain_partition, partition_for
from kafkalab.kafka.producer import OutgoingRecord, SendResult, shared_producer
from kafkalab.kafka.tail import read_record
from kafkalab.labs import events
from kafkalab.labs.models import Lab, LabOrder
from kafkalab.runner.embedded import RUNNER_CHANNEL

INITIAL_PARTITIONS = 4


class LabError(Exception):
    """An operation was refused or failed; the message is for the learner."""


# --- Labs -----------------------------------------------------------------------------------


def lab_create() -> Lab:
    """A new lab with its topics. Nothing is kept if Kafka cannot create them."""
    with transaction.atomic():
        lab = Lab.objects.create()
        # A new lab starts empty, even if topics of that name survive from an older database.
        _topics_delete(lab=lab)
        lab_topics_ensure(lab=lab)
    return lab


def _topics_delete(*, lab: Lab) -> None:
    try:
        kafka_topics.topics_delete(shared_admin(client_config()), lab.topics)
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not delete this lab's old topics: {exc}") from exc


def lab_topics_ensure(*, lab: Lab) -> None:
    admin = shared_admin(client_config())
    try:
        if kafka_topics.partition_count(admin, lab.orders_topic) is None:
            replication = min(3, kafka_topics.broker_count(admin))
            kafka_topics.topic_create(
                admin,
                lab.orders_topic,
                partitions=INITIAL_PARTITIONS,
                replication=replication,
                # With 3 replicas, acks=all still succeeds with one broker down.
                config={"min.insync.replicas": str(min(2, replication))},
            )
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not create this lab's topics: {exc}") from exc


def lab_reset(*, lab: Lab) -> None:
    """Delete and recreate the lab's topics and forget its orders."""
    _topics_delete(lab=lab)
    lab.orders.all().delete()
    lab_topics_ensure(lab=lab)
    runner_notify(lab=lab, command="lab.reset")


def runner_notify(*, lab: Lab, command: str) -> None:
    async_to_sync(get_channel_layer().send)(RUNNER_CHANNEL, {"type": command, "lab_id": lab.pk})


# --- Producing ------------------------------------------------------------------------------


@dataclass
class ProduceOutcome:
    """What Kafka acknowledged, and what it did not."""

    requested: int
    result: SendResult
    orders: list[LabOrder] = field(default_factory=list)

    @property
    def written(self) -> int:
        return len(self.result.delivered)

    @property
    def failed(self) -> int:
        return self.requested - self.written

    @property
    def per_partition(self) -> list[tuple[int, int]]:
        """How many acknowledged records went to each partition."""
        counts: dict[int, int] = {}
        for delivered in self.result.delivered:
            counts[delivered.partition] = counts.get(delivered.partition, 0) + 1
        return sorted(counts.items())

    @property
    def first_error(self) -> str | None:
        return self.result.errors[0] if self.result.errors else None


class ProduceBudget:
    """A token bucket per lab: bursts up to LAB_MAX_BURST, refilled at LAB_PRODUCE_RATE/s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, lab_id: int, count: int) -> None:
        capacity = float(settings.LAB_MAX_BURST)
        rate = float(settings.LAB_PRODUCE_RATE)
        with self._lock:
            tokens, stamp = self._buckets.get(lab_id, (capacity, time.monotonic()))
            now = time.monotonic()
            tokens = min(capacity, tokens + (now - stamp) * rate)
            if count > tokens:
                wait = (count - tokens) / rate
                self._buckets[lab_id] = (tokens, now)
                raise LabError(
                    f"Slow down: a lab may write {settings.LAB_PRODUCE_RATE} events per second. "
                    f"Try again in {wait:.1f} s."
                )
            self._buckets[lab_id] = (tokens - count, now)


produce_budget = ProduceBudget()


def _send(*, lab: Lab, records: list[OutgoingRecord]) -> SendResult:
    for record in records:
        if len(record.value) > settings.LAB_MAX_PAYLOAD_BYTES:
            raise LabError(
                f"This event is {len(record.value) / 1024:.1f} KiB; a lab accepts at most "
                f"{settings.LAB_MAX_PAYLOAD_BYTES / 1024:.0f} KiB per event. Nothing was sent."
            )
    produce_budget.take(lab.pk, len(records))
    return shared_producer(client_config()).send(lab.orders_topic, records)


def _record_for(order: LabOrder, event_type: str, payload: dict) -> OutgoingRecord:
    return OutgoingRecord(key=order.key, value=events.encode(payload), headers=events.headers_for(event_type))


def order_create(*, lab: Lab, order_id: str, customer_id: str, items: list[dict], key_strategy: str) -> ProduceOutcome:
    if lab.orders.filter(order_id=order_id).exists():
        raise LabError(f"Order {order_id} already exists in this lab; pick another orderId.")
    order = LabOrder(lab=lab, order_id=order_id, customer_id=customer_id, key_strategy=key_strategy)
    payload = events.order_created(order_id=order_id, customer_id=customer_id, items=items)
    result = _send(lab=lab, records=[_record_for(order, LabOrder.Status.CREATED, payload)])
    # Only what Kafka acknowledged is remembered, so a failed order leaves no trace.
    if result.complete:
        order.save()
    return ProduceOutcome(requested=1, result=result, orders=[order] if result.complete else [])


def orders_burst(*, lab: Lab, count: int, key_strategy: str) -> ProduceOutcome:
    if not 1 <= count <= settings.LAB_MAX_BURST:
        raise LabError(f"A burst is 1 to {settings.LAB_MAX_BURST} orders.")
    rng = random.Random()
    orders, records = [], []
    for _ in range(count):
        body = events.sample_order(rng)
        order = LabOrder(lab=lab, order_id=body["orderId"], customer_id=body["customerId"], key_strategy=key_strategy)
        orders.append(order)
        records.append(_record_for(order, LabOrder.Status.CREATED, body))
    result = _send(lab=lab, records=records)
    if result.complete:
        LabOrder.objects.bulk_create(orders)
        return ProduceOutcome(requested=count, result=result, orders=orders)
    # Some records may be in Kafka even though others failed; which ones is in the topic itself.
    return ProduceOutcome(requested=count, result=result)


def order_advance(*, lab: Lab, order_id: str) -> ProduceOutcome:
    """Send the order's next lifecycle event (Paid, then Shipped), keyed like its OrderCreated."""
    order = lab.orders.filter(order_id=order_id).first()
    if order is None:
        raise LabError("That order is not in this lab.")
    next_status = order.next_status
    if next_status is None:
        raise LabError(f"Order {order.order_id[:8]} is already shipped.")
    payload = events.order_status_changed(order_id=order.order_id, customer_id=order.customer_id)
    result = _send(lab=lab, records=[_record_for(order, next_status, payload)])
    if result.complete:
        order.status = next_status
        order.save(update_fields=["status"])
    return ProduceOutcome(requested=1, result=result, orders=[order])


# --- Partitions -----------------------------------------------------------------------------


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
    shared_producer(client_config()).partitions_refresh(lab.orders_topic, expected=total)
    runner_notify(lab=lab, command="lab.refresh")
    keys = [order.key for order in lab.orders.exclude(key_strategy=LabOrder.KeyStrategy.NONE)[:200]]
    unique_keys = list(dict.fromkeys(k for k in keys if k))
    moves = [
        KeyMove(key=k.decode(), before=partition_for(k, before), after=partition_for(k, total))
        for k in unique_keys
        if partition_for(k, before) != partition_for(k, total)
    ]
    return PartitionChange(before=before, after=total, moves=moves, keys_checked=len(unique_keys))


# --- Reading --------------------------------------------------------------------------------


def lab_partition_count(*, lab: Lab) -> int | None:
    """The orders topic's partition count now, or None when Kafka cannot say."""
    try:
        return kafka_topics.partition_count(shared_admin(client_config()), lab.orders_topic)
    except (KafkaUnavailable, KafkaRefused):
        return None


def lab_state(*, lab: Lab) -> dict:
    """The lab snapshot behind state.json, read from Kafka now."""
    admin = shared_admin(client_config())
    topics = []
    for name in lab.topics:
        try:
            partitions = [vars(p) for p in kafka_topics.topic_partitions(admin, name)]
            error = None
        except (KafkaRefused, KafkaUnavailable) as exc:
            partitions, error = [], str(exc)
        topics.append({"name": name, "partitions": partitions, "error": error})
    return {
        "lab": {"id": lab.pk, "name": lab.prefix},
        "cluster": {"bootstrap_servers": bootstrap_servers()},
        "topics": topics,
        "groups": [],
        "consumers": [],
        "rebalances": [],
        "outbox": {"sent": 0, "duplicates": 0, "missed": 0},
    }


@dataclass(frozen=True)
class EventDetail:
    partition: int
    offset: int
    key: str | None
    value: str
    value_is_json: bool
    headers: list[tuple[str, str]]
    timestamp_ms: int
    event_type: str
    reason: object
    size_bytes: int


def event_inspect(*, lab: Lab, partition: int, offset: int) -> EventDetail:
    admin = shared_admin(client_config())
    try:
        partitions = kafka_topics.partition_count(admin, lab.orders_topic)
        record = read_record(lab.orders_topic, partition, offset, config=client_config()) if partitions else None
    except KafkaUnavailable as exc:
        raise LabError(f"Kafka did not answer: {exc}") from exc
    if record is None:
        raise LabError(f"There is no record at partition {partition}, offset {offset} (any more).")
    value = record.value or b""
    try:
        text, is_json = json.dumps(json.loads(value), indent=2), True
    except ValueError:
        text, is_json = value.decode("utf-8", errors="replace"), False
    return EventDetail(
        partition=record.partition,
        offset=record.offset,
        key=events.decode_key(record.key),
        value=text,
        value_is_json=is_json,
        headers=[(name, (raw or b"").decode("utf-8", errors="replace")) for name, raw in record.headers],
        timestamp_ms=record.timestamp_ms,
        event_type=events.event_type_of(record.headers, record.value),
        reason=explain_partition(record.key, partitions, record.partition),
        size_bytes=len(value),
    )
