"""The lab observer: tails a lab's topic from outside any group and pushes what it sees.

One thread per watched lab reads every partition with a TopicTail and keeps a bounded window
of recent events per partition. Updates are coalesced: at most one push every FLUSH_INTERVAL,
carrying only the newest events of each lane, so the page stays live at any event rate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque

from django.conf import settings
from django.template.loader import render_to_string

from kafkalab.kafka.config import client_config
from kafkalab.kafka.tail import TailRecord, TopicTail
from kafkalab.labs.events import EventView, decode_key, event_type_of

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.075  # seconds between pushes while events flow
OFFSETS_INTERVAL = 1.0  # seconds between watermark and partition-count checks


def lab_group(lab_id: int) -> str:
    return f"lab.{lab_id}"


class LaneState:
    """One partition as the page shows it: recent events and the log's two ends."""

    def __init__(self, partition: int, window: int) -> None:
        self.partition = partition
        self.events: deque[EventView] = deque(maxlen=window)
        self.log_start: int | None = None
        self.log_end: int | None = None

    def add(self, event: EventView) -> None:
        self.events.append(event)
        # Between watermark checks, the newest offset seen bounds the log end from below.
        if self.log_end is None or event.offset + 1 > self.log_end:
            self.log_end = event.offset + 1


class LabObserver:
    def __init__(self, *, lab_id: int, topic: str, loop: asyncio.AbstractEventLoop, layer) -> None:
        self.lab_id = lab_id
        self.topic = topic
        self.window = settings.LAB_LANE_WINDOW
        self._loop = loop
        self._layer = layer
        self._lock = threading.Lock()
        self._lanes: dict[int, LaneState] = {}
        self._last_meta = ""
        self._stop = threading.Event()
        self._refresh = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"observer-lab-{lab_id}", daemon=True)

    # Control, from the runner's event loop ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def request_refresh(self) -> None:
        self._refresh.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot_html(self) -> str:
        """All lanes, for a page that just connected."""
        with self._lock:
            return self._render_lanes()

    # The observer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        tail = None
        try:
            tail = TopicTail(self.topic, window=self.window, config=client_config())
            self._sync_partitions(tail)
            self._push(self.snapshot_html())
            self._loop_until_stopped(tail)
        except Exception:
            log.exception("observer for lab %s stopped", self.lab_id)
        finally:
            if tail is not None:
                tail.close()

    def _loop_until_stopped(self, tail: TopicTail) -> None:
        fresh: list[EventView] = []
        last_flush = last_offsets = time.monotonic()
        while not self._stop.is_set():
            for record in tail.poll(max_records=2000, timeout=0.05):
                fresh.append(self._add(record))
            now = time.monotonic()
            if self._refresh.is_set() or now - last_offsets >= OFFSETS_INTERVAL:
                self._refresh.clear()
                last_offsets = now
                if self._sync_partitions(tail):
                    fresh.clear()
                    self._push(self.snapshot_html())
                elif (meta := self._render_meta()) != self._last_meta:
                    self._last_meta = meta
                    self._push(meta)
            if fresh and now - last_flush >= FLUSH_INTERVAL:
                self._push(self._render_new(fresh))
                fresh = []
                last_flush = now

    def _add(self, record: TailRecord) -> EventView:
        event = EventView(
            partition=record.partition,
            offset=record.offset,
            key=decode_key(record.key),
            event_type=event_type_of(record.headers, record.value),
            timestamp_ms=record.timestamp_ms,
        )
        with self._lock:
            lane = self._lanes.get(record.partition)
            if lane is None:
                lane = self._lanes[record.partition] = LaneState(record.partition, self.window)
            lane.add(event)
        return event

    def _sync_partitions(self, tail: TopicTail) -> bool:
        """Pick up new partitions and fresh watermarks. True when the set of lanes changed."""
        added = tail.refresh_partitions()
        marks = tail.watermarks()
        with self._lock:
            for partition in added:
                self._lanes.setdefault(partition, LaneState(partition, self.window))
            for partition, (low, high) in marks.items():
                lane = self._lanes.setdefault(partition, LaneState(partition, self.window))
                lane.log_start, lane.log_end = low, high
        return bool(added)

    # Rendering ----------------------------------------------------------------------------------

    def _lane_list(self) -> list[LaneState]:
        return [self._lanes[p] for p in sorted(self._lanes)]

    def _render_lanes(self) -> str:
        return render_to_string(
            "labs/lab.html#lanes",
            {"lab_id": self.lab_id, "topic": self.topic, "lanes": self._lane_list(), "oob": True},
        )

    def _render_meta(self) -> str:
        with self._lock:
            return render_to_string("labs/lab.html#lane-metas", {"lanes": self._lane_list(), "oob": True})

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
            return render_to_string(
                "labs/lab.html#lane-appends",
                {"lab_id": self.lab_id, "appends": appends, "lanes": self._lane_list(), "oob": True},
            )

    def _push(self, html: str) -> None:
        if self._stop.is_set():
            return
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
