"""The schema registry's log: one compacted, single-partition topic (`_schemas`, as Confluent's).

One partition gives every record one place in one order, so every process that reads it builds
the same registry. Writers append and then read up to their own record before answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from kafkalab.kafka.admin import quiet_logger, shared_admin
from kafkalab.kafka.errors import KafkaUnavailable
from kafkalab.kafka.topics import broker_count, topic_exists

# Bounds on waiting for Kafka before the registry answers "unavailable" (retriable).
TIMEOUT = 10.0

Apply = Callable[[bytes | None, bytes | None], None]
# What a new topic's partition answers until the client's metadata has caught up with it.
_NOT_KNOWN_YET = frozenset({KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART})


class SchemasLog:
    """Reads the whole topic once, then only what was appended since the last read."""

    def __init__(self, topic: str, *, config: dict[str, object]) -> None:
        self.topic = topic
        self._config = config
        self._partition = TopicPartition(topic, 0)
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._position = 0  # the next offset to apply
        self._lock = threading.Lock()

    def _open(self) -> Consumer:
        if self._consumer is None:
            self._ensure_topic()
            consumer = Consumer(
                {
                    **self._config,
                    "group.id": f"kafkalab-registry.{self.topic}",  # required, never joined: assign() only
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 10,
                    "socket.connection.setup.timeout.ms": 3000,
                },
                logger=quiet_logger,
            )
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            # An assigned partition is fetched without end, every fetch.wait.max.ms; between reads
            # it stays paused, so an idle registry costs the brokers nothing.
            consumer.pause([self._partition])
            self._consumer = consumer
        return self._consumer

    def _ensure_topic(self) -> None:
        admin = shared_admin(self._config)
        if topic_exists(admin, self.topic):
            return
        replication = min(3, broker_count(admin))
        topic = NewTopic(
            self.topic, num_partitions=1, replication_factor=replication, config={"cleanup.policy": "compact"}
        )
        try:
            admin.create_topics([topic], request_timeout=TIMEOUT)[self.topic].result(timeout=TIMEOUT + 2)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            # Another process created it first: that is the topic we wanted.
            if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise KafkaUnavailable(f"Could not create the registry topic {self.topic}: {exc}") from exc
        except TimeoutError as exc:
            raise KafkaUnavailable(f"Kafka did not create the registry topic {self.topic} in time") from exc
        deadline = time.monotonic() + TIMEOUT
        while not topic_exists(admin, self.topic):
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"Kafka created {self.topic} but its metadata did not show it")
            time.sleep(0.1)

    def read_to_end(self, apply: Apply, *, at_least: int = 0) -> None:
        """Apply every record up to the log end as it is now (and at least up to `at_least`)."""
        with self._lock:
            consumer = self._open()
            end = max(self._log_end(consumer), at_least)
            if self._position >= end:
                return
            consumer.resume([self._partition])
            # Resumed, the partition waits for the fetcher's next wake-up (up to a second, each
            # registry write paid it); a seek to where we are fetches now. Only a shortcut: if it
            # is refused, the resumed fetch still comes.
            with contextlib.suppress(KafkaException):
                consumer.seek(TopicPartition(self.topic, 0, self._position or OFFSET_BEGINNING))
            try:
                self._read_until(consumer, end, apply)
            finally:
                consumer.pause([self._partition])

    def _read_until(self, consumer: Consumer, end: int, apply: Apply) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self._position < end:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"Reading {self.topic} did not reach offset {end} in time")
            # consume() waits until it has num_messages (or the timeout): ask for no more
            # than are missing, so reading one new record takes a fetch, not half a second.
            wanted = max(1, min(500, end - self._position))
            for message in consumer.consume(num_messages=wanted, timeout=0.5):
                error = message.error()
                if error is None:
                    apply(message.key(), message.value())
                    self._position = message.offset() + 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    # Compaction leaves offset gaps: the end is where Kafka says it is.
                    self._position = max(self._position, message.offset())
                elif error.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                    raise KafkaUnavailable(f"Reading {self.topic}: {error.str()}")

    def _log_end(self, consumer: Consumer) -> int:
        """The partition's log end. Just after the topic was made, the consumer's metadata may not
        know its partition yet ("unknown partition"): that passes, so it is asked again."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                return consumer.get_watermark_offsets(self._partition, timeout=TIMEOUT, cached=False)[1]
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                if code not in _NOT_KNOWN_YET or time.monotonic() > deadline:
                    raise KafkaUnavailable(f"Kafka did not give the end of {self.topic}: {exc}") from exc
            time.sleep(0.1)

    def append(self, key: bytes, value: bytes | None) -> int:
        """Write one record (value None: a tombstone) and return its offset once Kafka has it."""
        if self._producer is None:
            self._producer = Producer(
                {
                    **self._config,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    "message.timeout.ms": int(TIMEOUT * 1000),
                    "socket.connection.setup.timeout.ms": 3000,
                },
                logger=quiet_logger,
            )
        outcome: dict[str, object] = {}

        def delivered(error: KafkaError | None, message) -> None:
            outcome["error"], outcome["offset"] = error, message.offset() if error is None else None

        try:
            self._producer.produce(self.topic, key=key, value=value, partition=0, on_delivery=delivered)
        except (KafkaException, BufferError) as exc:
            raise KafkaUnavailable(f"Kafka refused the registry record: {exc}") from exc
        self._producer.flush(TIMEOUT + 5)
        if outcome.get("error") is not None or "offset" not in outcome:
            raise KafkaUnavailable(f"Kafka did not store the registry record: {outcome.get('error') or 'no answer'}")
        return int(outcome["offset"])  # type: ignore[arg-type]

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
