"""Replay DLQ: dead letters back to the orders topic, all or nothing, in one Kafka transaction.

How far earlier replays got (the cursor) is the committed offset of the replay's own group on
the dead-letter topic. The records and the new cursor are committed in the same transaction
(send_offsets_to_transaction), so the cursor lives in Kafka, a failed replay leaves both the
orders topic (for read_committed readers) and the cursor as they were, and the next replay
starts after the last dead letter that went back.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kafkalab.kafka import dead_letters
from kafkalab.kafka.admin import quiet_logger
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.notification_service import DEAD_LETTER_MAX_BYTES
from kafkalab.kafka.tail import UNREADABLE_HEADERS, record_headers

TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class DeadLetter:
    """A record of the dead-letter topic: the original record, and the headers saying why."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def header(self, name: str) -> str | None:
        for found, value in self.headers:
            if found == name and value is not None:
                return value.decode("utf-8", errors="replace")
        return None

    def replay_headers(self) -> list[tuple[str, bytes | None]]:
        """The original headers (without the dead-letter ones, or an earlier replay's mark), and
        where this replay took it from."""
        kept = [
            (name, value)
            for name, value in self.headers
            if not dead_letters.is_dead_letter_header(name)
            and name != dead_letters.REPLAYED_FROM
            and (name, value) != UNREADABLE_HEADERS
        ]
        return [*kept, (dead_letters.REPLAYED_FROM, f"{self.partition}:{self.offset}".encode())]


@dataclass(frozen=True)
class Replay:
    letters: list[DeadLetter]  # replayed, in the dead-letter topic's order
    remaining: int  # dead letters after them, left for the next replay


def dead_letters_replay(
    config: dict[str, object], *, dlq_topic: str, orders_topic: str, replay_id: str, limit: int
) -> Replay:
    """Write up to `limit` dead letters the last replay did not reach back to `orders_topic`, in
    one transaction (transactional id `replay_id`) that also moves the cursor (group `replay_id`).
    Raises KafkaUnavailable or KafkaRefused, and then nothing was replayed."""
    consumer = _cursor_consumer(config, replay_id)
    try:
        ranges = _unreplayed(consumer, dlq_topic)
        letters, remaining = _read(consumer, dlq_topic, ranges, limit)
        if letters:
            _write_back(config, consumer, letters, dlq_topic=dlq_topic, orders_topic=orders_topic, replay_id=replay_id)
        return Replay(letters=letters, remaining=remaining)
    finally:
        consumer.close()


def _cursor_consumer(config: dict[str, object], replay_id: str) -> Consumer:
    # It never joins its group: it reads the group's committed offsets and assigns itself partitions.
    return Consumer(
        {
            **config,
            "group.id": replay_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # Told when a partition has nothing more, so a gap at its end (a transaction's
            # marker) never makes it wait for a record that won't come.
            "enable.partition.eof": True,
            "socket.connection.setup.timeout.ms": 3000,
        },
        logger=quiet_logger,
    )


def _unreplayed(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of the dead-letter topic: (first offset not replayed yet, log end)."""
    try:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_SECONDS).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaRefused(f"the dead-letter topic {topic} does not exist", code="UNKNOWN_TOPIC_OR_PART")
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        cursor = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=TIMEOUT_SECONDS)}
        ranges = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=TIMEOUT_SECONDS, cached=False)
            start = cursor[tp.partition] if cursor[tp.partition] != OFFSET_INVALID else low
            ranges[tp.partition] = (max(start, low), high)
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka did not say how far the dead-letter topic goes: {_text(exc)}") from exc
    return ranges


def _read(
    consumer: Consumer, topic: str, ranges: dict[int, tuple[int, int]], limit: int
) -> tuple[list[DeadLetter], int]:
    """The first `limit` unreplayed dead letters, and how many more there are."""
    wanted: dict[int, tuple[int, int]] = {}  # partition → (start, end) to read now
    budget = limit
    for partition, (start, end) in sorted(ranges.items()):
        take = max(0, min(end - start, budget))
        budget -= take
        if take:
            wanted[partition] = (start, start + take)
    remaining = sum(end - start for start, end in ranges.values()) - sum(e - s for s, e in wanted.values())
    if not wanted:
        return [], remaining
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in wanted.items()])
    letters: list[DeadLetter] = []
    unread = {p: end for p, (_, end) in wanted.items()}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while unread:
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"Kafka did not hand over the dead letters within {TIMEOUT_SECONDS:.0f} s")
        for message in consumer.consume(num_messages=500, timeout=0.2):
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaUnavailable(f"reading the dead-letter topic failed: {message.error().str()}")
                unread.pop(message.partition(), None)  # read_committed: nothing more to see
                continue
            end = unread.get(message.partition())
            if end is None or message.offset() >= end:
                continue
            letters.append(_dead_letter(message))
            if message.offset() + 1 >= end:
                unread.pop(message.partition(), None)
    return sorted(letters, key=lambda d: (d.partition, d.offset)), remaining


def _dead_letter(message) -> DeadLetter:
    return DeadLetter(
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=record_headers(message),
    )


def _write_back(
    config: dict[str, object],
    consumer: Consumer,
    letters: list[DeadLetter],
    *,
    dlq_topic: str,
    orders_topic: str,
    replay_id: str,
) -> None:
    producer = Producer(
        {
            **config,
            "transactional.id": replay_id,
            "acks": "all",
            "enable.idempotence": True,
            # Keys land where OrderService (and a Java producer) puts them.
            "partitioner": "murmur2_random",
            "message.max.bytes": DEAD_LETTER_MAX_BYTES,
            "transaction.timeout.ms": 60_000,
            "socket.connection.setup.timeout.ms": 3000,
        },
        logger=quiet_logger,
    )
    cursor = {}
    for letter in letters:
        cursor[letter.partition] = max(cursor.get(letter.partition, 0), letter.offset + 1)
    try:
        # Fences any earlier replay of this lab still open (a second click, a crashed request).
        producer.init_transactions(TIMEOUT_SECONDS)
        producer.begin_transaction()
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka did not start the replay's transaction: {_text(exc)}") from exc
    try:
        for letter in letters:
            _produce(producer, orders_topic, letter)
        offsets = [TopicPartition(dlq_topic, p, offset) for p, offset in sorted(cursor.items())]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT_SECONDS)
        _commit(producer)
    except KafkaException as exc:
        _abort(producer)
        raise KafkaUnavailable(f"the replay's transaction failed and was aborted: {_text(exc)}") from exc


def _commit(producer: Producer) -> None:
    try:
        producer.commit_transaction(TIMEOUT_SECONDS)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not (isinstance(error, KafkaError) and error.retriable()):
            raise
        # A commit that timed out may still be under way: librdkafka lets it be asked again.
        producer.commit_transaction(TIMEOUT_SECONDS)


def _produce(producer: Producer, topic: str, letter: DeadLetter) -> None:
    while True:
        try:
            producer.produce(topic, key=letter.key, value=letter.value, headers=letter.replay_headers())
            return
        except BufferError:  # the local queue is full: let some go first
            producer.poll(0.05)


def _abort(producer: Producer) -> None:
    # If this fails too, the coordinator aborts the transaction once transaction.timeout.ms has passed.
    with contextlib.suppress(KafkaException):
        producer.abort_transaction(TIMEOUT_SECONDS)


def _text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
