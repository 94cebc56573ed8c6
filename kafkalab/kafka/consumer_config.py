"""A NotificationService instance's settings and statuses: one type, defaults in one place.

The "Add consumer" form, the supervisor, the consumer process and the lab's live model all use
these. Needs nothing but the standard library, so the consumer process starts small.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ConsumerStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    KILLED = "killed"
    CRASHED = "crashed"
    # Crashed on a poison record under the crash policy: the supervisor starts it again soon.
    RESTARTING = "restarting"

    @property
    def is_live(self) -> bool:
        """A process exists for it, or is being started (at once, or after a crash on a poison record)."""
        return self in LIVE_STATUSES


# A crash-looping consumer counts as live: it holds a place among the lab's consumers, and Stop
# or Kill ends its loop.
LIVE_STATUSES = frozenset(
    {ConsumerStatus.STARTING, ConsumerStatus.RUNNING, ConsumerStatus.STOPPING, ConsumerStatus.RESTARTING}
)


class Assignor(StrEnum):
    RANGE = "range"
    ROUNDROBIN = "roundrobin"
    COOPERATIVE_STICKY = "cooperative-sticky"


class GroupProtocol(StrEnum):
    CLASSIC = "classic"
    CONSUMER = "consumer"  # KIP-848: the broker assigns partitions


class CommitMode(StrEnum):
    AUTO = "auto"  # enable.auto.commit
    AFTER = "after"  # manual commit after processing: at-least-once
    BEFORE = "before"  # manual commit before processing: at-most-once


class Reader(StrEnum):
    """How NotificationService reads an order event (see kafkalab.kafka.readers)."""

    STRICT = "strict"  # the contract it was built with, and no unknown field
    TOLERANT = "tolerant"  # only the fields it needs
    REGISTRY = "registry"  # the writer's schema from the registry


class FailurePolicy(StrEnum):
    """What happens to a record the reader can't process (a poison pill)."""

    CRASH = "crash"  # exit with the error; the supervisor restarts it, and it fails again
    SKIP = "skip"  # move past it: a missed email
    DEAD_LETTER = "dead-letter"  # set it aside on the lab's dead-letter topic, then move past it
    RETRY = "retry"  # try again with backoff a few times, then dead-letter it


class IsolationLevel(StrEnum):
    # librdkafka's default first; the Java client defaults to read_uncommitted.
    READ_COMMITTED = "read_committed"
    READ_UNCOMMITTED = "read_uncommitted"


# Bounds the form enforces; the broker allows session timeouts from 1 s in the lab cluster.
SESSION_TIMEOUT_MS = (1_000, 60_000)
PROCESSING_DELAY_MS = (0, 60_000)
AUTO_COMMIT_INTERVAL_MS = (100, 600_000)
RETRY_ATTEMPTS = (1, 5)
# The first wait between attempts; each later wait doubles it.
RETRY_BACKOFF_MS = (100, 10_000)


@dataclass(frozen=True)
class ConsumerConfig:
    assignment_strategy: Assignor = Assignor.RANGE
    group_protocol: GroupProtocol = GroupProtocol.CLASSIC
    session_timeout_ms: int = 10_000
    processing_delay_ms: int = 0
    commit_mode: CommitMode = CommitMode.AUTO
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5_000
    enable_auto_offset_store: bool = True
    isolation_level: IsolationLevel = IsolationLevel.READ_COMMITTED
    reader: Reader = Reader.TOLERANT
    # Skip by default: a lab survives any record a foreign client writes, and each one it can't
    # read shows as a missed email rather than stopping the partition.
    failure_policy: FailurePolicy = FailurePolicy.SKIP
    retry_attempts: int = 3
    retry_backoff_ms: int = 500

    def __post_init__(self) -> None:
        # Stored configs are plain JSON: turn strings back into their enums, and reject the unknown.
        for name, kind in _ENUM_FIELDS.items():
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.commit_mode != CommitMode.AUTO:
            # Manual commits only make sense with auto-commit off.
            object.__setattr__(self, "enable_auto_commit", False)
        # These bound how long one record can hold its partition: refuse what the form would.
        for name, (low, high) in _BOUNDED_FIELDS.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")

    @property
    def retries(self) -> bool:
        return self.failure_policy == FailurePolicy.RETRY

    @property
    def dead_letters(self) -> bool:
        """Whether this consumer writes to the lab's dead-letter topic."""
        return self.failure_policy in (FailurePolicy.DEAD_LETTER, FailurePolicy.RETRY)

    def retry_wait_ms(self, attempt: int, *, cap_ms: int) -> int:
        """How long to wait after failed attempt number `attempt` (1, 2, …): doubling, capped."""
        return min(cap_ms, self.retry_backoff_ms * 2 ** max(0, attempt - 1))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConsumerConfig:
        """From stored JSON; unknown keys are ignored and missing ones take the defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in (data or {}).items() if key in names})

    def as_dict(self) -> dict[str, Any]:
        return {name: (str(value) if isinstance(value, StrEnum) else value) for name, value in vars(self).items()}

    @property
    def auto_commits(self) -> bool:
        return self.commit_mode == CommitMode.AUTO and self.enable_auto_commit

    @property
    def heartbeat_interval_ms(self) -> int:
        return heartbeat_interval_ms(self.session_timeout_ms)

    def kafka_settings(self) -> dict[str, object]:
        """The librdkafka settings these stand for (group and client ids are the caller's)."""
        config: dict[str, object] = {
            "group.protocol": str(self.group_protocol),
            "isolation.level": str(self.isolation_level),
            "enable.auto.commit": self.auto_commits,
            "auto.commit.interval.ms": self.auto_commit_interval_ms,
            # The process stores offsets itself, at hand-over when enable_auto_offset_store is on
            # (what librdkafka would do): librdkafka refuses store_offsets() while it stores them,
            # and a poison record's offset must be stored back so that no commit passes it.
            "enable.auto.offset.store": False,
            # The processing delay is part of the lesson, not a reason to be thrown out.
            "max.poll.interval.ms": max(300_000, self.processing_delay_ms * 4),
        }
        if self.group_protocol == GroupProtocol.CLASSIC:
            # KIP-848 moves these to the broker: setting them there is a configuration error.
            config["partition.assignment.strategy"] = str(self.assignment_strategy)
            config["session.timeout.ms"] = self.session_timeout_ms
            config["heartbeat.interval.ms"] = self.heartbeat_interval_ms
        return config


_ENUM_FIELDS = {
    "assignment_strategy": Assignor,
    "group_protocol": GroupProtocol,
    "commit_mode": CommitMode,
    "isolation_level": IsolationLevel,
    "reader": Reader,
    "failure_policy": FailurePolicy,
}
_BOUNDED_FIELDS = {"retry_attempts": RETRY_ATTEMPTS, "retry_backoff_ms": RETRY_BACKOFF_MS}


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """Classic protocol: a member learns of a rebalance at its next heartbeat, so beat at least
    once a second (a graceful stop then rebalances within about a second), and at most a third
    of the session timeout, as Kafka advises."""
    return max(100, min(1000, session_timeout_ms // 3))
