"""The lab observer: sees the lab from outside and draws it.

One thread per watched lab:
- reads every partition of the orders topic with a TopicTail (no group, read_uncommitted),
  keeping a bounded window of recent events per lane;
- polls the log's offsets and the consumer group (state, members, committed offsets);
- combines that with the consumer processes' own reports (LabLive) and pushes HTML fragments.

Pushes are coalesced (at most one every FLUSH_INTERVAL for events, PANEL_INTERVAL for panels,
and only when the HTML changed), so the page stays live at any event rate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string

from kafkalab.kafka.config import client_config
from kafkalab.kafka.errors import KafkaUnavailable
from kafkalab.kafka.group_watch import GroupSnapshot, GroupWatch
from kafkalab.kafka.groups import GroupDescription
from kafkalab.kafka.tail import TailRecord, TopicTail
from kafkalab.labs.events import EventView, decode_key, event_type_of
from kafkalab.runner.live import LabLive

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05  # seconds between event pushes while events flow (they carry the lane metas)
PANEL_INTERVAL = 0.25  # seconds between redraws of the group, timeline and outbox at most
OFFSETS_INTERVAL = 0.5  # seconds between offset and group polls
ANALYSIS_WINDOW = 2000  # records per partition remembered to judge missed emails


def lab_group(lab_id: int) -> str:
    return f"lab.{lab_id}"


class LaneState:
    """One partition as the page shows it: recent events, the log's ends, the group's marks."""

    def __init__(self, partition: int, window: int) -> None:
        self.partition = partition
        self.events: deque[EventView] = deque(maxlen=window)
        self.log_start: int | None = None
        self.log_end: int | None = None
        self.committed: int | None = None
        self.position: int | None = None
        self.owner = None  # ConsumerLive holding it, if any

    def add(self, event: EventView) -> None:
        self.events.append(event)
        # Between watermark checks, the newest offset seen bounds the log end from below.
        if self.log_end is None or event.offset + 1 > self.log_end:
            self.log_end = event.offset + 1

    @property
    def lag(self) -> int | None:
        if self.log_end is None or self.committed is None:
            return None
        return max(0, self.log_end - self.committed)


@dataclass(frozen=True)
class MissedEmail:
    partition: int
    offset: int
    order_id: str | None


class LabObserver:
    def __init__(
        self, *, lab_id: int, topic: str, group_id: str, live: LabLive, loop: asyncio.AbstractEventLoop, layer
    ) -> None:
        self.lab_id = lab_id
        self.topic = topic
        self.group_id = group_id
        self.live = live
        self.window = settings.LAB_LANE_WINDOW
        self._loop = loop
        self._layer = layer
        self._lock = threading.Lock()
        self._lanes: dict[int, LaneState] = {}
        self._records: dict[int, dict[int, str | None]] = {}  # partition → offset → orderId
        self._groups: GroupWatch | None = None
        self._group: GroupDescription | None = None
        self._group_error: str | None = None
        self._last_pushed: dict[str, str] = {}
        self._stop = threading.Event()
        self._refresh = threading.Event()
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

    def snapshot_html(self) -> str:
        """Everything live on the page, for a page that just connected."""
        with self._lock:
            self._apply_group_marks()
            return self._render_lanes() + self._render_panels()

    # The observer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        tail = None
        self._groups = GroupWatch(client=client_config(), group_id=self.group_id, topic=self.topic)
        try:
            tail = TopicTail(self.topic, window=ANALYSIS_WINDOW, config=client_config())
            self._sync(tail)
            self._push("snapshot", self.snapshot_html(), always=True)
            self._loop_until_stopped(tail)
        except Exception:
            log.exception("observer for lab %s stopped", self.lab_id)
        finally:
            self._groups.close()
            if tail is not None:
                tail.close()

    def _loop_until_stopped(self, tail: TopicTail) -> None:
        fresh: list[EventView] = []
        last_flush = last_poll = last_panels = time.monotonic()
        # A closed loop means its runner is gone; a quiet lab would otherwise never push and notice.
        while not self._stop.is_set() and not self._loop.is_closed():
            for record in tail.poll(max_records=2000, timeout=0.02):
                fresh.append(self._add(record))
            now = time.monotonic()
            if self._refresh.is_set() or now - last_poll >= OFFSETS_INTERVAL:
                self._refresh.clear()
                last_poll = now
                if self._sync(tail):
                    fresh.clear()
                    self._push("snapshot", self.snapshot_html(), always=True)
                self._redraw.set()
            if fresh and now - last_flush >= FLUSH_INTERVAL:
                self._push("events", self._render_new(fresh), always=True)
                fresh = []
                last_flush = now
                self._redraw.set()
            if self._redraw.is_set() and now - last_panels >= PANEL_INTERVAL:
                self._redraw.clear()
                last_panels = now
                with self._lock:
                    self._apply_group_marks()
                    self._push("metas", self._render_metas())
                    self._push("panels", self._render_panels())

    def _add(self, record: TailRecord) -> EventView:
        event = EventView(
            partition=record.partition,
            offset=record.offset,
            key=decode_key(record.key),
            event_type=event_type_of(record.headers, record.value),
            timestamp_ms=record.timestamp_ms,
        )
        with self._lock:
            self._lane(record.partition).add(event)
            remembered = self._records.setdefault(record.partition, {})
            remembered[record.offset] = event.key
            if len(remembered) > ANALYSIS_WINDOW:
                del remembered[min(remembered)]
        return event

    def _lane(self, partition: int) -> LaneState:
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = LaneState(partition, self.window)
        return lane

    def _sync(self, tail: TopicTail) -> bool:
        """Pick up new partitions and the probe's latest offsets and group state.
        True when the set of lanes changed."""
        try:
            added = tail.refresh_partitions()
        except KafkaUnavailable:  # a broker down or slow: keep tailing what we have, look again next round
            added = []
        snapshot = self._groups.latest() if self._groups is not None else None
        with self._lock:
            for partition in added:
                self._lane(partition)
            if snapshot is not None:
                self._apply_snapshot(snapshot)
        return bool(added)

    def _apply_snapshot(self, snapshot: GroupSnapshot) -> None:
        for partition, (low, high) in snapshot.watermarks.items():
            if partition in self._lanes:
                lane = self._lanes[partition]
                lane.log_start, lane.log_end = low, max(high, lane.log_end or 0)
        self._group, self._group_error = snapshot.group, snapshot.error
        if snapshot.committed is not None:
            for partition, lane in self._lanes.items():
                lane.committed = snapshot.committed.get(partition)

    def _apply_group_marks(self) -> None:
        """Owner and position per lane, from the processes' own reports."""
        owners = self.live.owners()
        for partition, lane in self._lanes.items():
            lane.owner = owners.get(partition)
            lane.position = lane.owner.positions.get(partition) if lane.owner else None

    def _missed(self) -> list[MissedEmail]:
        """Records the group has committed past that no consumer emailed: lost to the learner."""
        in_flight = self.live.in_flight()
        with self.live.lock:
            emailed = set(self.live.email_counts)
        missed = []
        for partition, lane in self._lanes.items():
            if lane.committed is None:
                continue
            for offset, key in self._records.get(partition, {}).items():
                where = (partition, offset)
                if offset < lane.committed and where not in emailed and where not in in_flight:
                    missed.append(MissedEmail(partition, offset, key))
        return sorted(missed, key=lambda m: (m.partition, m.offset))

    # Rendering ----------------------------------------------------------------------------------

    def _lane_list(self) -> list[LaneState]:
        return [self._lanes[p] for p in sorted(self._lanes)]

    def _render_lanes(self) -> str:
        return render_to_string(
            "labs/lab.html#lanes",
            {"lab_id": self.lab_id, "lanes": self._lane_list(), "lane_window": self.window, "oob": True},
        )

    def _render_metas(self) -> str:
        return render_to_string("labs/lab.html#lane-metas", {"lanes": self._lane_list(), "oob": True})

    def _render_panels(self) -> str:
        missed = self._missed()
        with self.live.lock:
            context = {
                "lab_id": self.lab_id,
                "oob": True,
                "group": self._group,
                "group_error": self._group_error,
                "group_id": self.group_id,
                "consumers": list(self.live.consumers.values()),
                "rebalances": list(self.live.rebalances),
                "emails": list(self.live.recent_emails),
                "emails_sent": self.live.emails_sent,
                "duplicates": self.live.duplicates,
                "missed": missed,
                "max_consumers": settings.LAB_MAX_CONSUMERS,
            }
            return render_to_string("labs/lab.html#live-panels", context)

    def _render_new(self, fresh: list[EventView]) -> str:
        by_partition: dict[int, list[EventView]] = {}
        for event in fresh:
            by_partition.setdefault(event.partition, []).append(event)
        appends = [
            # A lane shows `window` events at most, so older ones in this batch would be trimmed anyway.
            {"partition": p, "events": events[-self.window :]}
            for p, events in sorted(by_partition.items())
        ]
        with self._lock:
            self._apply_group_marks()
            return render_to_string(
                "labs/lab.html#lane-appends",
                {"lab_id": self.lab_id, "appends": appends, "lanes": self._lane_list(), "oob": True},
            )

    def _push(self, kind: str, html: str, *, always: bool = False) -> None:
        """Send a fragment to the lab's viewers, unless it is what they already have."""
        if self._stop.is_set() or (not always and self._last_pushed.get(kind) == html):
            return
        self._last_pushed[kind] = html
        message = {"type": "lab.html", "html": html}
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._layer.group_send(lab_group(self.lab_id), message), self._loop
            )
        except RuntimeError:  # the runner's event loop is gone: nobody left to tell
            self._stop.set()
            return
        try:
            future.result(timeout=5)  # back-pressure: never queue faster than the layer delivers
        except Exception:
            log.warning("push to lab %s was not delivered", self.lab_id, exc_info=True)
