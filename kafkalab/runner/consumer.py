"""The lab runner's command handler: one instance per runner process, holding its watchers."""

from __future__ import annotations

import asyncio

from channels.consumer import AsyncConsumer

from kafkalab.labs.models import Lab
from kafkalab.runner.cluster_watcher import ClusterWatcher
from kafkalab.runner.lab_observer import LabObserver

# An observer outlives its last viewer this long, so a page reload doesn't restart it.
OBSERVER_GRACE_SECONDS = 30.0


class LabRunner(AsyncConsumer):
    """Receives commands sent with `channel_layer.send("lab-runner", {...})`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_watcher = ClusterWatcher()
        self.observers: dict[int, LabObserver] = {}
        self.viewers: dict[int, int] = {}
        self._idle_stops: dict[int, asyncio.TimerHandle] = {}

    async def cluster_watch(self, message: dict) -> None:
        """A page wants live broker state: keep the watcher running, answer with the latest."""
        self.cluster_watcher.ensure_running()
        await self.cluster_watcher.send_latest(message["reply_channel"])

    async def lab_watch(self, message: dict) -> None:
        lab_id = message["lab_id"]
        self.viewers[lab_id] = self.viewers.get(lab_id, 0) + 1
        if handle := self._idle_stops.pop(lab_id, None):
            handle.cancel()
        observer = self._observer(lab_id)
        await self.channel_layer.send(message["reply_channel"], {"type": "lab.html", "html": observer.snapshot_html()})

    async def lab_unwatch(self, message: dict) -> None:
        lab_id = message["lab_id"]
        self.viewers[lab_id] = max(0, self.viewers.get(lab_id, 0) - 1)
        if self.viewers[lab_id] == 0 and lab_id not in self._idle_stops:
            loop = asyncio.get_running_loop()
            self._idle_stops[lab_id] = loop.call_later(OBSERVER_GRACE_SECONDS, self._stop_if_idle, lab_id)

    async def lab_reset(self, message: dict) -> None:
        """The lab's topics were recreated: start reading them afresh."""
        lab_id = message["lab_id"]
        if observer := self.observers.pop(lab_id, None):
            observer.stop()
            if self.viewers.get(lab_id):
                self._observer(lab_id)

    async def lab_refresh(self, message: dict) -> None:
        """Partitions changed: look now rather than at the next periodic check."""
        if observer := self.observers.get(message["lab_id"]):
            observer.request_refresh()

    def _observer(self, lab_id: int) -> LabObserver:
        observer = self.observers.get(lab_id)
        if observer is None or not observer.alive:
            observer = LabObserver(
                lab_id=lab_id,
                topic=Lab(pk=lab_id).orders_topic,
                loop=asyncio.get_running_loop(),
                layer=self.channel_layer,
            )
            observer.start()
            self.observers[lab_id] = observer
        return observer

    def _stop_if_idle(self, lab_id: int) -> None:
        self._idle_stops.pop(lab_id, None)
        if self.viewers.get(lab_id, 0) == 0 and (observer := self.observers.pop(lab_id, None)):
            observer.stop()
