"""Each partition's lag over the last few minutes: what a lane's lag chart draws.

The observer offers every lane's lag (kafkalab.labs.facts.lag) each time it looks at the group
probe's snapshot; the first offer of each second is kept. A lane keeps SPAN_SECONDS of them in a
bounded ring and hands out at most POINTS, so the model, state.json and every push stay small
however long the lab runs.
"""

from __future__ import annotations

import math
from collections import deque

from kafkalab.labs import facts

SPAN_SECONDS = 180
SAMPLE_SECONDS = 1.0
POINTS = 90


class LagHistory:
    def __init__(
        self, *, span_seconds: int = SPAN_SECONDS, every: float = SAMPLE_SECONDS, points: int = POINTS
    ) -> None:
        self.span_seconds = span_seconds
        self.every = every
        self.max_points = points
        self._samples: deque[int] = deque(maxlen=max(1, round(span_seconds / every)))
        self.samples_per_point = math.ceil(self._samples.maxlen / points)
        self._slot: int | None = None  # the clock slot (of `every` seconds) of the newest sample

    def sample(self, lag: int | None, *, now: float) -> bool:
        """Keep `lag` as the lag at `now` (seconds, monotonic) unless this slot has one already.
        An unknown lag (nothing committed yet) is not kept. True when it was kept."""
        slot = math.floor(now / self.every)
        if lag is None or (self._slot is not None and slot <= self._slot):
            return False
        if self._slot is not None:
            # Seconds the observer was too busy to look keep the last lag seen, so that a point
            # stays the same stretch of time however the looks fall.
            missed = min(slot - self._slot - 1, self._samples.maxlen)
            self._samples.extend([self._samples[-1]] * missed)
        self._samples.append(lag)
        self._slot = slot
        return True

    def points(self) -> list[int]:
        """Oldest first, at most `max_points` values: the highest lag of each stretch of
        `samples_per_point` slots. Stretches are aligned on the clock, so a point never changes
        once its stretch is over, and a peak is never averaged away."""
        if self._slot is None:
            return []
        first_slot = self._slot - len(self._samples) + 1
        points: list[int] = []
        stretch = None
        for slot, lag in enumerate(self._samples, start=first_slot):
            if slot // self.samples_per_point != stretch:
                stretch = slot // self.samples_per_point
                points.append(lag)
            else:
                points[-1] = max(points[-1], lag)
        return points[-self.max_points :]

    def as_data(self) -> dict:
        """The history as the model carries it: plain data a chart can be drawn from alone."""
        points = self.points()
        return {
            "span_seconds": self.span_seconds,
            "seconds_per_point": self.samples_per_point * self.every,
            "points": points,
            "now": self._samples[-1] if self._samples else None,
            "peak": facts.peak_lag(points),
        }
