"""How fast one lab may write: a token bucket per lab, in this process."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from kafkalab.labs.errors import LabLimitReached


class ProduceBudget:
    """Bursts up to LAB_MAX_BURST, refilled at LAB_PRODUCE_RATE events per second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, lab_id: int, count: int) -> None:
        capacity = float(settings.LAB_MAX_BURST)
        rate = float(settings.LAB_PRODUCE_RATE)
        with self._lock:
            tokens, stamp = self._buckets.get(lab_id, (capacity, time.monotonic()))
            now = time.monotonic()
            tokens = min(capacity, tokens + (now - stamp) * rate)
            if count > tokens:
                wait = (count - tokens) / rate
                self._buckets[lab_id] = (tokens, now)
                raise LabLimitReached(
                    f"Slow down: a lab may write {settings.LAB_PRODUCE_RATE} events per second. "
                    f"Try again in {wait:.1f} s."
                )
            self._buckets[lab_id] = (tokens - count, now)


produce_budget = ProduceBudget()
