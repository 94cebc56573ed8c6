"""Section `billing`: BillingService, exactly-once against at-least-once, on a cluster of its own.

Per mode, on fresh topics, one real BillingService process (`python -m
kafkalab.kafka.billing_service`) with the default BillingConfig apart from the mode:

- a burst: 1,000 OrderCreated already in the orders topic before the process starts; orders/s from
  its "assigned" report to the moment the bench's read_committed reader holds an invoice for each;
- latency: orders at a steady 20/s while it runs; per invoice, from the order's CreateTime (the
  producer's timestamp) to the moment the bench's read_committed reader receives the invoice.

Every invoice is counted by orderId from the invoices topic: the section fails on a missing order
or a duplicate, as no process is killed here.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.cluster import REPO_LIBS, stop_and_verify
from bench.report import Figure, percentile, progress
from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from kafkalab.kafka.billing_service import EVENT_TYPE_HEADER, INVOICE_ISSUED, ORDER_CREATED
from kafkalab.kafka.local_cluster import LocalCluster, kafka_version
from kafkalab.labs import events
from tests.harness.billing_process import BillingProcess

# The dev cluster 9092+, the tests 29092+, the other sections 63092-64292+ (above the ephemeral range).
PORT_BASE = 64692
BROKERS = 3
PARTITIONS = 3
BURST = 1_000
STEADY_RATE, STEADY_SECONDS = 20, 15.0
# Bounds on waiting, not expectations of speed.
ASSIGNED_TIMEOUT_S = 60.0
BURST_TIMEOUT_S = 180.0
STEADY_TIMEOUT_S = 60.0
LATE_DUPLICATES_S = 2.0  # after the last invoice, how long a late duplicate still gets to show


def run() -> list[Figure]:
    figures: list[Figure] = []
    with own_cluster() as cluster:
        bootstrap = cluster.bootstrap_servers()
        for mode in (BillingMode.EXACTLY_ONCE, BillingMode.AT_LEAST_ONCE):
            figures += measure(bootstrap, BillingConfig(mode=mode))
    return figures


@contextmanager
def own_cluster() -> Iterator[LocalCluster]:
    """A plain cluster in a temp dir (no daphne: the bench drives BillingService itself)."""
    if not kafka_version(REPO_LIBS):
        raise RuntimeError(f"No Kafka jars in {REPO_LIBS}: run `make setup` first.")
    with tempfile.TemporaryDirectory(prefix="kafkalab-bench-billing-") as tmp:
        cluster = LocalCluster(Path(tmp) / "kafka", port_base=PORT_BASE, libs_dir=REPO_LIBS)
        try:
            progress(f"kafka up --brokers {BROKERS} on ports {PORT_BASE}+")
            cluster.up(BROKERS)
            yield cluster
        finally:
            stop_and_verify(cluster)


def measure(bootstrap: str, config: BillingConfig) -> list[Figure]:
    mode = str(config.mode)
    name = f"bench-{mode}"
    orders, invoices = f"{name}.orders", f"{name}.invoices"
    create_topics(bootstrap, orders, invoices)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random"})
    reader = InvoiceReader(bootstrap, invoices)
    service = None
    try:
        progress(f"{mode}: {BURST} orders, then BillingService (batch {config.batch_size}) on them")
        burst_ids = set(produce_burst(producer, orders))
        service = start_service(bootstrap, name=name, orders=orders, invoices=invoices, config=config)
        assigned_at = service.wait_for("assigned", timeout=ASSIGNED_TIMEOUT_S)
        burst_done_at = reader.read_until(burst_ids, service, timeout=BURST_TIMEOUT_S)
        burst_seconds = burst_done_at - assigned_at

        progress(f"{mode}: {STEADY_RATE} orders/s for {STEADY_SECONDS:.0f} s, timing each invoice")
        created_ms: dict[str, int] = {}
        pacer = threading.Thread(target=produce_steadily, args=(producer, orders, created_ms))
        pacer.start()
        try:
            reader.read_while(pacer.is_alive, service)
        finally:
            pacer.join()
        reader.read_until(set(created_ms), service, timeout=STEADY_TIMEOUT_S)
        reader.read_for(LATE_DUPLICATES_S)
    finally:
        if service is not None:
            service.end()
        reader.close()
        producer.flush(10)

    burst_counts = {order_id: reader.counts[order_id] for order_id in burst_ids}
    check_once_each(mode, "burst", burst_counts, expected=BURST)
    check_once_each(mode, "steady", {i: reader.counts[i] for i in created_ms}, expected=len(created_ms))
    strays = set(reader.counts) - burst_ids - set(created_ms)
    if strays:
        raise RuntimeError(f"{mode}: {len(strays)} invoice(s) for orders the bench never wrote")
    latencies = [reader.received_ms[order_id] - created_ms[order_id] for order_id in created_ms]
    per_batch = "one transaction" if config.transactional else "flush, then commit offsets"
    batching = f"batch_size {config.batch_size} ({per_batch} per batch), {PARTITIONS} partitions"
    return [
        Figure(f"billing {mode} burst of {BURST:,}: orders/s", BURST / burst_seconds, "orders/s", batching, digits=0),
        Figure(
            f"billing {mode} burst: orders invoiced once",
            sum(1 for n in burst_counts.values() if n == 1),
            "orders",
            f"{sum(n - 1 for n in burst_counts.values() if n > 1)} duplicates, read_committed",
            digits=0,
        ),
        Figure(f"billing {mode} order → invoice visible, p50", percentile(latencies, 50), "ms", digits=0),
        Figure(
            f"billing {mode} order → invoice visible, p99",
            percentile(latencies, 99),
            "ms",
            f"{len(latencies)} orders at {STEADY_RATE}/s; CreateTime → read_committed",
            digits=0,
        ),
    ]


def check_once_each(mode: str, phase: str, counts: dict[str, int], *, expected: int) -> None:
    missing = sum(1 for n in counts.values() if n == 0)
    duplicated = sum(1 for n in counts.values() if n > 1)
    if len(counts) != expected or missing or duplicated:
        raise RuntimeError(
            f"{mode} {phase}: of {expected} orders, {missing} have no invoice and {duplicated} more than one"
        )


# --- Kafka: topics, orders, the invoices reader ------------------------------------------------


def create_topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=BROKERS) for n in names])
    for future in futures.values():
        future.result(timeout=30)


def produce_order(producer: Producer, topic: str, on_delivery=None) -> str:
    """One OrderCreated as the lab writes it (body, headers), keyed by its orderId."""
    order = events.sample_order()
    producer.produce(
        topic,
        key=order["orderId"].encode(),
        value=events.encode(order),
        headers=events.headers_for(ORDER_CREATED),
        on_delivery=on_delivery,
    )
    producer.poll(0)
    return order["orderId"]


def produce_burst(producer: Producer, topic: str) -> list[str]:
    order_ids = [produce_order(producer, topic) for _ in range(BURST)]
    if producer.flush(30):
        raise RuntimeError(f"the burst of {BURST} orders was not acknowledged within 30 s")
    return order_ids


def produce_steadily(producer: Producer, topic: str, created_ms: dict[str, int]) -> None:
    """STEADY_RATE orders a second; each order's CreateTime, as the broker stored it, by orderId."""

    def delivered(error, message) -> None:
        if error is None:
            created_ms[message.key().decode()] = message.timestamp()[1]

    started = time.monotonic()
    for n in range(int(STEADY_RATE * STEADY_SECONDS)):
        time.sleep(max(0.0, started + n / STEADY_RATE - time.monotonic()))
        produce_order(producer, topic, on_delivery=delivered)
    if producer.flush(30):
        raise RuntimeError("the steady orders were not acknowledged within 30 s")


class InvoiceReader:
    """The invoices topic from its start, read_committed, as a learner's consumer would see it:
    invoices per orderId, and when (ms since the epoch) each orderId's first invoice arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}.bench-reader",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        # Assigned, not subscribed: no group join between the invoices and the clock.
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.counts: Counter[str] = Counter()
        self.received_ms: dict[str, float] = {}

    def poll(self, timeout: float) -> None:
        for message in self.consumer.consume(num_messages=500, timeout=timeout):
            received = time.time() * 1000
            if message.error():
                raise RuntimeError(f"reading invoices: {message.error().str()}")
            if dict(message.headers() or []).get(EVENT_TYPE_HEADER) != INVOICE_ISSUED.encode():
                raise RuntimeError(f"not an InvoiceIssued at {message.partition()}@{message.offset()}")
            order_id = json.loads(message.value())["invoiceFor"]
            if message.key().decode() != order_id:
                raise RuntimeError(f"an invoice for {order_id} keyed {message.key()!r}")
            self.counts[order_id] += 1
            self.received_ms.setdefault(order_id, received)

    def read_until(self, order_ids: set[str], service: BillingProcess, *, timeout: float) -> float:
        """Until each of order_ids has an invoice; when that was, in seconds since the epoch."""
        deadline = time.monotonic() + timeout
        while not order_ids <= self.counts.keys():
            if time.monotonic() > deadline:
                missing = len(order_ids - self.counts.keys())
                raise RuntimeError(f"{missing} of {len(order_ids)} orders still had no invoice after {timeout:.0f} s")
            check_alive(service)
            self.poll(0.05)
        return max(self.received_ms[order_id] for order_id in order_ids) / 1000

    def read_while(self, busy, service: BillingProcess) -> None:
        while busy():
            check_alive(service)
            self.poll(0.05)

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(0.05)

    def close(self) -> None:
        self.consumer.close()


# --- the process ------------------------------------------------------------------------------


def start_service(bootstrap: str, *, name: str, orders: str, invoices: str, config: BillingConfig) -> BillingProcess:
    """One BillingService, started as the lab runner starts it."""
    return BillingProcess(
        {
            "name": name,
            "topic": orders,
            "invoices_topic": invoices,
            "group_id": f"{name}.billing",
            "transactional_id": f"{name}.billing-service",
            "client": {"bootstrap.servers": bootstrap},
            "config": config.as_dict(),
            "parent_pid": os.getpid(),
        }
    )


def check_alive(service: BillingProcess) -> None:
    """Raise when the process exited, or reported what spoils the figures (a transient error,
    such as a broker connection, heals itself)."""
    if service.process.poll() is not None:
        raise RuntimeError(f"BillingService exited with code {service.process.returncode}: {service.last_words()}")
    spoiled = [r for r in list(service.reports) if r["event"] in ("fenced", "aborted") or r.get("fatal")]
    if spoiled:
        raise RuntimeError(f"BillingService reported {spoiled[:3]}")
