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

    @property
    def is_live(self) -> bool:
        """A process exists (or is being started) for it."""
        return self in LIVE_STATUSES


LIVE_STATUSES = frozenset({ConsumerStatus.STARTING, ConsumerStatus.RUNNING, ConsumerStatus.STOPPING})


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


class IsolationLevel(StrEnum):
    # librdkafka's default first; the Java client defaults to read_uncommitted.
    READ_COMMITTED = "read_committed"
    READ_UNCOMMITTED = "read_uncommitted"


# Bounds the form enforces; the broker allows session timeouts from 1 s in the lab cluster.
SESSION_TIMEOUT_MS = (1_000, 60_000)
PROCESSING_DELAY_MS = (0, 60_000)
AUTO_COMMIT_INTERVAL_MS = (100, 600_000)


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

    def __post_init__(self) -> None:
        # Stored configs are plain JSON: turn strings back into their enums, and reject the unknown.
        for name, kind in _ENUM_FIELDS.items():
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.commit_mode != CommitMode.AUTO:
            # Manual commits only make sense with auto-commit off.
            object.__setattr__(self, "enable_auto_commit", False)

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
            "enable.auto.offset.store": self.enable_auto_offset_store,
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
}


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """Classic protocol: a member learns of a rebalance at its next heartbeat, so beat at least
    once a second (a graceful stop then rebalances within about a second), and at most a third
    of the session timeout, as Kafka advises."""
    return max(100, min(1000, session_timeout_ms // 3))
