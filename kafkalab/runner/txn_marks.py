"""What transactions did to a partition, judged from what two readers of it got from Kafka.

The observer reads each partition of the orders and invoices topics twice: `read_uncommitted`
(every record in the log) and `read_committed` (what a consumer reading committed data gets).
Kafka alone decides what the second one returns, so comparing them says, for any producer, the
lab's or a foreign one:
- a record the first got and the second skipped, below where the second has read to, was
  aborted;
- an offset neither got is a control record (a transaction's COMMIT or ABORT marker): it takes
  an offset and is delivered to nobody;
- a record at or past where a caught-up `read_committed` reader waits (the last stable offset)
  belongs to a transaction not decided yet: it is open.

A marker ends its producer's transaction in that partition: ABORT when a record since the
previous marker was aborted, COMMIT otherwise. (Kafka does not hand the markers' type to
consumers; two producers with transactions open at once in one partition could make this guess
wrong for one of them. The records' own marks never depend on it.)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

COMMIT = "commit"
ABORT = "abort"
OPEN = "open"
ABORTED = "aborted"

# Offsets remembered per partition: enough for every box a lane shows and then some.
REMEMBERED = 2000
# A record is called open only once the read_committed reader has had time to fetch it: a plain
# record it simply has not fetched yet is not held back by any transaction.
OPEN_AFTER_SECONDS = 0.25


@dataclass(frozen=True)
class Marker:
    offset: int
    control: str  # COMMIT or ABORT


class PartitionTxnMarks:
    """One partition, as both readers saw it from `start` on (where both began reading)."""

    def __init__(self, *, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        self.start: int | None = None
        # Offsets the read_uncommitted reader got → when it got them (monotonic seconds).
        self._read: OrderedDict[int, float] = OrderedDict()
        self._committed_read: set[int] = set()
        self.uncommitted_end = 0  # the read_uncommitted reader's position: offsets below are read
        self.committed_end = 0  # the read_committed reader's position: offsets below are decided
        self.caught_up_at: int | None = None  # where the read_committed reader last reached the end
        self._judged_until: int | None = None
        self._run_aborted = False  # a record aborted since the last marker
        self.aborted: OrderedDict[int, None] = OrderedDict()
        self.markers: OrderedDict[int, str] = OrderedDict()

    # What the readers report ----------------------------------------------------------------------

    def begin(self, start: int) -> None:
        """Both readers start at `start` (the later of their two starts): judge from there on."""
        self.start = start
        self._judged_until = start

    def saw(self, offset: int, *, now: float | None = None) -> None:
        self._read[offset] = time.monotonic() if now is None else now
        self._trim(self._read)

    def saw_committed(self, offset: int) -> None:
        self._committed_read.add(offset)
        if len(self._committed_read) > 2 * self.remembered:
            floor = max(self._committed_read) - self.remembered
            self._committed_read = {o for o in self._committed_read if o >= floor}

    def positions(self, *, uncommitted: int | None, committed: int | None, committed_at_end: bool) -> None:
        """The two readers' positions now; `committed_at_end`: the read_committed reader has read
        all Kafka would give it (it reached the last stable offset)."""
        if uncommitted is not None:
            self.uncommitted_end = max(self.uncommitted_end, uncommitted)
        if committed is not None:
            self.committed_end = max(self.committed_end, committed)
            if committed_at_end:
                self.caught_up_at = self.committed_end

    # Judging ---------------------------------------------------------------------------------------

    def judge(self) -> list[Marker]:
        """Classify every offset both readers have passed since the last call. Returns the markers
        found now (the aborted records are kept in `aborted`)."""
        if self._judged_until is None:
            return []
        limit = min(self.committed_end, self.uncommitted_end)
        found = []
        for offset in range(self._judged_until, limit):
            if offset in self._read:
                if offset not in self._committed_read:
                    self.aborted[offset] = None
                    self._trim(self.aborted)
                    self._run_aborted = True
            else:
                control = ABORT if self._run_aborted else COMMIT
                self._run_aborted = False
                self.markers[offset] = control
                self._trim(self.markers)
                found.append(Marker(offset, control))
        self._judged_until = max(self._judged_until, limit)
        return found

    def last_stable(self, probed: int | None) -> int | None:
        """The last stable offset: what Kafka's list_offsets said (`probed`, up to a moment old),
        or further where the read_committed reader has since read. With nothing probed (a topic
        the probe does not watch), the reader's position is the LSO only while it has read all
        Kafka would give it; before that it is only a floor, and the LSO is not known (None)."""
        read_to = self.committed_end if self.start is not None else None
        if probed is None and self.caught_up_at != self.committed_end:
            read_to = None
        known = [offset for offset in (probed, read_to) if offset is not None]
        return max(known) if known else None

    def txn_of(self, offset: int, *, now: float | None = None) -> str | None:
        """OPEN, ABORTED or None (committed, or in no transaction) for a record of this partition."""
        if offset in self.aborted:
            return ABORTED
        if self.start is None or offset < max(self.committed_end, self.start):
            return None
        read_at = self._read.get(offset)
        if read_at is None or self.caught_up_at is None or self.caught_up_at < self.committed_end:
            return None
        waited = (time.monotonic() if now is None else now) - read_at
        return OPEN if waited >= OPEN_AFTER_SECONDS else None

    def aborted_since(self, oldest: int) -> list[int]:
        return [offset for offset in self.aborted if offset >= oldest]

    def markers_since(self, oldest: int) -> list[Marker]:
        return [Marker(offset, control) for offset, control in self.markers.items() if offset >= oldest]

    def _trim(self, ordered: OrderedDict) -> None:
        while len(ordered) > self.remembered:
            ordered.popitem(last=False)
