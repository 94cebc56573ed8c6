"""A BillingService instance's settings: one type, defaults in one place.

The "Add BillingService" form, the supervisor, the billing process and the lab's live model all
use these. Needs nothing but the standard library, so the billing process starts small.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class BillingMode(StrEnum):
    # Consume, produce and send the consumed offsets in one transaction, committed per batch.
    EXACTLY_ONCE = "exactly-once"
    # Produce, flush, then commit the consumed offsets: a crash in between repeats the batch.
    AT_LEAST_ONCE = "at-least-once"


# Bounded like NotificationService's delay: long enough to kill mid-batch, short enough that a
# batch ends well within the transaction timeout below.
PROCESSING_DELAY_MS = (0, 5_000)
BATCH_SIZE = (1, 50)
# A batch must end within the transaction's timeout: the longest batch takes BATCH_SIZE[1] ×
# PROCESSING_DELAY_MS[1] = 250 s; the broker caps the timeout at 15 min by default.
TRANSACTION_TIMEOUT_MS = 300_000
TRANSACTION_RETRY_BACKOFF_MS = 20


@dataclass(frozen=True)
class BillingConfig:
    mode: BillingMode = BillingMode.EXACTLY_ONCE
    processing_delay_ms: int = 0
    batch_size: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", BillingMode(self.mode))
        for name, (low, high) in _BOUNDED_FIELDS.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")

    @property
    def transactional(self) -> bool:
        return self.mode == BillingMode.EXACTLY_ONCE

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BillingConfig:
        """From stored JSON; unknown keys are ignored and missing ones take the defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in (data or {}).items() if key in names})

    def as_dict(self) -> dict[str, Any]:
        return {name: (str(value) if isinstance(value, StrEnum) else value) for name, value in vars(self).items()}

    def consumer_settings(self) -> dict[str, object]:
        """The librdkafka consumer settings of the mode (group and client ids are the caller's).
        Both modes commit by hand, after the batch: they differ in how the invoices are written."""
        return {
            "enable.auto.commit": False,
            # An exactly-once pipeline reads only committed orders; at-least-once reads them the same
            # way, so the two modes differ in one thing only.
            "isolation.level": "read_committed",
            "max.poll.interval.ms": max(300_000, self.batch_size * self.processing_delay_ms * 2),
        }

    def producer_settings(self, *, transactional_id: str) -> dict[str, object]:
        settings: dict[str, object] = {
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
        if self.transactional:
            settings["transactional.id"] = transactional_id
            settings["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
            # Right after a commit the coordinator is still writing its markers, and it answers the
            # next transaction's first request "concurrent transactions", retriable: at the default
            # 100 ms back-off, that wait was most of every batch's time.
            settings["retry.backoff.ms"] = TRANSACTION_RETRY_BACKOFF_MS
        return settings


_BOUNDED_FIELDS = {"processing_delay_ms": PROCESSING_DELAY_MS, "batch_size": BATCH_SIZE}
