"""The lab observer: sees the lab from outside and keeps its live model.

One thread per watched lab:
- reads every partition of the orders topic, its dead-letter topic and the invoices topic with one
  TopicTail (no group, read_uncommitted), keeping a bounded window of recent records per lane; a
  dead letter's headers mark the orders record it points at as poison;
- reads the orders and invoices topics a second time, read_committed: what that reader skips
  marks records aborted, open or control markers (kafkalab.runner.txn_marks), and the invoices it
  gets are counted;
- takes the group probe's latest snapshot (partitions with leader, ISR and offsets; the group;
  its committed offsets);
- combines that with the consumer processes' own reports (LabLive) into the model
  (kafkalab.runner.model) and publishes it to the lab's viewers as plain data.

A record goes out at once while the lab's push budget (PUSHES_PER_SECOND, with a small burst)
allows; under load, records wait for the next push and go out together. Panels go out at most
every PANEL_INTERVAL, and only when their data changed. So the page stays live at any event rate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import Counter, deque
from typing import Any

from django.conf import settings

from kafkalab.kafka import topics as kafka_topics
from kafkalab.kafka.admin import shared_admin
from kafkalab.kafka.config import client_config
from kafkalab.kafka.errors import KafkaUnavailable
from kafkalab.kafka.group_watch import GroupSnapshot, ProbeHub, probe_hub
from kafkalab.kafka.groups import GroupDescription
from kafkalab.kafka.tail import TailPartition, TailRecord, TopicTail
from kafkalab.labs import facts
from kafkalab.labs.events import decode_key, event_type_of
from kafkalab.runner import model
from kafkalab.runner.lag_history import LagHistory
from kafkalab.runner.live import LabLive
from kafkalab.runner.protocol import (
    DLQ_VIEW,
    INVOICES_VIEW,
    ORDERS_VIEW,
    LabModel,
    LabPanels,
    LabRecords,
    Message,
    lab_publish,
)
from kafkalab.runner.txn_marks import OPEN, PartitionTxnMarks
from lessons.tracker import LessonTracker

log = logging.getLogger(__name__)

# Record pushes: a steady 25 a second covers a learner's clicks and a 20 events/s demo one push
# per record; past that, records are coalesced. The burst lets a few quick records out at once.
PUSHES_PER_SECOND = 25.0
PUSH_BURST = 3.0
PANEL_INTERVAL = 0.25  # seconds between panel pushes at most
LESSON_INTERVAL = 0.1  # seconds between checks of the lesson's current step, while things change
OFFSETS_INTERVAL = 0.5  # seconds between looks at the group probe's snapshot
PARTITIONS_CHECK_INTERVAL = 10.0  # seconds between metadata checks nobody asked for
ANALYSIS_WINDOW = 2000  # records per partition remembered to judge missed emails
READY_TIMEOUT = 8.0  # a model is answered after this long even if the probe has not spoken yet
BATCH = 2000
# How long a quiet lab's thread waits for a record before it looks at its other work; a record
# that comes meanwhile ends the wait at once, so this costs no latency, only wake-ups.
IDLE_WAIT = 0.1
PUSH_RECHECK = 0.005  # seconds between looks at whether the last record push was delivered
DEAD_LETTERS_REMEMBERED = 1000  # dead letters whose orders record is marked poison, newest kept
UNCOMMITTED, COMMITTED = "read_uncommitted", "read_committed"
# The read_committed reader is not what makes records appear on the page: idle, it may let the
# broker hold its fetches longer (new records still end the wait at once).
COMMITTED_FETCH_WAIT_MS = 250


class PushBudget:
    """A token bucket: a push spends a token; tokens come back at `rate` a second, up to `burst`."""

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._updated = time.monotonic()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def wait(self, now: float) -> float:
        """Seconds until a push may go out (0 when it may now)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return missing / self.rate if missing > 1e-9 else 0.0  # no float residue of a token

    def spend(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1.0


class LaneState:
    """One partition: its recent records, what the probe last said of it, the group's commit,
    its lag over the last minutes and what transactions did to it."""

    def __init__(self, partition: int, window: int) -> None:
        self.partition = partition
        self.records: deque[dict] = deque(maxlen=window)
        self.txn = PartitionTxnMarks()
        self.starts: dict[str, int] = {}  # isolation level → where that tail began reading
        self.state: dict | None = None  # the probe's PartitionState, as a dict
        self.seen_end: int | None = None  # one past the newest offset read
        self.committed: int | None = None
        self.lag_history = LagHistory()

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.seen_end = max(self.seen_end or 0, record["offset"] + 1)

    def started(self, isolation: str, start: int | None) -> None:
        """A tail began reading this partition at `start`; once both have, marks are judged from
        the later of the two starts."""
        if start is None or isolation in self.starts:
            return
        self.starts[isolation] = start
        if len(self.starts) == 2:
            self.txn.begin(max(self.starts.values()))

    def last_stable(self) -> int | None:
        # Only the orders topic's partitions have a probed LSO; the others have the reader's alone.
        return self.txn.last_stable(self.state.get("last_stable") if self.state else None)

    def txn_data(self) -> dict:
        """The lane's last stable offset and its transaction marks, from the oldest record it shows."""
        oldest = self.records[0]["offset"] if self.records else self.seen_end or 0
        return {
            "last_stable": self.last_stable(),
            "txn": {
                "open": [r["offset"] for r in self.records if self.txn.txn_of(r["offset"]) == OPEN],
                "aborted": self.txn.aborted_since(oldest),
            },
            "markers": [{"offset": m.offset, "control": m.control} for m in self.txn.markers_since(oldest)],
        }

    def txn_partition_data(self) -> dict:
        """The partition's last stable offset and every aborted offset and marker remembered, as
        state.json lists a partition."""
        return {
            "last_stable": self.last_stable(),
            "aborted": list(self.txn.aborted),
            "markers": [{"offset": o, "control": c} for o, c in self.txn.markers.items()],
        }

    @property
    def log_end(self) -> int | None:
        # Between probe snapshots, the newest offset read bounds the log end from below; so does
        # where the read_uncommitted tail has read to, past a COMMIT or ABORT marker at the end.
        probed = self.state.get("log_end") if self.state else None
        read_to = self.txn.uncommitted_end if self.txn.start is not None else None
        known = [end for end in (probed, self.seen_end, read_to) if end is not None]
        return max(known) if known else None


class TopicView:
    """One topic the page draws as lanes: the orders topic, or another of the lab's topics (the
    dead-letter and invoices topics), each partition a LaneState. `marks_transactions`: the
    read_committed tail reads it too, so its lanes carry transaction marks (not the dead-letter
    topic: a reader that never reads it would make every dead letter look open)."""

    def __init__(self, *, view: str, topic: str, window: int, marks_transactions: bool = False) -> None:
        self.view, self.topic, self.window = view, topic, window
        self.marks_transactions = marks_transactions
        self.lanes: dict[int, LaneState] = {}

    def lane(self, partition: int) -> LaneState:
        lane = self.lanes.get(partition)
        if lane is None:
            lane = self.lanes[partition] = LaneState(partition, self.window)
        return lane

    def lane_data(self, *, with_records: bool) -> list[dict]:
        """Its lanes, for a topic the lab's group does not read (the orders lanes say more)."""
        lanes = []
        for partition, lane in sorted(self.lanes.items()):
            data = model.log_lane_data(view=self.view, partition=partition, state=lane.state, log_end=lane.log_end)
            if self.marks_transactions:
                data.update(lane.txn_data())
            if with_records:
                data["records"] = list(lane.records)
            lanes.append(data)
        return lanes

    def topic_data(self) -> dict:
        """The topic and its partitions, as state.json lists topics."""
        partitions = [
            {
                **(lane.state or {"partition": p}),
                "log_end": lane.log_end,
                **(lane.txn_partition_data() if self.marks_transactions else {}),
            }
            for p, lane in sorted(self.lanes.items())
        ]
        lanes = self.lane_data(with_records=False)
        return {"name": self.topic, "role": self.view, "partitions": partitions, "records": model.records_held(lanes)}


class LabObserver:
    def __init__(
        self,
        *,
        lab_id: int,
        topic: str,
        group_id: str,
        live: LabLive,
        loop: asyncio.AbstractEventLoop,
        layer,
        lessons: LessonTracker | None = None,
        dlq_topic: str | None = None,
        invoices_topic: str | None = None,
        on_panels=None,
    ) -> None:
        self.lab_id = lab_id
        # Called (on this thread) with each model the panels are drawn from: a classroom's
        # dashboard summary is made from it (kafkalab.runner.consumer.LabSession).
        self._on_panels = on_panels
        self.topic = topic
        # lab-<id>.orders.dlq: named after the orders topic, as the lab names it.
        self.dlq_topic = dlq_topic or f"{topic}.dlq"
        # lab-<id>.invoices: BillingService's output, named after the lab as the lab names it.
        self.invoices_topic = invoices_topic or f"{topic.removesuffix('.orders')}.invoices"
        self.group_id = group_id
        self.live = live
        self.lessons = lessons
        self.window = settings.LAB_LANE_WINDOW
        self.ready = threading.Event()
        self._loop = loop
        self._layer = layer
        self._lock = threading.Lock()
        self._orders = TopicView(view=ORDERS_VIEW, topic=topic, window=self.window, marks_transactions=True)
        self._lanes = self._orders.lanes
        # The lab's other topics, drawn below the orders lanes, in this order.
        self._others = [
            TopicView(view=DLQ_VIEW, topic=self.dlq_topic, window=self.window),
            TopicView(view=INVOICES_VIEW, topic=self.invoices_topic, window=self.window, marks_transactions=True),
        ]
        # Invoices per orderId as a read_committed reader gets them (its own tail: see _run).
        self._invoices = facts.InvoiceCount()
        self._views = {view.topic: view for view in (self._orders, *self._others)}
        # The topics the read_committed tail reads too, their transaction marks judged.
        self._judged = [view for view in self._views.values() if view.marks_transactions]
        # Orders records a dead letter points at ((partition, offset) → dead_letter_data), oldest first.
        self._dead_lettered: dict[tuple[int, int], dict] = {}
        # Recent records no consumer has emailed yet (partition → offset → key): the candidates for
        # missed emails. Emailed ones leave it, so it stays small however busy the lab is.
        self._unemailed: dict[int, dict[int, str | None]] = {}
        self._group: GroupDescription | None = None
        self._group_error: str | None = None
        self._last_panels: dict | None = None
        # The last record and panel pushes, until delivered: the next waits for its predecessor.
        self._records_push: concurrent.futures.Future | None = None
        self._panels_push: concurrent.futures.Future | None = None
        self._partitions_requested = False
        # The readers' first look is a look: a count aside before it would find every partition
        # unread, and have them look again at once (most of a second, the page waiting on it).
        self._partitions_checked_at = time.monotonic()
        self._stop = threading.Event()
        self._refresh = threading.Event()
        self._tails: tuple[TopicTail, TopicTail] | None = None  # read_uncommitted, read_committed
        self._redraw = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"observer-lab-{lab_id}", daemon=True)

    # Control, from the runner's event loop ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def request_refresh(self) -> None:
        self._refresh.set()

    def request_redraw(self) -> None:
        self._redraw.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # The model ----------------------------------------------------------------------------------

    def model(self, *, with_records: bool = True) -> dict[str, Any]:
        """The whole lab, as plain data."""
        blocked = self._blocked()
        with self._lock:
            lanes = self._lane_data(with_records=with_records, blocked=blocked)
            views = [self._view_data(view, with_records=with_records) for view in self._others]
            missed = self._missed()
            partitions = [
                {
                    **(lane.state or {"partition": p}),
                    "log_end": lane.log_end,
                    **lane.txn_partition_data(),
                    "blocked_at": blocked.get(p),
                }
                for p, lane in sorted(self._lanes.items())
            ]
            orders = {"name": self.topic, "role": ORDERS_VIEW, "partitions": partitions, "error": self._group_error}
            others = [view.topic_data() for view in self._others]
            poison = self._poison()
            invoices = self._invoices.as_data()
            aborted = {(p, offset) for p, lane in self._lanes.items() for offset in lane.txn.aborted}
            group = model.group_data(
                group_id=self.group_id,
                group=self._group,
                committed={p: lane.committed for p, lane in self._lanes.items() if lane.committed is not None},
                lanes=lanes,
                error=self._group_error,
            )
        return {
            "lab": {
                "id": self.lab_id,
                "name": f"lab-{self.lab_id}",
                "topic": self.topic,
                "dlq_topic": self.dlq_topic,
                "invoices_topic": self.invoices_topic,
                "group_id": self.group_id,
            },
            "topics": [orders, *others],
            "lanes": lanes,
            "views": views,
            "poison": poison,
            "groups": [group],
            **model.live_data(self.live),
            "outbox": model.outbox_data(self.live, missed, aborted),
            "billing": {**invoices, "topic": self.invoices_topic, "instances": self.live.billing_data()},
        }

    def _lane_data(self, *, with_records: bool, blocked: dict[int, int], with_lag_history: bool = True) -> list[dict]:
        owners, positions = self.live.owners(), self.live.positions()
        lanes = []
        for partition, lane in sorted(self._lanes.items()):
            data = model.lane_data(
                partition=partition,
                state=lane.state,
                log_end=lane.log_end,
                committed=lane.committed,
                owner=owners.get(partition),
                positions=positions.get(partition, []),
                lag_history=lane.lag_history.as_data() if with_lag_history else None,
                blocked_at=blocked.get(partition),
            )
            data.update(lane.txn_data())
            if with_records:
                data["records"] = list(lane.records)
            lanes.append(data)
        return lanes

    def _view_data(self, view: TopicView, *, with_records: bool) -> dict:
        return model.view_data(view=view.view, topic=view.topic, lanes=view.lane_data(with_records=with_records))

    def _blocked(self) -> dict[int, int]:
        """Orders partitions a crash-looping consumer is stuck on, by the processes' reports."""
        with self.live.lock:
            return dict(getattr(self.live, "blocked", {}))

    def _poison(self) -> list[dict]:
        with self.live.lock:
            reported = dict(getattr(self.live, "poison", {}))
        return model.poison_data(reported=reported, dead_lettered=self._dead_lettered)

    def _missed(self) -> list[facts.Missed]:
        with self.live.lock:
            for partition, pending in self._unemailed.items():
                for offset in [o for o in pending if (partition, o) in self.live.email_counts]:
                    del pending[offset]
            return facts.missed(
                records=((p, offset, key) for p, pending in self._unemailed.items() for offset, key in pending.items()),
                committed={p: lane.committed for p, lane in self._lanes.items() if lane.committed is not None},
                emailed=self.live.email_counts,
                in_flight=self.live.in_flight(),
            )

    # The observer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        tail = committed = None
        probe = probe_hub(client_config())
        probe.watch(group_id=self.group_id, topic=self.topic)
        started = time.monotonic()
        try:
            tail = TopicTail(list(self._views), window=ANALYSIS_WINDOW, config=client_config())
            # One read_committed reader for the orders and the invoices (transaction marks; and
            # duplicates are counted over the newest invoices Kafka holds committed).
            committed = TopicTail(
                [view.topic for view in self._judged],
                window=ANALYSIS_WINDOW,
                windows={self.invoices_topic: facts.INVOICED_ORDERS_REMEMBERED},
                config=client_config(),
                isolation=COMMITTED,
                fetch_wait_ms=COMMITTED_FETCH_WAIT_MS,
            )
            self._tails = (tail, committed)
            self._sync(tail, probe, started)
            self._publish(LabModel(model=self.model()))
            self._loop_until_stopped(tail, probe, started)
        except Exception:
            log.exception("observer for lab %s stopped", self.lab_id)
        finally:
            self.ready.set()  # nobody waits forever for a model that will not come
            probe.unwatch(self.group_id)
            for opened in (tail, committed):
                if opened is not None:
                    opened.close()

    def _loop_until_stopped(self, tail: TopicTail, probe: ProbeHub, started: float) -> None:
        fresh: dict[tuple[str, int], list[dict]] = {}  # (view, partition) → records not pushed yet
        budget = PushBudget(rate=PUSHES_PER_SECOND, burst=PUSH_BURST)
        last_poll = last_panels = last_lesson = 0.0
        lesson_due = False  # something changed that the current lesson step may be waiting for
        # A closed loop means its runner is gone; a quiet lab would otherwise never push and notice.
        while not self._stop.is_set() and not self._loop.is_closed():
            # Records waiting to go out may wait only until their push is due, not for the next record.
            wait = self._push_wait(budget) if fresh else IDLE_WAIT
            for view, record in self._read(tail, wait):
                lesson_due = True
                lane = fresh.setdefault((view, record["partition"]), [])
                lane.append(record)
                if len(lane) > 2 * self.window:  # a lane shows `window` records: older ones would go anyway
                    del lane[: -self.window]
            if self._judge_transactions():
                self._redraw.set()
                lesson_due = True
            now = time.monotonic()
            if self._refresh.is_set() or now - last_poll >= OFFSETS_INTERVAL:
                if self._refresh.is_set():
                    self._partitions_requested = True
                    self._refresh.clear()
                last_poll = now
                if self._sync(tail, probe, started):
                    fresh.clear()
                    self._publish(LabModel(model=self.model()))
                self._redraw.set()
                lesson_due = True
            if fresh and self._push_wait(budget) == 0:
                budget.spend(now)
                self._publish_records(fresh)
                fresh = {}
                self._redraw.set()
            lesson_due = lesson_due or self._redraw.is_set()  # consumers reported something
            if lesson_due and now - last_lesson >= LESSON_INTERVAL:
                lesson_due, last_lesson = False, now
                self._check_lesson()
            if self._redraw.is_set() and now - last_panels >= PANEL_INTERVAL:
                self._redraw.clear()
                last_panels = now
                self._publish_panels()

    def _push_wait(self, budget: PushBudget) -> float:
        """Seconds before waiting records may go out. While the last push is still on its way
        (its viewers are busy rendering), the records wait and go out together in the next one:
        the pushes slow to the pace the viewers keep, and the reading of Kafka never does."""
        if self._records_push is not None and not self._records_push.done():
            return PUSH_RECHECK
        return budget.wait(time.monotonic())

    def _read(self, tail: TopicTail, wait: float) -> list[tuple[str, dict]]:
        """What arrived, as (view, record): at once if something waits, else the first record to
        come within `wait`. Only the newest `window` records of each partition are shown: the
        rest are counted."""
        records = tail.poll(max_records=BATCH, timeout=0)
        if not records and wait > 0:
            records = tail.poll(max_records=1, timeout=wait)
        still_to_come = Counter((record.topic, record.partition) for record in records)
        shown = []
        for record in records:
            still_to_come[record.topic, record.partition] -= 1
            scrolls_out = still_to_come[record.topic, record.partition] >= self.window
            if record.topic != self.topic:
                view = self._views[record.topic]
                if (added := self._add_to_view(view, record, shown=not scrolls_out)) is not None:
                    shown.append((view.view, added))
            elif scrolls_out:
                self._count(record)
            elif (added := self._add(record)) is not None:
                shown.append((ORDERS_VIEW, added))
        return shown

    def _judge_transactions(self) -> bool:
        """Read what the read_committed tail got, and judge the offsets both tails have passed, in
        every topic both read. True when a lane's marks changed."""
        tail, committed = self._tails
        delivered = committed.poll(max_records=BATCH, timeout=0)
        positions = {view.topic: (tail.positions(view.topic), committed.positions(view.topic)) for view in self._judged}
        changed = False
        with self._lock:
            for record in delivered:
                self._views[record.topic].lane(record.partition).txn.saw_committed(record.offset)
                if record.topic == self.invoices_topic:
                    self._invoices.add(decode_key(record.key))  # invoices are keyed by orderId
                    changed = True
            for view in self._judged:
                uncommitted_at, committed_at = positions[view.topic]
                for partition, lane in view.lanes.items():
                    before = (len(lane.txn.aborted), len(lane.txn.markers), lane.txn.committed_end)
                    # A reader that has got nothing yet is where it started.
                    position = committed_at.get(partition, lane.starts.get(COMMITTED))
                    lane.txn.positions(
                        uncommitted=uncommitted_at.get(partition, lane.starts.get(UNCOMMITTED)),
                        committed=position,
                        committed_at_end=position is not None and committed.at_end(view.topic, partition, position),
                    )
                    lane.txn.judge()
                    after = (len(lane.txn.aborted), len(lane.txn.markers), lane.txn.committed_end)
                    changed = changed or before != after
        return changed

    def _count(self, record: TailRecord) -> None:
        """A record that scrolls out of its lane in the batch that brought it: only the outbox
        needs to know of it."""
        with self._lock:
            lane = self._lane(record.partition)
            lane.seen_end = max(lane.seen_end or 0, record.offset + 1)
            lane.txn.saw(record.offset)
            self._remember_unemailed(record.partition, record.offset, decode_key(record.key))

    def _add(self, record: TailRecord) -> dict | None:
        try:
            data = model.record_data(
                partition=record.partition,
                offset=record.offset,
                key=decode_key(record.key),
                event_type=event_type_of(record.headers, record.value),
                timestamp_ms=record.timestamp_ms,
            )
            data.update(model.wire_data(record.value, record.headers))
        except Exception:  # whatever a foreign client wrote, the lab goes on
            log.exception("lab %s: could not read the record at %s@%s", self.lab_id, record.partition, record.offset)
            return None
        with self._lock:
            lane = self._lane(record.partition)
            lane.add(data)
            lane.txn.saw(record.offset)
            self._remember_unemailed(record.partition, record.offset, data["key"])
        return data

    def _add_to_view(self, view: TopicView, record: TailRecord, *, shown: bool) -> dict | None:
        """A record of another of the lab's topics. A dead letter also marks the orders record
        it points at, even when it scrolls out of its own lane at once."""
        try:
            data = model.record_data(
                partition=record.partition,
                offset=record.offset,
                key=decode_key(record.key),
                event_type=event_type_of(record.headers, record.value),
                timestamp_ms=record.timestamp_ms,
            )
            if view.view == DLQ_VIEW:
                data["dead_letter"] = model.dead_letter_data(record.headers)
        except Exception:  # whatever a foreign client wrote, the lab goes on
            log.exception(
                "lab %s: could not read %s at %s@%s", self.lab_id, view.topic, record.partition, record.offset
            )
            return None
        with self._lock:
            if data.get("dead_letter"):
                self._note_dead_letter(data["dead_letter"])
            lane = view.lane(record.partition)
            if shown:
                lane.add(data)
            else:
                lane.seen_end = max(lane.seen_end or 0, record.offset + 1)
            if view.marks_transactions:
                lane.txn.saw(record.offset)
        return data if shown else None

    def _note_dead_letter(self, letter: dict) -> None:
        points_here = letter["topic"] in ("", self.topic)  # a dead letter of this lab's orders
        if not points_here or letter["partition"] is None or letter["offset"] is None:
            return
        where = (letter["partition"], letter["offset"])
        self._dead_lettered.pop(where, None)  # the newest dead letter of a record speaks for it
        self._dead_lettered[where] = letter
        if len(self._dead_lettered) > DEAD_LETTERS_REMEMBERED:
            del self._dead_lettered[next(iter(self._dead_lettered))]

    def _remember_unemailed(self, partition: int, offset: int, key: str | None) -> None:
        pending = self._unemailed.setdefault(partition, {})
        pending[offset] = key
        if len(pending) > ANALYSIS_WINDOW:
            del pending[next(iter(pending))]  # offsets arrive in order: the first is the oldest

    def _lane(self, partition: int) -> LaneState:
        return self._orders.lane(partition)

    def _sync(self, tail: TopicTail, probe: ProbeHub, started: float) -> bool:
        """Pick up new partitions and the probe's latest snapshot. True when the lanes changed."""
        snapshot = probe.latest(self.group_id)
        added: list[TailPartition] = []
        added_committed: list[TailPartition] = []
        if self._partitions_may_have_changed(tail, snapshot):
            # A broker down or slow: keep tailing what we have, and look again soon (the second
            # reader is not asked then: it would only keep the page waiting as long again).
            with contextlib.suppress(KafkaUnavailable):
                added = tail.refresh_partitions()
                added_committed = self._tails[1].refresh_partitions()
        with self._lock:
            for found in added:
                view = self._views[found.topic]
                lane = view.lane(found.partition)
                if found.topic != self.topic:  # the probe watches the orders topic only
                    lane.state = model.tail_partition_data(found)
                if view.marks_transactions:
                    lane.started(UNCOMMITTED, found.start)
            for found in added_committed:  # the read_committed tail reads judged topics only
                self._views[found.topic].lane(found.partition).started(COMMITTED, found.start)
            if snapshot is not None:
                self._apply_snapshot(snapshot)
        if snapshot is not None or time.monotonic() - started > READY_TIMEOUT:
            self.ready.set()
        return bool(added)

    def _partitions_may_have_changed(self, tail: TopicTail, snapshot: GroupSnapshot | None) -> bool:
        """Asking Kafka's metadata is costly with many labs: do it when told partitions changed,
        when the probe sees more than the tail reads, and when the look now and then (on a thread
        of its own) found partitions the readers don't read."""
        if time.monotonic() - self._partitions_checked_at >= PARTITIONS_CHECK_INTERVAL:
            self._partitions_checked_at = time.monotonic()
            self._count_partitions_aside()
        requested, self._partitions_requested = self._partitions_requested, False
        probed = {p.partition for p in snapshot.partitions} if snapshot is not None else set()
        reading = set(tail.partitions[self.topic])
        return requested or not reading or not probed <= reading

    def _count_partitions_aside(self) -> None:
        """Count each topic's partitions with the process's admin client, beside this thread: the
        readers' own metadata requests wait behind their held fetches, and asking them every
        PARTITIONS_CHECK_INTERVAL held every lab's pushes up for most of a second. Only a count
        above what the readers read (a topic that came, partitions a foreign client added) has
        them refresh."""
        reading = {topic: len(parts) for reader in self._tails or () for topic, parts in reader.partitions.items()}

        def count() -> None:
            admin = shared_admin(client_config())
            for topic, known in reading.items():
                try:
                    found = kafka_topics.partition_count(admin, topic)
                except KafkaUnavailable:
                    return  # the next look tries again; the page shows Kafka away by other means
                if found is not None and found > known:
                    self._partitions_requested = True
                    return

        threading.Thread(target=count, name=f"partition-count-lab-{self.lab_id}", daemon=True).start()

    def _apply_snapshot(self, snapshot: GroupSnapshot) -> None:
        for state in snapshot.partitions:
            if state.partition in self._lanes:
                self._lanes[state.partition].state = model.partition_data(state)
        self._group, self._group_error = snapshot.group, snapshot.error
        if snapshot.committed is not None:
            for partition, lane in self._lanes.items():
                lane.committed = snapshot.committed.get(partition)
        now = time.monotonic()
        for lane in self._lanes.values():
            lane.lag_history.sample(facts.lag(log_end=lane.log_end, committed=lane.committed), now=now)

    # Publishing ---------------------------------------------------------------------------------

    def _publish_records(self, fresh: dict[tuple[str, int], list[dict]]) -> None:
        appends = [
            # A lane shows `window` records at most, so older ones in this batch would be trimmed anyway.
            {"view": view, "partition": p, "records": records[-self.window :]}
            for (view, p), records in sorted(fresh.items())
        ]
        blocked = self._blocked()
        with self._lock:
            # The lag charts go out with the panels; a records push stays small.
            lanes = self._lane_data(with_records=False, blocked=blocked, with_lag_history=False)
            for view in self._others:
                lanes += view.lane_data(with_records=False)
        self._records_push = self._publish(LabRecords(appends=appends, lanes=lanes), wait=False)

    def _check_lesson(self) -> None:
        if self.lessons is not None and self.lessons.checking:
            self.lessons.evaluate(self.model(), now=time.time())

    def _publish_panels(self) -> None:
        if self._panels_push is not None and not self._panels_push.done():
            self._redraw.set()  # the viewers are still busy with the last ones: next time
            return
        panels = self.model(with_records=False)
        if self._on_panels is not None:
            self._on_panels(panels)
        if panels == self._last_panels:
            return
        self._last_panels = panels
        self._panels_push = self._publish(LabPanels(panels=panels), wait=False)

    def _publish(self, update: Message, *, wait: bool = True) -> concurrent.futures.Future | None:
        """Hand `update` to the runner's event loop. With `wait`, return once it was delivered
        (back-pressure: never queue faster than the layer delivers); else return its future."""
        if self._stop.is_set():
            return None
        push = lab_publish(self._layer, self.lab_id, update)
        try:
            future = asyncio.run_coroutine_threadsafe(push, self._loop)
        except RuntimeError:  # the runner's event loop is gone: nobody left to tell
            push.close()
            self._stop.set()
            return None
        if not wait:
            future.add_done_callback(self._log_undelivered)
            return future
        try:
            future.result(timeout=5)
        except Exception:
            log.warning("push to lab %s was not delivered", self.lab_id, exc_info=True)
        return None

    def _log_undelivered(self, future: concurrent.futures.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("push to lab %s was not delivered", self.lab_id, exc_info=future.exception())
