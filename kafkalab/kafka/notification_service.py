"""NotificationService: one real consumer process in a lab's consumer group.

Run as ``python -m kafkalab.kafka.notification_service '<json settings>'``. It subscribes to
the lab's orders topic, "sends an email" for each record, and reports everything it does as
one JSON object per line on stdout (flushed at once, so a report written just before a
SIGKILL still reaches the lab runner):

    started, assigned, revoked, lost, received, processed, emailed, committed, error, stopped

SIGTERM is a graceful stop: the consumer closes, leaves the group, and the group rebalances at
once. SIGKILL is a crash: nothing is closed, and the group waits for the session timeout.

This module needs only confluent-kafka, not Django: a consumer process starts fast and small.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException

from kafkalab.kafka.consumer_config import CommitMode, ConsumerConfig
from kafkalab.kafka.tail import record_headers

STOP_DEADLINE_SECONDS = 10
# A report is one line the lab runner reads with a bounded buffer: whatever a record holds,
# no text field of a report grows past these.
REPORT_TEXT_CHARS = 1000
KEY_CHARS = 200
ORDER_ID_CHARS = 64
EVENT_TYPE_CHARS = 40
# Bigger than any record the brokers accept by default; a bigger value is not parsed.
MAX_JSON_BYTES = 1 << 20
PR_SET_PDEATHSIG = 1


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


def report(event: str, **fields: object) -> None:
    fields = {
        name: _short(value, REPORT_TEXT_CHARS) if isinstance(value, str) else value for name, value in fields.items()
    }
    sys.stdout.write(json.dumps({"event": event, "at": time.time(), **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _partitions(partitions) -> list[int]:
    return sorted(tp.partition for tp in partitions)


class NotificationService:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.stopping = False
        self.consumer = Consumer(settings.consumer_config(), logger=_ErrorLogger())

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        self.consumer.subscribe(
            [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        report("started", config=self.settings.consumer_config() | {"bootstrap.servers": None})
        try:
            while not self.stopping:
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
        return 0

    def _handle(self, message) -> None:
        where = {"partition": message.partition(), "offset": message.offset()}
        report("received", **where, key=_text(message.key(), KEY_CHARS))
        config = self.settings.config
        if config.commit_mode == CommitMode.BEFORE:
            self._commit(message)
        delay = config.processing_delay_ms / 1000
        if delay:
            time.sleep(delay)
        report("processed", **where)
        self._email(message, where)
        if config.commit_mode == CommitMode.AFTER:
            self._commit(message)
        elif not config.enable_auto_offset_store:
            # Auto-commit, but only of what is processed: at-least-once without manual commits.
            self.consumer.store_offsets(message=message)
            report("stored", **where)

    def _email(self, message, where: dict) -> None:
        # Any client may write to the topic: a record this service cannot read is still "emailed",
        # without an order id, and never ends the process.
        event_type = _text(dict(record_headers(message)).get("event-type"), EVENT_TYPE_CHARS)
        body = _json_body(message.value())
        order_id = body.get("orderId") if isinstance(body, dict) else None
        report(
            "emailed",
            **where,
            order_id=_short(order_id, ORDER_ID_CHARS) if isinstance(order_id, str) else None,
            event_type=event_type or None,
        )

    def _commit(self, message) -> None:
        try:
            committed = self.consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            report("error", message=f"commit failed: {exc.args[0].str() if exc.args else exc}")
            return
        report("committed", offsets={str(tp.partition): tp.offset for tp in committed or []})

    def _on_assign(self, consumer, partitions) -> None:
        report("assigned", partitions=_partitions(partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        report("revoked", partitions=_partitions(partitions))

    def _on_lost(self, consumer, partitions) -> None:
        report("lost", partitions=_partitions(partitions))

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


class _ErrorLogger:
    """librdkafka's log lines, reported as errors when they are errors, else dropped."""

    def log(self, level: int, msg: str, *args, **kwargs) -> None:
        if level >= 40:
            report("error", message=msg % args if args else msg)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _text(value: bytes | None, limit: int) -> str | None:
    """At most `limit` characters of `value` as UTF-8, decoding no more bytes than that needs."""
    return None if value is None else value[: limit * 4].decode("utf-8", errors="replace")[:limit]


def _short(text: str, limit: int) -> str:
    # JSON strings may hold lone surrogates ("\ud800"), which the lab runner could not store.
    return text[:limit].encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")[:limit]


def _json_body(value: bytes | None) -> object | None:
    """The value as JSON, or None when it is none, too big, not JSON, or nested too deeply."""
    if not value or len(value) > MAX_JSON_BYTES:
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGTERM us when the lab runner dies, so no consumer outlives the app."""
    if parent_pid is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the runner reaps us on a clean stop
        pass
    if os.getppid() != parent_pid:  # the runner died before we asked
        sys.exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m kafkalab.kafka.notification_service '<json settings>'", file=sys.stderr)
        return 2
    try:
        settings = ServiceSettings(**json.loads(argv[1]))
        die_with_parent(settings.parent_pid)
        service = NotificationService(settings)
    except (TypeError, ValueError, KafkaException) as exc:
        report("error", message=f"could not start: {exc}", fatal=True)
        return 1
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
