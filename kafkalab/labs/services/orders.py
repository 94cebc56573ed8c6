"""OrderService: orders written to the lab's topic, and only what Kafka acknowledged remembered.

While the lab has a transaction open (kafkalab.labs.services.transactions), every order button
writes into it, through the lab runner's transactional producer, instead of the shared producer.
Its orders' rows are written before the records (so a commit, which the runner applies, always
finds them), wait unacknowledged until the commit, and go with an abort.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction

from kafkalab.kafka.config import client_config
from kafkalab.kafka.producer import OutgoingRecord, SendResult, shared_producer
from kafkalab.labs import events
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab, LabOrder
from kafkalab.labs.rate_limit import produce_budget
from kafkalab.labs.services import contracts as contract_services
from kafkalab.labs.services.transactions import transaction_produce


@dataclass
class ProduceOutcome:
    """What Kafka acknowledged, and what it did not."""

    requested: int
    result: SendResult
    orders: list[LabOrder] = field(default_factory=list)
    # Written into the open transaction: read_committed readers see it only once it is committed.
    transactional: bool = False

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


def _kib(size: int) -> str:
    # One decimal, so a limit under 1 KiB never reads "at most 0 KiB".
    return f"{size / 1024:.1f}".removesuffix(".0")


def _send(
    *,
    lab: Lab,
    records: list[OutgoingRecord],
    partitioner: str = LabOrder.Partitioner.MURMUR2,
    transaction: dict | None = None,
) -> SendResult:
    """Write the records, into `transaction` (the lab's open one) if given; the same limits apply."""
    for record in records:
        if len(record.value) > settings.LAB_MAX_PAYLOAD_BYTES:
            raise LabError(
                f"This event is {_kib(len(record.value))} KiB; a lab accepts at most "
                f"{_kib(settings.LAB_MAX_PAYLOAD_BYTES)} KiB per event. Nothing was sent."
            )
    produce_budget.take(lab.pk, len(records))
    if transaction is not None:
        return transaction_produce(lab=lab, key=transaction["key"], records=records, partitioner=str(partitioner))
    return shared_producer(client_config(partitioner=str(partitioner))).send(lab.orders_topic, records)


def _record_for(order: LabOrder, event_type: str, value: bytes, *, lab: Lab) -> OutgoingRecord:
    headers = contract_services.order_headers(lab=lab, event_type=event_type)
    return OutgoingRecord(key=order.key, value=value, headers=headers)


def order_create(
    *,
    lab: Lab,
    order_id: str,
    customer_id: str,
    items: list[dict],
    key_strategy: str,
    partitioner: str = LabOrder.Partitioner.MURMUR2,
) -> ProduceOutcome:
    """One OrderCreated, in the lab's current encoding. Of concurrent requests for one orderId, one
    is written; the others are refused."""
    write = contract_services.order_writer(lab=lab)
    txn = lab.transaction_open
    order = _order_reserve(
        lab=lab,
        order_id=order_id,
        customer_id=customer_id,
        key_strategy=key_strategy,
        partitioner=partitioner,
        transaction_key=txn["key"] if txn else "",
    )
    result = None
    try:
        payload = events.order_created(order_id=order_id, customer_id=customer_id, items=items)
        record = _record_for(order, LabOrder.Status.CREATED, write(payload), lab=lab)
        result = _send(lab=lab, records=[record], partitioner=partitioner, transaction=txn)
    finally:
        # Only what Kafka acknowledged is remembered, so a failed order leaves no trace. In a
        # transaction the commit acknowledges it (the runner does), and an abort deletes it.
        if result is None or not result.complete:
            order.delete()
        elif txn is None:
            LabOrder.objects.filter(pk=order.pk).update(acknowledged=True)
            order.acknowledged = True
    kept = [order] if order.acknowledged or txn else []
    return ProduceOutcome(requested=1, result=result, orders=kept, transactional=txn is not None)


def _order_reserve(
    *, lab: Lab, order_id: str, customer_id: str, key_strategy: str, partitioner: str, transaction_key: str = ""
) -> LabOrder:
    try:
        with transaction.atomic():
            return LabOrder.objects.create(
                lab=lab,
                order_id=order_id,
                customer_id=customer_id,
                key_strategy=key_strategy,
                partitioner=partitioner,
                transaction_key=transaction_key,
            )
    except IntegrityError:
        raise LabError(f"Order {order_id} already exists in this lab; pick another orderId.") from None


def orders_burst(*, lab: Lab, count: int, key_strategy: str) -> ProduceOutcome:
    if not 1 <= count <= settings.LAB_MAX_BURST:
        raise LabError(f"A burst is 1 to {settings.LAB_MAX_BURST} orders.")
    rng = random.Random()
    write = contract_services.order_writer(lab=lab)
    txn = lab.transaction_open
    orders, records = [], []
    for _ in range(count):
        body = events.sample_order(rng)
        order = LabOrder(
            lab=lab,
            order_id=body["orderId"],
            customer_id=body["customerId"],
            key_strategy=key_strategy,
            acknowledged=txn is None,
            transaction_key=txn["key"] if txn else "",
        )
        orders.append(order)
        records.append(_record_for(order, LabOrder.Status.CREATED, write(body), lab=lab))
    if txn is not None:
        return _burst_in_transaction(lab=lab, txn=txn, orders=orders, records=records)
    result = _send(lab=lab, records=records)
    if result.complete:
        LabOrder.objects.bulk_create(orders)
        return ProduceOutcome(requested=count, result=result, orders=orders)
    # Some records may be in Kafka even though others failed; which ones is in the topic itself.
    return ProduceOutcome(requested=count, result=result)


def _burst_in_transaction(
    *, lab: Lab, txn: dict, orders: list[LabOrder], records: list[OutgoingRecord]
) -> ProduceOutcome:
    """The burst's rows first (unacknowledged, so the commit finds them), then the records; all of
    it undone if the transaction refuses them (the runner has then aborted it)."""
    LabOrder.objects.bulk_create(orders)
    try:
        result = _send(lab=lab, records=records, transaction=txn)
    except BaseException:
        LabOrder.objects.filter(lab=lab, order_id__in=[o.order_id for o in orders], acknowledged=False).delete()
        raise
    return ProduceOutcome(requested=len(orders), result=result, orders=orders, transactional=True)


def order_advance(*, lab: Lab, order_id: str) -> ProduceOutcome:
    """Send the order's next lifecycle event (Paid, then Shipped), keyed like its OrderCreated. In a
    transaction, only a committed order moves on, one event per transaction."""
    order = lab.orders.filter(order_id=order_id).first()
    if order is None or (not order.acknowledged and not order.transaction_key):
        raise LabError("That order is not in this lab.")
    if not order.acknowledged:
        raise LabError(
            f"Order {order.order_id[:8]} was created in the open transaction and is not committed yet: only a "
            "committed order can be paid or shipped. Commit the transaction first."
        )
    if order.pending_status:
        raise LabError(
            f"Order {order.order_id[:8]}'s {order.pending_status} waits in the open transaction: commit it "
            "before the next event, so they never overtake each other."
        )
    next_status = order.next_status
    if next_status is None:
        raise LabError(f"Order {order.order_id[:8]} is already shipped.")
    refusal = contract_services.lifecycle_refusal(lab=lab, event_type=next_status)
    if refusal is not None:
        raise LabError(refusal)
    payload = events.order_status_changed(order_id=order.order_id, customer_id=order.customer_id)
    record = _record_for(order, next_status, events.encode(payload), lab=lab)
    txn = lab.transaction_open
    if txn is not None:
        return _advance_in_transaction(lab=lab, txn=txn, order=order, next_status=next_status, record=record)
    result = _send(lab=lab, records=[record], partitioner=order.partitioner)
    if result.complete:
        order.status = next_status
        order.save(update_fields=["status"])
    return ProduceOutcome(requested=1, result=result, orders=[order])


def _advance_in_transaction(
    *, lab: Lab, txn: dict, order: LabOrder, next_status: str, record: OutgoingRecord
) -> ProduceOutcome:
    """The event waits on the row (pending_status) before it is written: the commit applies it, an
    abort clears it. Of two concurrent clicks for one order, one is written."""
    claimed = LabOrder.objects.filter(pk=order.pk, pending_status="", transaction_key="").update(
        pending_status=next_status, transaction_key=txn["key"]
    )
    if not claimed:
        raise LabError(f"Order {order.order_id[:8]} already has an event waiting in the open transaction.")
    try:
        result = _send(lab=lab, records=[record], partitioner=order.partitioner, transaction=txn)
    except BaseException:
        LabOrder.objects.filter(pk=order.pk, transaction_key=txn["key"]).update(pending_status="", transaction_key="")
        raise
    order.pending_status, order.transaction_key = next_status, txn["key"]
    return ProduceOutcome(requested=1, result=result, orders=[order], transactional=True)
