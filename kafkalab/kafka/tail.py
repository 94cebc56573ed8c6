"""Reading topics from outside any consumer group: what is really in the log.

The observer uses this to show every record, whoever wrote it. It reads uncommitted data
(records of open or aborted transactions are in the log too) and never commits anything. A
second tail of the orders topic reads committed data only, as a `read_committed` consumer does:
what one returns and the other does not is what transactions did (kafkalab.runner.txn_marks).
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass
from enum import StrEnum

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from kafkalab.kafka.admin import quiet_logger
from kafkalab.kafka.errors import KafkaUnavailable


@dataclass(frozen=True)
class TailRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int


# Stands in for the headers of a record whose header names are not all UTF-8.
UNREADABLE_HEADERS = ("<header names not UTF-8>", b"")
# Seconds a metadata request may take: the observer's thread waits on it, and its page with it.
METADATA_TIMEOUT = 3.0
# Message.headers() through a C-level call: see record_headers.
_headers_of = operator.methodcaller("headers")


def _tail_record(message) -> TailRecord:
    """The record as the observer and the inspector see it: never raises, whatever its bytes."""
    return TailRecord(
        topic=message.topic(),
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


@dataclass(frozen=True)
class TailPartition:
    """A partition the tail started reading, and what Kafka said of it then."""

    topic: str
    partition: int
    leader: int | None
    replicas: list[int]
    isr: list[int]
    log_start: int | None
    log_end: int | None
    start: int | None = None  # the offset the tail started reading it at (None: at its end)


class TopicTail:
    """Follows every partition of some topics with one consumer, starting `window` records
    before each log end. One consumer for all of a lab's topics: a record of any of them ends
    the same wait, and a lab costs one connection set, not one per topic."""

    def __init__(
        self,
        topics: list[str],
        *,
        window: int,
        config: dict[str, object],
        isolation: str = "read_uncommitted",
        windows: dict[str, int] | None = None,
        fetch_wait_ms: int = 250,
    ) -> None:
        """`window`: how many records before each log end to start at (`windows`: per topic,
        where it differs). `fetch_wait_ms`: how long the broker may hold a fetch while it has
        nothing new; new records end the wait at once, so a longer one costs no latency, only
        fewer idle round trips."""
        self.topics = list(topics)
        self.window = window
        self.windows = windows or {}
        self.isolation = isolation
        self._consumer = Consumer(
            {
                **config,
                # Required by librdkafka even though this consumer never joins the group.
                "group.id": f"kafkalab-observer.{self.topics[0]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": isolation,
                # Where a partition's end was reached: for read_committed, the last stable offset.
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": fetch_wait_ms,
                "socket.connection.setup.timeout.ms": 3000,
                "topic.metadata.refresh.interval.ms": 2000,
            },
            logger=quiet_logger,
        )
        self.partitions: dict[str, list[int]] = {topic: [] for topic in self.topics}
        # (topic, partition) → the offset at which the tail last reached the partition's end.
        self.ends_reached: dict[tuple[str, int], int] = {}
        self.last_error: str | None = None

    def refresh_partitions(self) -> list[TailPartition]:
        """Start reading partitions that appeared since the last call. Returns the new ones. A
        topic that does not exist (yet) simply has none. When Kafka does not answer for a topic,
        the rest wait for the next call (asking would only make the caller wait as long again for
        each); when no partition was added before it, this raises KafkaUnavailable."""
        started: list[tuple[TailPartition, int]] = []
        try:
            for topic in self.topics:
                started += self._new_partitions(topic)
        except KafkaUnavailable:
            if not started:
                raise
        # Assigned together, once all are looked up: an assigned partition is fetched at once, and
        # each lookup after that would wait behind a fetch the broker holds (fetch_wait_ms).
        if started:
            self._consumer.incremental_assign([TopicPartition(s.topic, s.partition, at) for s, at in started])
        for s, _ in started:
            self.partitions[s.topic] = sorted([*self.partitions[s.topic], s.partition])
        return [s for s, _ in started]

    def _new_partitions(self, topic: str) -> list[tuple[TailPartition, int]]:
        """The topic's partitions this tail does not read yet, each with the offset to start at."""
        try:
            metadata = self._consumer.list_topics(topic=topic, timeout=METADATA_TIMEOUT)
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka did not list the partitions of {topic}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return []
        new = sorted(set(found.partitions) - set(self.partitions[topic]))
        return [self._start(topic, found.partitions[p]) for p in new]

    def _start(self, topic: str, metadata) -> tuple[TailPartition, int]:
        """The partition as Kafka describes it, and the offset to start reading it at."""
        partition = metadata.id
        try:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
            start = max(low, high - self.windows.get(topic, self.window))
        except KafkaException:  # leader unavailable right now: read from the end
            low = high = None
            start = OFFSET_END
        described = TailPartition(
            topic=topic,
            partition=partition,
            leader=metadata.leader if metadata.leader >= 0 else None,
            replicas=list(metadata.replicas),
            isr=list(metadata.isrs),
            log_start=low,
            log_end=high,
            start=None if start == OFFSET_END else start,
        )
        return described, start

    def poll(self, *, max_records: int = 1000, timeout: float = 0.05) -> list[TailRecord]:
        records = []
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.ends_reached[message.topic(), message.partition()] = message.offset()
                else:
                    self.last_error = error.str()
                continue
            records.append(_tail_record(message))
        return records

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset the tail will read, per partition it reads (those it knows)."""
        reading = [TopicPartition(topic, p) for p in self.partitions[topic]]
        if not reading:
            return {}
        return {tp.partition: tp.offset for tp in self._consumer.position(reading) if tp.offset >= 0}

    def at_end(self, topic: str, partition: int, position: int) -> bool:
        """The tail has read all Kafka would give it of the partition, as of its last fetch."""
        return self.ends_reached.get((topic, partition)) == position

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


class CommittedView(StrEnum):
    """What a read_committed consumer makes of one record."""

    READS = "reads"  # committed, or written outside any transaction
    SKIPS = "skips"  # aborted
    WAITS = "waits"  # at or past the last stable offset: its transaction is not decided yet


def read_committed_view(
    topic: str, partition: int, offset: int, *, config: dict[str, object], timeout: float = 5.0
) -> CommittedView:
    """Ask Kafka, as a read_committed consumer starting at `offset`: is the first record it gets
    this one (it reads it), a later one or the partition's end past it (it skipped it: aborted),
    or nothing past it (it waits at the last stable offset)?"""
    consumer = Consumer(
        {
            **config,
            "group.id": f"kafkalab-inspector.{topic}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "socket.connection.setup.timeout.ms": 3000,
        },
        logger=quiet_logger,
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = consumer.poll(min(left, 0.5))
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                continue
            if message.offset() == offset and error is None:
                return CommittedView.READS
            return CommittedView.SKIPS if message.offset() > offset else CommittedView.WAITS
        return CommittedView.WAITS
    finally:
        consumer.close()
