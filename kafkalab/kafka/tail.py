"""Reading a topic from outside any consumer group: what is really in the log.

The observer uses this to show every record, whoever wrote it. It reads uncommitted data
(records of open or aborted transactions are in the log too) and never commits anything.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from kafkalab.kafka.admin import quiet_logger
from kafkalab.kafka.errors import KafkaUnavailable


@dataclass(frozen=True)
class TailRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int


# Stands in for the headers of a record whose header names are not all UTF-8.
UNREADABLE_HEADERS = ("<header names not UTF-8>", b"")
# Message.headers() through a C-level call: see record_headers.
_headers_of = operator.methodcaller("headers")


def _tail_record(message) -> TailRecord:
    """The record as the observer and the inspector see it: never raises, whatever its bytes."""
    return TailRecord(
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=record_headers(message),
        timestamp_ms=message.timestamp()[1],
    )


def record_headers(message) -> tuple[tuple[str, bytes | None], ...]:
    """The message's headers, or (UNREADABLE_HEADERS,) when a header name is not UTF-8.

    confluent-kafka 2.16 cannot decode such a name, yet returns a half-built list (a NULL where
    the name should be, which crashes the interpreter when touched) with the UnicodeDecodeError
    left pending. A plain `message.headers()` raises SystemError for that only until CPython
    specialises the call; after that the error surfaces later, anywhere. Calling it through
    methodcaller always checks, so the error is raised here. Call this once per message: a
    second headers() returns the cached half-built list without any error.
    """
    try:
        return tuple(_headers_of(message) or ())
    except (SystemError, UnicodeDecodeError):
        return (UNREADABLE_HEADERS,)


class TopicTail:
    """Follows every partition of one topic, starting `window` records before each log end."""

    def __init__(self, topic: str, *, window: int, config: dict[str, object]) -> None:
        self.topic = topic
        self.window = window
        self._consumer = Consumer(
            {
                **config,
                # Required by librdkafka even though this consumer never joins the group.
                "group.id": f"kafkalab-observer.{topic}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_uncommitted",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 20,
                "socket.connection.setup.timeout.ms": 3000,
                "topic.metadata.refresh.interval.ms": 2000,
            },
            logger=quiet_logger,
        )
        self.partitions: list[int] = []
        self.last_error: str | None = None

    def refresh_partitions(self) -> list[int]:
        """Start reading partitions that appeared since the last call. Returns the new ones."""
        try:
            metadata = self._consumer.list_topics(topic=self.topic, timeout=5)
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka did not list the partitions of {self.topic}: {exc}") from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        added = sorted(set(topic.partitions) - set(self.partitions))
        if added:
            self._consumer.incremental_assign([self._start_position(p) for p in added])
            self.partitions = sorted([*self.partitions, *added])
        return added

    def _start_position(self, partition: int) -> TopicPartition:
        try:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=5)
        except KafkaException:  # leader unavailable right now: read from the end
            return TopicPartition(self.topic, partition, OFFSET_END)
        return TopicPartition(self.topic, partition, max(low, high - self.window))

    def poll(self, *, max_records: int = 1000, timeout: float = 0.05) -> list[TailRecord]:
        records = []
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self.last_error = error.str()
                continue
            records.append(_tail_record(message))
        return records

    def close(self) -> None:
        self._consumer.close()


def read_record(topic: str, partition: int, offset: int, *, config: dict[str, object]) -> TailRecord | None:
    """The one record at (partition, offset), or None when there is none (or it is gone)."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"kafkalab-inspector.{topic}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
            "auto.offset.reset": "error",
            "socket.connection.setup.timeout.ms": 3000,
        },
        logger=quiet_logger,
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for message in consumer.consume(num_messages=1, timeout=5):
            if message.error() is None and message.offset() == offset:
                return _tail_record(message)
        return None
    finally:
        consumer.close()
