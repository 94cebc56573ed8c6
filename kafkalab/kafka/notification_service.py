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

COMMIT_AUTO = "auto"
COMMIT_AFTER = "after"  # manual commit after processing: at-least-once
COMMIT_BEFORE = "before"  # manual commit before processing: at-most-once

STOP_DEADLINE_SECONDS = 10
PR_SET_PDEATHSIG = 1

CLASSIC = "classic"
CONSUMER = "consumer"  # KIP-848


@dataclass
class ServiceSettings:
    """What the lab runner passes to one process (as JSON on the command line)."""

    name: str
    topic: str
    group_id: str
    client: dict[str, object]  # bootstrap servers and security settings
    assignment_strategy: str = "range"
    group_protocol: str = CLASSIC
    session_timeout_ms: int = 10_000
    processing_delay_ms: int = 0
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5_000
    enable_auto_offset_store: bool = True
    commit_mode: str = COMMIT_AUTO
    isolation_level: str = "read_committed"
    auto_offset_reset: str = "earliest"
    parent_pid: int | None = None  # the lab runner: this process ends when it does
    extra: dict[str, object] = field(default_factory=dict)

    def consumer_config(self) -> dict[str, object]:
        config: dict[str, object] = {
            **self.client,
            "group.id": self.group_id,
            "client.id": self.name,
            "group.protocol": self.group_protocol,
            "auto.offset.reset": self.auto_offset_reset,
            "isolation.level": self.isolation_level,
            "enable.auto.commit": self.commit_mode == COMMIT_AUTO and self.enable_auto_commit,
            "auto.commit.interval.ms": self.auto_commit_interval_ms,
            "enable.auto.offset.store": self.enable_auto_offset_store,
            # The processing delay is part of the lesson, not a reason to be thrown out.
            "max.poll.interval.ms": max(300_000, self.processing_delay_ms * 4),
            # Notice added partitions within seconds (the default looks every 5 minutes).
            "topic.metadata.refresh.interval.ms": 3000,
            "socket.connection.setup.timeout.ms": 3000,
        }
        if self.group_protocol == CLASSIC:
            # KIP-848 moves these to the broker: setting them there is a configuration error.
            config["partition.assignment.strategy"] = self.assignment_strategy
            config["session.timeout.ms"] = self.session_timeout_ms
            config["heartbeat.interval.ms"] = heartbeat_interval_ms(self.session_timeout_ms)
        config.update(self.extra)
        return config


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """Classic protocol: a member learns of a rebalance at its next heartbeat, so beat at least
    once a second (a graceful stop then rebalances within about a second), and at most a third
    of the session timeout, as Kafka advises."""
    return max(100, min(1000, session_timeout_ms // 3))


def report(event: str, **fields: object) -> None:
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
        report("received", **where, key=_text(message.key()))
        if self.settings.commit_mode == COMMIT_BEFORE:
            self._commit(message)
        delay = self.settings.processing_delay_ms / 1000
        if delay:
            time.sleep(delay)
        report("processed", **where)
        self._email(message, where)
        if self.settings.commit_mode == COMMIT_AFTER:
            self._commit(message)
        elif not self.settings.enable_auto_offset_store:
            # Auto-commit, but only of what is processed: at-least-once without manual commits.
            self.consumer.store_offsets(message=message)
            report("stored", **where)

    def _email(self, message, where: dict) -> None:
        headers = dict(message.headers() or ())
        event_type = (headers.get("event-type") or b"").decode(errors="replace")
        try:
            body = json.loads(message.value() or b"")
        except ValueError:
            body = None
        order_id = body.get("orderId") if isinstance(body, dict) else None
        report("emailed", **where, order_id=order_id, event_type=event_type or None)

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


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


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
