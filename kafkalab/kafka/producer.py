"""The OrderService producer: acks=all, idempotent, and keyed like a Java producer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Producer

from kafkalab.kafka.admin import quiet_logger

# How long Kafka gets to acknowledge a record before the learner is told it failed.
DELIVERY_TIMEOUT_MS = 10_000

PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable.idempotence": True,
    # librdkafka's default (consistent_random) hashes keys with CRC32; murmur2_random places
    # keyed records exactly where a Java producer would.
    "partitioner": "murmur2_random",
    "linger.ms": 5,
    "message.timeout.ms": DELIVERY_TIMEOUT_MS,
    "socket.connection.setup.timeout.ms": 3000,
}


@dataclass(frozen=True)
class OutgoingRecord:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Delivered:
    partition: int
    offset: int
    timestamp_ms: int


@dataclass
class SendResult:
    delivered: list[Delivered] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors


class RecordProducer:
    """One long-lived producer per process; `send` waits for Kafka's answer on each record."""

    def __init__(self, config: dict[str, object]) -> None:
        self.bootstrap_servers = config.get("bootstrap.servers")
        self._producer = Producer({**PRODUCER_DEFAULTS, **config}, logger=quiet_logger)

    def send(self, topic: str, records: list[OutgoingRecord]) -> SendResult:
        result = SendResult()
        pending = len(records)
        lock = threading.Lock()
        done = threading.Event()

        def on_delivery(error: KafkaError | None, message) -> None:
            nonlocal pending
            with lock:
                if error is None:
                    result.delivered.append(Delivered(message.partition(), message.offset(), message.timestamp()[1]))
                else:
                    result.errors.append(error.str())
                pending -= 1
                if pending == 0:
                    done.set()

        if not records:
            return result
        for record in records:
            self._produce(topic, record, on_delivery)
        # Every record gets a delivery report within message.timeout.ms, success or failure.
        deadline = time.monotonic() + DELIVERY_TIMEOUT_MS / 1000 + 5
        while not done.is_set() and time.monotonic() < deadline:
            self._producer.poll(0.01)
        if not done.is_set():
            result.errors.append("Kafka gave no delivery report in time")
        result.delivered.sort(key=lambda d: (d.partition, d.offset))
        return result

    def partitions_refresh(self, topic: str, *, expected: int, timeout: float = 5.0) -> None:
        """Re-read the topic's partitions now, so keys hash over a grown count at once; librdkafka
        would otherwise notice only at its periodic metadata refresh, minutes later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                metadata = self._producer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
                found = metadata.topics.get(topic)
            except KafkaException:
                found = None
            if found is not None and len(found.partitions) >= expected:
                return
            time.sleep(0.1)

    def _produce(self, topic: str, record: OutgoingRecord, on_delivery) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=record.value, key=record.key, headers=record.headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                # The local queue is full: let librdkafka send some before queueing more.
                self._producer.poll(0.05)


_shared: dict[str, RecordProducer] = {}
_shared_lock = threading.Lock()


def producers_refresh(topic: str, *, expected: int, config: dict[str, object]) -> None:
    """Every shared producer of this cluster re-reads the topic's partitions (there is one per
    partitioner). Producers of another cluster (one the app no longer uses) are left alone."""
    with _shared_lock:
        producers = [p for p in _shared.values() if p.bootstrap_servers == config.get("bootstrap.servers")]
    for producer in producers:
        producer.partitions_refresh(topic, expected=expected)


def shared_producer(config: dict[str, object]) -> RecordProducer:
    """One producer per process and configuration: producers are thread-safe and costly."""
    key = repr(sorted(config.items()))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = RecordProducer(config)
        return _shared[key]
