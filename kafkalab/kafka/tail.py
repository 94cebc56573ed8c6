"""Reading a topic from outside any consumer group: what is really in the log.

The observer uses this to show every record, whoever wrote it. It reads uncommitted data
(records of open or aborted transactions are in the log too) and never commits anything.
"""

from __future__ import annotations

import time
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


def _tail_record(message) -> TailRecord:
    return TailRecord(
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=tuple(message.headers() or ()),
        timestamp_ms=message.timestamp()[1],
    )


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

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """(log start, log end) per partition, asked of the partition leaders now."""
        marks = {}
        for partition in self.partitions:
            try:
                marks[partition] = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=2, cached=False
                )
            except KafkaException:  # that partition's leader is down: leave it out this round
                continue
        return marks

    def reached(self, ends: dict[int, int]) -> bool:
        """Whether this tail has read up to the given end offset of every partition."""
        positions = self._consumer.position([TopicPartition(self.topic, p) for p in ends])
        return all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0 for tp in positions)

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


def read_recent(topic: str, *, window: int, config: dict[str, object], timeout: float = 10.0) -> list[TailRecord]:
    """Every record among the last `window` of each partition, read up to the log end now."""
    tail = TopicTail(topic, window=window, config=config)
    try:
        tail.refresh_partitions()
        ends = {p: high for p, (_, high) in tail.watermarks().items()}
        records: list[TailRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not tail.reached(ends):
            records.extend(tail.poll(max_records=5000, timeout=0.1))
        return records
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka did not let us read {topic}: {exc}") from exc
    finally:
        tail.close()
