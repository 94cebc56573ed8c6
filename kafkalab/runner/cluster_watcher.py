"""Polls broker health and pushes each change to the "cluster" group."""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer
from django.conf import settings

from kafkalab.cluster.services import ClusterHealthProbe
from kafkalab.runner.protocol import CLUSTER_GROUP, ClusterUpdate

log = logging.getLogger(__name__)


class ClusterWatcher:
    def __init__(self) -> None:
        self.probe = ClusterHealthProbe()
        self.latest: dict | None = None
        self._task: asyncio.Task | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-watcher")

    async def send_latest(self, reply_channel: str) -> None:
        if self.latest is None:
            self.latest = await asyncio.to_thread(self.probe.read)
        await get_channel_layer().send(reply_channel, ClusterUpdate(health=self.latest).as_message())

    async def _run(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                health = await asyncio.to_thread(self.probe.read)
            except Exception:  # the watcher must outlive any one bad poll
                log.exception("reading cluster health failed")
            else:
                if health != self.latest:
                    self.latest = health
                    await layer.group_send(CLUSTER_GROUP, ClusterUpdate(health=health).as_message())
            await asyncio.sleep(settings.CLUSTER_WATCH_INTERVAL)
