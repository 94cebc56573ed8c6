"""Lab behaviour: create and reset labs, produce orders, change partitions, read state.

Every function takes keyword-only arguments and talks to Kafka only through kafkalab.kafka.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from kafkalab.kafka import topics as kafka_topics
from kafkalab.kafka.admin import shared_admin
from kafkalab.kafka.config import bootstrap_servers, client_config
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.group_watch import group_delete_isolated, group_snapshot
from kafkalab.kafka.partitioner import explain_partition, partition_for
from kafkalab.kafka.producer import OutgoingRecord, SendResult, shared_producer
from kafkalab.kafka.tail import read_recent, read_record
from kafkalab.labs import events
from kafkalab.labs.models import Lab, LabOrder, NotificationConsumer
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
            # The producer may still hold a deleted namesake's partition count (6 before a reset, say).
            shared_producer(client_config()).partitions_refresh(lab.orders_topic, expected=INITIAL_PARTITIONS)
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not create this lab's topics: {exc}") from exc


def lab_reset(*, lab: Lab) -> None:
    """Stop the lab's consumers, delete and recreate its topics and group, forget its history."""
    consumers_reap(lab=lab)
    _topics_delete(lab=lab)
    try:
        group_delete_isolated(client=client_config(), group_id=lab.group_id)
    except KafkaRefused:
        # A killed consumer stays a member until its session times out, so the group can't be
        # deleted yet. Nothing is lost: Kafka drops a deleted topic's committed offsets itself.
        pass
    except KafkaUnavailable as exc:
        raise LabError(f"Kafka did not answer: {exc}") from exc
    lab.orders.all().delete()
    lab.emails.all().delete()
    lab.rebalances.all().delete()
    lab.consumers.all().delete()
    lab_topics_ensure(lab=lab)
    runner_notify(lab=lab, command="lab.reset")


REAP_TIMEOUT_SECONDS = 25


def consumers_reap(*, lab: Lab) -> None:
    """Ask the runner to stop every consumer process of the lab, and wait until it has."""
    if not lab.consumers.exclude(pid=None).exists():
        return
    runner_notify(lab=lab, command="lab.reap")
    deadline = time.monotonic() + REAP_TIMEOUT_SECONDS
    while lab.consumers.exclude(pid=None).exists():
        if time.monotonic() > deadline:
            raise LabError("The lab's consumers did not stop in time, so nothing was reset. Try again.")
        time.sleep(0.1)


def runner_notify(*, lab: Lab, command: str, **fields: object) -> None:
    async_to_sync(get_channel_layer().send)(RUNNER_CHANNEL, {"type": command, "lab_id": lab.pk, **fields})


# --- Consumers ------------------------------------------------------------------------------


def consumer_add(*, lab: Lab, config: dict) -> NotificationConsumer:
    """A new NotificationService process in the lab's group, started by the lab runner."""
    with transaction.atomic():
        live = lab.consumers.filter(status__in=LIVE_STATUSES).count()
        if live >= settings.LAB_MAX_CONSUMERS:
            raise LabError(
                f"A lab runs at most {settings.LAB_MAX_CONSUMERS} consumers at once. "
                "Stop or kill one before adding another."
            )
        consumer = NotificationConsumer.objects.create(lab=lab, name=_next_consumer_name(lab), config=config)
    runner_notify(lab=lab, command="consumer.start", name=consumer.name)
    return consumer


LIVE_STATUSES = [
    NotificationConsumer.Status.STARTING,
    NotificationConsumer.Status.RUNNING,
    NotificationConsumer.Status.STOPPING,
]


def _next_consumer_name(lab: Lab) -> str:
    taken = set(lab.consumers.values_list("name", flat=True))
    number = 1
    while f"c{number}" in taken:
        number += 1
    return f"c{number}"


def _consumer(lab: Lab, name: str) -> NotificationConsumer:
    consumer = lab.consumers.filter(name=name).first()
    if consumer is None:
        raise LabError(f"This lab has no consumer called {name}.")
    return consumer


def consumer_stop(*, lab: Lab, name: str) -> None:
    consumer = _consumer(lab, name)
    if not consumer.is_live:
        raise LabError(f"{name} is not running.")
    runner_notify(lab=lab, command="consumer.stop", name=name)


def consumer_kill(*, lab: Lab, name: str) -> None:
    consumer = _consumer(lab, name)
    if not consumer.is_live:
        raise LabError(f"{name} is not running.")
    runner_notify(lab=lab, command="consumer.kill", name=name)


def consumer_restart(*, lab: Lab, name: str) -> None:
    consumer = _consumer(lab, name)
    if consumer.is_live:
        raise LabError(f"{name} is already running.")
    with transaction.atomic():
        if lab.consumers.filter(status__in=LIVE_STATUSES).count() >= settings.LAB_MAX_CONSUMERS:
            raise LabError(f"A lab runs at most {settings.LAB_MAX_CONSUMERS} consumers at once.")
        lab.consumers.filter(pk=consumer.pk).update(status=NotificationConsumer.Status.STARTING, last_error="")
    runner_notify(lab=lab, command="consumer.start", name=name)


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


def _kib(size: int) -> str:
    # One decimal, so a limit under 1 KiB never reads "at most 0 KiB".
    return f"{size / 1024:.1f}".removesuffix(".0")


def _send(*, lab: Lab, records: list[OutgoingRecord]) -> SendResult:
    for record in records:
        if len(record.value) > settings.LAB_MAX_PAYLOAD_BYTES:
            raise LabError(
                f"This event is {_kib(len(record.value))} KiB; a lab accepts at most "
                f"{_kib(settings.LAB_MAX_PAYLOAD_BYTES)} KiB per event. Nothing was sent."
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
    """The lab snapshot behind state.json, read from Kafka and the database now."""
    admin = shared_admin(client_config())
    topics = []
    for name in lab.topics:
        try:
            partitions = [vars(p) for p in kafka_topics.topic_partitions(admin, name)]
            error = None
        except (KafkaRefused, KafkaUnavailable) as exc:
            partitions, error = [], str(exc)
        topics.append({"name": name, "partitions": partitions, "error": error})
    orders_partitions = topics[0]["partitions"]
    group = _group_state(lab=lab, partitions=orders_partitions)
    return {
        "lab": {"id": lab.pk, "name": lab.prefix},
        "cluster": {"bootstrap_servers": bootstrap_servers()},
        "topics": topics,
        "groups": [group],
        "consumers": [
            {"name": c.name, "pid": c.pid, "status": c.status, "config": c.config, "last_error": c.last_error}
            for c in lab.consumers.all()
        ],
        "rebalances": [
            {
                "trigger": r.trigger,
                "started_at": r.started_at.isoformat(),
                "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                "duration_ms": r.duration_ms,
                "changes": r.changes,
            }
            for r in lab.rebalances.all()[:20]
        ],
        "outbox": outbox_summary(lab=lab, committed=group.get("committed", {})),
    }


def _group_state(*, lab: Lab, partitions: list[dict]) -> dict:
    try:
        snapshot = group_snapshot(client=client_config(), group_id=lab.group_id, topic=lab.orders_topic)
    except KafkaUnavailable as exc:
        return {"id": lab.group_id, "error": str(exc)}
    if snapshot.group is None:
        return {"id": lab.group_id, "error": snapshot.error}
    committed = snapshot.committed or {}
    log_end = {p["partition"]: p["log_end"] for p in partitions}
    description = snapshot.group
    return {
        "id": lab.group_id,
        "state": description.state,
        "protocol": description.protocol,
        "assignor": description.assignor,
        "members": [
            {"member_id": m.member_id, "consumer": m.client_id, "partitions": m.partitions} for m in description.members
        ],
        "committed": committed,
        "lag": {p: max(0, log_end[p] - offset) for p, offset in committed.items() if log_end.get(p) is not None},
    }


def outbox_summary(*, lab: Lab, committed: dict[int, int]) -> dict:
    """Emails sent, emails sent more than once, and records committed past but never emailed."""
    sent = Counter(lab.emails.values_list("partition", "offset"))
    duplicates = sum(count - 1 for count in sent.values() if count > 1)
    missed = []
    if committed:
        try:
            records = read_recent(lab.orders_topic, window=OUTBOX_WINDOW, config=client_config())
        except KafkaUnavailable:
            records = []
        missed = [
            {"partition": r.partition, "offset": r.offset}
            for r in records
            if r.offset < committed.get(r.partition, -1) and (r.partition, r.offset) not in sent
        ]
    return {"sent": sum(sent.values()), "duplicates": duplicates, "missed": len(missed), "missed_records": missed}


OUTBOX_WINDOW = 2000


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
