"""BillingService: one real read-process-write process, orders in, invoices out.

Run as ``python -m kafkalab.kafka.billing_service '<json settings>'``. It reads the lab's orders
topic in its own group, writes one ``InvoiceIssued`` per ``OrderCreated`` to the invoices topic
(keyed by orderId), and reports what it does as one JSON object per line on stdout, flushed at
once, like NotificationService:

    started, assigned, revoked, lost, received, invoiced, skipped, committed, aborted, fenced,
    error, stopping, stopped

Batches of up to `batch_size` orders, in one of two modes (kafkalab.kafka.billing_config):

- exactly-once: a transactional producer; per batch begin, produce the invoices, send the
  consumed offsets to the transaction, commit. A SIGKILL mid-batch leaves an open transaction
  the next instance's init_transactions() aborts, and offsets that were never committed: the
  batch is redone, and a read_committed reader sees each invoice once.
- at-least-once: an idempotent producer; produce, flush, then commit the offsets. A SIGKILL after
  the invoices were written but before the commit: the batch is redone, its invoices written twice.

A second instance with the same transactional.id fences this one: its next transactional call
fails with a fatal error, it reports "fenced" and exits with FENCED_EXIT_CODE.

This module needs only confluent-kafka, not Django.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kafkalab.kafka.billing_config import BillingConfig
from kafkalab.kafka.notification_service import KEY_CHARS, ORDER_ID_CHARS, STOP_DEADLINE_SECONDS
from kafkalab.kafka.service_process import (
    ErrorLogger,
    partition_numbers,
    report,
    service_main,
    short_text,
    text_prefix,
)
from kafkalab.kafka.tail import record_headers

# Exit codes the supervisor tells apart from a crash.
FENCED_EXIT_CODE = 4
EVENT_TYPE_HEADER = "event-type"
ORDER_CREATED = "OrderCreated"
INVOICE_ISSUED = "InvoiceIssued"
# An order body bigger than this is no order BillingService reads (the lab caps events at 16 KiB).
ORDER_MAX_BYTES = 1 << 20
CALL_TIMEOUT_SECONDS = 15.0
# Codes that leave a transactional producer unusable: another instance took its transactional.id.
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


@dataclass
class BillingSettings:
    """What the lab runner passes to one process (as JSON on the command line)."""

    name: str
    topic: str  # the orders topic
    invoices_topic: str
    group_id: str
    transactional_id: str
    client: dict[str, object]
    config: BillingConfig = field(default_factory=BillingConfig)
    parent_pid: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.config, dict):  # as it travels in JSON
            self.config = BillingConfig.from_dict(self.config)

    def consumer_config(self) -> dict[str, object]:
        return {
            **self.client,
            "group.id": self.group_id,
            "client.id": self.name,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 3000,
            "socket.connection.setup.timeout.ms": 3000,
            # A killed instance's partitions go to the next one within seconds.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            **self.config.consumer_settings(),
        }

    def producer_config(self) -> dict[str, object]:
        return {
            **self.client,
            "client.id": f"{self.name}-invoices",
            "socket.connection.setup.timeout.ms": 3000,
            **self.config.producer_settings(transactional_id=self.transactional_id),
        }


class NotAnOrder(Exception):
    """The record is no OrderCreated BillingService can bill: it is skipped."""


def invoice_for(value: bytes | None, event_type: str | None, *, issued_at: str) -> dict:
    """The InvoiceIssued for an OrderCreated body; NotAnOrder says why there is none."""
    if event_type is not None and event_type != ORDER_CREATED:
        raise NotAnOrder(f"not an OrderCreated ({event_type})")
    if value is None or len(value) > ORDER_MAX_BYTES:
        raise NotAnOrder("no value" if value is None else "too big to be an order")
    try:
        order = json.loads(value)
    except (ValueError, RecursionError):
        raise NotAnOrder("not JSON") from None
    if not isinstance(order, dict) or not isinstance(order.get("orderId"), str) or "items" not in order:
        raise NotAnOrder("not an OrderCreated (no orderId and items)")
    return {
        "invoiceFor": order["orderId"],
        "customerId": order.get("customerId") if isinstance(order.get("customerId"), str) else None,
        "total": float(order_total(order["items"])),
        "issuedAt": issued_at,
    }


def order_total(items: object) -> Decimal:
    """Σ quantity × price, to the cent; NotAnOrder for items that are no list of priced items."""
    if not isinstance(items, list):
        raise NotAnOrder("items is not a list")
    total = Decimal(0)
    for item in items:
        try:
            quantity, price = item["quantity"], item["price"]
            if isinstance(quantity, bool) or isinstance(price, bool):
                raise TypeError
            total += Decimal(str(quantity)) * Decimal(str(price))
        except (TypeError, KeyError, InvalidOperation):
            raise NotAnOrder("an item has no numeric quantity and price") from None
    if not total.is_finite():
        raise NotAnOrder("the total is not a number")
    return total.quantize(Decimal("0.01"))


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


class Fenced(Exception):
    """Another instance took this one's transactional.id."""


class BillingService:
    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings
        self.config = settings.config
        self.stopping = False
        self.consumer = Consumer(settings.consumer_config(), logger=ErrorLogger())
        self.producer = Producer(settings.producer_config(), logger=ErrorLogger())

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        code = 0
        try:
            if self.config.transactional:
                # Fences any older instance with this transactional.id, and aborts what it left open.
                self._transactional(self.producer.init_transactions, CALL_TIMEOUT_SECONDS)
            self.consumer.subscribe(
                [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            report("started", mode=str(self.config.mode), transactional_id=self._transactional_id())
            while not self.stopping:
                batch = self.consumer.consume(num_messages=self.config.batch_size, timeout=0.2)
                self._batch([m for m in batch if self._readable(m)])
        except Fenced as exc:
            report("fenced", message=str(exc))
            code = FENCED_EXIT_CODE
        finally:
            report("stopping")
            self.consumer.close()  # leaves the group: an immediate rebalance
            report("stopped")
        return code

    def _transactional_id(self) -> str | None:
        return self.settings.transactional_id if self.config.transactional else None

    def _readable(self, message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            report("error", message=error.str(), fatal=error.fatal())
        return False

    # One batch ----------------------------------------------------------------------------------

    def _batch(self, messages: list) -> None:
        if not messages:
            return
        transactional = self.config.transactional
        if transactional:
            self._transactional(self.producer.begin_transaction)
        first = {}  # partition → the batch's first offset in it: where a redo starts
        for message in reversed(messages):
            first[message.partition()] = message.offset()
        done: dict[int, int] = {}  # partition → next offset, of what this batch finished
        invoices = 0
        for message in messages:
            if self.stopping:
                break
            invoices += self._process(message)
            done[message.partition()] = message.offset() + 1
        complete = bool(done) and not self.stopping
        if transactional:
            self._commit_transaction(done, first, invoices, complete=complete)
        else:
            self._flush_then_commit(done, invoices)

    def _process(self, message) -> int:
        """Bill one record: 1 when an invoice was produced, 0 when it was skipped."""
        where = {"partition": message.partition(), "offset": message.offset()}
        report("received", **where, key=text_prefix(message.key(), KEY_CHARS))
        if self.config.processing_delay_ms:
            time.sleep(self.config.processing_delay_ms / 1000)
        headers = dict(record_headers(message))
        raw_type = headers.get(EVENT_TYPE_HEADER)
        event_type = raw_type.decode("utf-8", errors="replace")[:40] if isinstance(raw_type, bytes) else None
        try:
            invoice = invoice_for(message.value(), event_type, issued_at=_iso_now())
        except NotAnOrder as exc:
            report("skipped", **where, reason=str(exc))
            return 0
        order_id = invoice["invoiceFor"]
        self._produce(order_id, invoice)
        report("invoiced", **where, order_id=short_text(order_id, ORDER_ID_CHARS))
        return 1

    def _produce(self, order_id: str, invoice: dict) -> None:
        value = json.dumps(invoice, separators=(",", ":")).encode()
        headers = [(EVENT_TYPE_HEADER, INVOICE_ISSUED.encode()), ("content-type", b"application/json")]
        while True:
            try:
                self.producer.produce(self.settings.invoices_topic, key=order_id.encode(), value=value, headers=headers)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.1)
            except KafkaException as exc:
                self._raise_if_fenced(exc)
                raise
        try:
            # Serves delivery reports; raises the producer's fatal error, if it had one meanwhile
            # (fenced by a twin while this batch was being billed).
            self.producer.poll(0)
        except KafkaException as exc:
            self._raise_if_fenced(exc)
            raise

    def _commit_transaction(
        self, done: dict[int, int], first: dict[int, int], invoices: int, *, complete: bool
    ) -> None:
        if complete:
            offsets = self.consumer.position(self.consumer.assignment())
        else:  # stopped mid-batch: only what was finished
            offsets = [TopicPartition(self.settings.topic, p, o) for p, o in done.items()]
        try:
            if offsets:
                self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), CALL_TIMEOUT_SECONDS
                )
            self.producer.commit_transaction(CALL_TIMEOUT_SECONDS)
        except KafkaException as exc:
            self._raise_if_fenced(exc)
            self._abort(first, exc)
            return
        report("committed", offsets=_offsets(offsets), invoices=invoices, transaction=True)

    def _abort(self, first: dict[int, int], error: KafkaException) -> None:
        """Kafka refused the transaction: abort it and read the batch again."""
        report(
            "error",
            message=f"the transaction failed: {_error_text(error)}; aborting it and billing the batch again",
        )
        try:
            self.producer.abort_transaction(CALL_TIMEOUT_SECONDS)
        except KafkaException as exc:
            self._raise_if_fenced(exc)
            report("error", message=f"abort failed: {_error_text(exc)}")
        report("aborted")
        for partition, offset in first.items():
            # No longer assigned: its next owner reads it from the committed offset.
            with contextlib.suppress(KafkaException):
                self.consumer.seek(TopicPartition(self.settings.topic, partition, offset))

    def _flush_then_commit(self, done: dict[int, int], invoices: int) -> None:
        left = self.producer.flush(CALL_TIMEOUT_SECONDS)
        if left:
            report("error", message=f"{left} invoices not acknowledged; offsets not committed")
            return
        if not done:
            return
        offsets = [TopicPartition(self.settings.topic, p, o) for p, o in done.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            report("error", message=f"commit failed: {_error_text(exc)}")
            return
        report("committed", offsets=_offsets(offsets), invoices=invoices, transaction=False)

    def _transactional(self, call, *args) -> None:
        try:
            call(*args)
        except KafkaException as exc:
            self._raise_if_fenced(exc)
            raise

    def _raise_if_fenced(self, exc: KafkaException) -> None:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError):
            return
        if error.code() == KafkaError._FATAL:
            # Refused because the producer had already failed for good ("Local: Fatal error"):
            # poll() raises the fatal error itself, which says why (fenced, mostly).
            try:
                self.producer.poll(0)
            except KafkaException as fatal:
                error = fatal.args[0] if fatal.args and isinstance(fatal.args[0], KafkaError) else error
        if error.code() in FENCED_CODES or error.fatal() or error.code() == KafkaError._FATAL:
            raise Fenced(
                f"another instance took the transactional.id {self.settings.transactional_id}: "
                f"this one can no longer write ({error.str()})"
            ) from None

    # The group ----------------------------------------------------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        report("assigned", partitions=partition_numbers(partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        report("revoked", partitions=partition_numbers(partitions))

    def _on_lost(self, consumer, partitions) -> None:
        report("lost", partitions=partition_numbers(partitions))

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True
        signal.alarm(STOP_DEADLINE_SECONDS)


def _offsets(offsets) -> dict[str, int]:
    return {str(tp.partition): tp.offset for tp in offsets if tp.offset >= 0}


def _error_text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def main(argv: list[str]) -> int:
    try:
        return service_main(
            argv,
            module="kafkalab.kafka.billing_service",
            settings_type=BillingSettings,
            service_type=BillingService,
            start_errors=(KafkaException,),
        )
    except KafkaException as exc:  # past its start: a Kafka error it could not handle ends the run
        report("error", message=f"stopped on a Kafka error: {_error_text(exc)}", fatal=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
