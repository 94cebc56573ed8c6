"""NotificationService: one real consumer process in a lab's consumer group.

Run as ``python -m kafkalab.kafka.notification_service '<json settings>'``. It subscribes to
the lab's orders topic, "sends an email" for each record, and reports everything it does as
one JSON object per line on stdout (flushed at once, so a report written just before a
SIGKILL still reaches the lab runner):

    started, assigned, revoked, lost, received, processed, emailed, poison, committed, error, stopped

Each record is read by the consumer's reader (kafkalab.kafka.readers). A record the reader can't
process, a poison pill, meets the consumer's failure policy:

- crash: report it, store the poison record's offset back (so no commit passes it), handle what
  its other partitions held at that moment, and exit with POISON_EXIT_CODE; the lab runner
  starts it again, and it fails again on the same offset: that partition is blocked;
- skip: report it and move past it (a missed email);
- dead-letter: write it to the lab's dead-letter topic, with headers saying why, and move past
  it once Kafka acknowledged it;
- retry: read it again after a growing wait, a bounded number of times, then dead-letter it.

While it waits, the record's partition is paused (the others flow) and its stored offset points
at the record. A registry that can't be asked is not the record's fault: the record is retried,
whatever the policy, and never skipped or set aside for it.

SIGTERM is a graceful stop: the consumer closes, leaves the group, and the group rebalances at
once. SIGKILL is a crash: nothing is closed, and the group waits for the session timeout.

This module needs only confluent-kafka, not Django: a consumer process starts fast and small.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from kafkalab.kafka import dead_letters
from kafkalab.kafka.admin import quiet_logger
from kafkalab.kafka.consumer_config import CommitMode, ConsumerConfig, FailurePolicy
from kafkalab.kafka.readers import Failure, ReadFailure, read_order
from kafkalab.kafka.schema_lookup import registry_lookup
from kafkalab.kafka.service_process import (
    ErrorLogger,
    partition_numbers,
    report,
    service_main,
    short_text,
    text_prefix,
)
from kafkalab.kafka.tail import UNREADABLE_HEADERS, record_headers

STOP_DEADLINE_SECONDS = 10
KEY_CHARS = 200
ORDER_ID_CHARS = 64
EVENT_TYPE_CHARS = 40
# The exit code of a crash on a poison record: the lab runner restarts the process for it.
POISON_EXIT_CODE = 3
# A crash first hands over what its other partitions held when it crashed: a restart that always
# meets the poison record first would otherwise starve them. For this long at most.
CRASH_DRAIN_MAX_SECONDS = 2.0
CRASH_DRAIN_ASK_SECONDS = 1.0
# Waits between attempts, doubling: retries of the policy, and faults that are not the record's
# (the registry or the dead-letter topic out of reach), which are retried without end.
RETRY_WAIT_CAP_MS = 30_000
FAULT_WAIT_CAP_MS = 10_000
# A dead letter can be as big as the biggest record the brokers accept, plus the headers saying
# why; the lab's dead-letter topic accepts twice that.
DEAD_LETTER_MAX_BYTES = 2 * 1_048_588
DEAD_LETTER_ACK_SECONDS = 15


@dataclass
class ServiceSettings:
    """What the lab runner passes to one process (as JSON on the command line)."""

    name: str
    topic: str
    group_id: str
    client: dict[str, object]  # bootstrap servers and security settings
    config: ConsumerConfig = field(default_factory=ConsumerConfig)
    auto_offset_reset: str = "earliest"
    parent_pid: int | None = None  # the lab runner: this process ends when it does
    dlq_topic: str | None = None  # where the dead-letter and retry policies set records aside
    registry_url: str | None = None  # where writer schemas are looked up by id
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.config, dict):  # as it travels in JSON
            self.config = ConsumerConfig.from_dict(self.config)

    def consumer_config(self) -> dict[str, object]:
        return {
            **self.client,
            "group.id": self.group_id,
            "client.id": self.name,
            "auto.offset.reset": self.auto_offset_reset,
            # Notice added partitions within seconds (the default looks every 5 minutes).
            "topic.metadata.refresh.interval.ms": 3000,
            "socket.connection.setup.timeout.ms": 3000,
            **self.config.kafka_settings(),
            **self.extra,
        }


class NotificationService:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.config = settings.config
        self.stopping = False
        self.consumer = Consumer(settings.consumer_config(), logger=ErrorLogger())
        self.lookup = registry_lookup(settings.registry_url)
        self.dead_letters = DeadLetterWriter(settings) if self.config.dead_letters else None
        self._reads: dict[tuple[int, int], int] = {}  # (partition, offset) → failed reads of it
        self._faults: dict[tuple[int, int], int] = {}  # … → waits that were not the record's fault
        self._resume_at: dict[int, float] = {}  # paused partition → when to read its record again
        self._crashed_at: float | None = None
        self._drain_to: dict[int, int] | None = None  # after a crash: other partition → its log end then
        self._held: set[int] = set()  # partitions held at a poison record

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        self.consumer.subscribe(
            [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        report("started", config=self.settings.consumer_config() | {"bootstrap.servers": None})
        try:
            while not self.stopping and not self._crash_due():
                self._resume_due()
                message = self.consumer.poll(0.1)
                if message is None:
                    continue
                if message.error():
                    self._report_error(message.error())
                    continue
                self._handle(message)
        finally:
            report("stopping")
            self.consumer.close()  # commits (auto mode) and leaves the group: an immediate rebalance
            report("stopped")
        return POISON_EXIT_CODE if self._crashed_at is not None and not self.stopping else 0

    def _handle(self, message) -> None:
        where = {"partition": message.partition(), "offset": message.offset()}
        report("received", **where, key=text_prefix(message.key(), KEY_CHARS))
        config = self.config
        if config.auto_commits and config.enable_auto_offset_store:
            # What librdkafka's own offset store does: the offset is stored as the record is handed over.
            self.consumer.store_offsets(message=message)
        elif config.commit_mode == CommitMode.BEFORE:
            self._commit(message)
        delay = config.processing_delay_ms / 1000
        if delay:
            time.sleep(delay)
        headers = record_headers(message)  # once per message: see record_headers
        event_type = text_prefix(dict(headers).get("event-type"), EVENT_TYPE_CHARS)
        try:
            order = read_order(config.reader, message.value(), self.lookup, event_type=event_type)
        except ReadFailure as failure:
            self._poison(message, headers, failure)
            return
        self._forget(message)
        report("processed", **where)
        order_id = order.get("orderId")
        report(
            "emailed",
            **where,
            order_id=short_text(order_id, ORDER_ID_CHARS) if isinstance(order_id, str) else None,
            event_type=event_type or None,
        )
        self._done(message)

    def _done(self, message) -> None:
        """The record is finished with (emailed, skipped or set aside): commit past it, per the mode."""
        if self.config.commit_mode == CommitMode.AFTER:
            self._commit(message)
        elif self.config.commit_mode == CommitMode.AUTO and not self.config.enable_auto_offset_store:
            # Auto-commit, but only of what is finished: at-least-once without manual commits.
            self.consumer.store_offsets(message=message)
            report("stored", partition=message.partition(), offset=message.offset())

    def _commit(self, message) -> None:
        try:
            committed = self.consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            report("error", message=f"commit failed: {exc.args[0].str() if exc.args else exc}")
            return
        report("committed", offsets={str(tp.partition): tp.offset for tp in committed or []})

    # Poison records -----------------------------------------------------------------------------

    def _poison(self, message, headers, failure: ReadFailure) -> None:
        key = (message.partition(), message.offset())
        if failure.kind == Failure.REGISTRY_DOWN:
            self._wait_out_fault(message, failure, str(failure.kind))
            return
        attempt = self._reads[key] = self._reads.get(key, 0) + 1
        found = {
            "partition": key[0],
            "offset": key[1],
            "reason": str(failure.kind),
            "message": failure.message,
            "attempt": attempt,
        }
        policy = self.config.failure_policy
        if policy == FailurePolicy.CRASH:
            self._crash(message, found, failure)
        elif policy == FailurePolicy.SKIP:
            report("poison", **found, action="skipped")
            self._forget(message)
            self._done(message)
        elif policy == FailurePolicy.RETRY and attempt <= self.config.retry_attempts:
            wait_ms = self.config.retry_wait_ms(attempt, cap_ms=RETRY_WAIT_CAP_MS)
            attempts = self.config.retry_attempts + 1
            report("poison", **found, action="retrying", attempts=attempts, retry_in_ms=wait_ms)
            self._read_again_later(message, wait_ms)
        else:
            self._dead_letter(message, headers, failure, found)

    def _crash(self, message, found: dict, failure: ReadFailure) -> None:
        where = f"partition {message.partition()}, offset {message.offset()}"
        report("poison", **found, action="crashed")
        report("error", message=f"crashed on the record at {where}: {failure}")
        self._hold(message)
        if self._crashed_at is None:
            self._crashed_at = time.monotonic()
            self._drain_to = self._unread_ends()

    def _unread_ends(self) -> dict[int, int] | None:
        """Each other partition's log end, where it has records this process has not handed over;
        None when Kafka did not say (the crash then takes the longest it may)."""
        try:
            others = [tp for tp in self.consumer.assignment() if tp.partition not in self._held]
            starts = {
                tp.partition: tp.offset for tp in self.consumer.committed(others, timeout=CRASH_DRAIN_ASK_SECONDS)
            }
            for tp in self.consumer.position(others):
                starts[tp.partition] = max(starts.get(tp.partition, -1), tp.offset)
            ends = {}
            for tp in others:
                start, end = self.consumer.get_watermark_offsets(tp, timeout=CRASH_DRAIN_ASK_SECONDS, cached=False)
                if end > max(start, starts.get(tp.partition, start)):
                    ends[tp.partition] = end
            return ends
        except KafkaException:
            return None

    def _crash_due(self) -> bool:
        """After a crash: once its other partitions are read up to where they ended then."""
        if self._crashed_at is None:
            return False
        if time.monotonic() - self._crashed_at >= CRASH_DRAIN_MAX_SECONDS:
            return True
        if self._drain_to is None:
            return False
        topic = self.settings.topic
        try:
            positions = self.consumer.position([TopicPartition(topic, p) for p in self._drain_to])
        except KafkaException:  # a rebalance took them away: nothing more to hand over
            return True
        reached = {tp.partition for tp in positions if tp.offset >= self._drain_to[tp.partition]}
        return all(p in reached or p in self._held for p in self._drain_to)

    def _dead_letter(self, message, headers, failure: ReadFailure, found: dict) -> None:
        why = {
            dead_letters.REASON: str(failure.kind),
            dead_letters.ERROR: failure.message,
            dead_letters.TOPIC: message.topic(),
            dead_letters.PARTITION: str(message.partition()),
            dead_letters.OFFSET: str(message.offset()),
            dead_letters.CONSUMER: self.settings.name,
            dead_letters.READER: str(self.config.reader),
            dead_letters.ATTEMPTS: str(found["attempt"]),
            dead_letters.TIME: str(int(time.time() * 1000)),
        }
        try:
            partition, offset = self.dead_letters.write(message, headers, why)
        except DeadLetterFailed as exc:
            self._wait_out_fault(
                message, exc, "dead-letter-write", what=f"could not write it to {self.dead_letters.topic}"
            )
            return
        report("poison", **found, action="dead-lettered", dlq_partition=partition, dlq_offset=offset)
        self._forget(message)
        self._done(message)

    def _wait_out_fault(self, message, error: Exception, reason: str, *, what: str = "") -> None:
        """Not the record's fault (the registry or the dead-letter topic out of reach): it is read
        again after a growing wait, however long that takes, and never skipped for it."""
        key = (message.partition(), message.offset())
        waits = self._faults[key] = self._faults.get(key, 0) + 1
        wait_ms = self.config.retry_wait_ms(waits, cap_ms=FAULT_WAIT_CAP_MS)
        text = f"{what}: {error}" if what else str(error)
        report("error", message=f"partition {key[0]}, offset {key[1]}: {text}; trying again in {wait_ms} ms")
        report(
            "poison",
            partition=key[0],
            offset=key[1],
            reason=reason,
            message=text,
            attempt=waits,
            action="retrying",
            retry_in_ms=wait_ms,
        )
        self._read_again_later(message, wait_ms)

    def _read_again_later(self, message, wait_ms: int) -> None:
        self._hold(message)
        self._resume_at[message.partition()] = time.monotonic() + wait_ms / 1000

    def _hold(self, message) -> None:
        """Stop reading the record's partition and go back to the record: its stored offset too,
        so that an auto-commit meanwhile (or the commit of a close) can't pass it."""
        at = TopicPartition(message.topic(), message.partition(), message.offset())
        self._held.add(message.partition())
        self.consumer.pause([at])
        self.consumer.seek(at)
        if self.config.auto_commits:
            self.consumer.store_offsets(offsets=[at])

    def _resume_due(self) -> None:
        now = time.monotonic()
        due = [partition for partition, at in self._resume_at.items() if at <= now]
        if due:
            self.consumer.resume([TopicPartition(self.settings.topic, p) for p in due])
            for partition in due:
                del self._resume_at[partition]
                self._held.discard(partition)

    def _forget(self, message) -> None:
        key = (message.partition(), message.offset())
        self._reads.pop(key, None)
        self._faults.pop(key, None)

    # The group ----------------------------------------------------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        report("assigned", partitions=partition_numbers(partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        self._release(partitions)
        report("revoked", partitions=partition_numbers(partitions))

    def _on_lost(self, consumer, partitions) -> None:
        self._release(partitions)
        report("lost", partitions=partition_numbers(partitions))

    def _release(self, partitions) -> None:
        """Whoever gets these partitions next reads them afresh: forget their waits and pauses."""
        gone = {tp.partition for tp in partitions}
        self._held -= gone
        paused = [tp for tp in partitions if self._resume_at.pop(tp.partition, None) is not None]
        if paused:
            self.consumer.resume(paused)
        for counts in (self._reads, self._faults):
            for key in [key for key in counts if key[0] in gone]:
                del counts[key]

    def _report_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        report("error", message=error.str(), fatal=error.fatal())
        if error.fatal():
            self.stopping = True

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True
        # Closing needs the brokers; if they are gone, don't linger as an orphan.
        signal.alarm(STOP_DEADLINE_SECONDS)


class DeadLetterFailed(Exception):
    """Kafka did not acknowledge a dead letter: the record stays where it is."""


class DeadLetterWriter:
    """Writes records to the lab's dead-letter topic, one at a time, each acknowledged by Kafka
    before the consumer moves past the original."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.topic = settings.dlq_topic or ""
        self._producer = Producer(
            {
                **settings.client,
                "client.id": f"{settings.name}-dead-letters",
                "acks": "all",
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "message.max.bytes": DEAD_LETTER_MAX_BYTES,
                "message.timeout.ms": (DEAD_LETTER_ACK_SECONDS - 5) * 1000,
                "socket.connection.setup.timeout.ms": 3000,
            },
            logger=quiet_logger,
        )

    def write(self, message, headers, why: dict[str, str]) -> tuple[int, int]:
        """The original key, value and headers plus `why`; (partition, offset) of the dead letter."""
        if not self.topic:
            raise DeadLetterFailed("this consumer was started without a dead-letter topic")
        # Header names that are not UTF-8 can't be written back by this client: those go.
        kept = [(name, value) for name, value in headers if (name, value) != UNREADABLE_HEADERS]
        outcome: list[tuple[KafkaError | None, object]] = []
        try:
            self._producer.produce(
                self.topic,
                key=message.key(),
                value=message.value(),
                headers=kept + [(name, value.encode(errors="replace")) for name, value in why.items()],
                on_delivery=lambda error, written: outcome.append((error, written)),
            )
        except (BufferError, KafkaException) as exc:
            raise DeadLetterFailed(str(exc)) from None
        deadline = time.monotonic() + DEAD_LETTER_ACK_SECONDS
        while not outcome and time.monotonic() < deadline:
            self._producer.poll(0.05)
        if not outcome:
            raise DeadLetterFailed(f"Kafka did not acknowledge it within {DEAD_LETTER_ACK_SECONDS} s")
        error, written = outcome[0]
        if error is not None:
            raise DeadLetterFailed(error.str())
        return written.partition(), written.offset()


def main(argv: list[str]) -> int:
    return service_main(
        argv,
        module="kafkalab.kafka.notification_service",
        settings_type=ServiceSettings,
        service_type=NotificationService,
        start_errors=(KafkaException,),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
