"""The lab runner's command handler: one instance per runner process, holding its watchers."""

from __future__ import annotations

from channels.consumer import AsyncConsumer

from kafkalab.runner.cluster_watcher import ClusterWatcher


class LabRunner(AsyncConsumer):
    """Receives commands sent with `channel_layer.send("lab-runner", {...})`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_watcher = ClusterWatcher()

    async def cluster_watch(self, message: dict) -> None:
        """A page wants live broker state: keep the watcher running, answer with the latest."""
        self.cluster_watcher.ensure_running()
        await self.cluster_watcher.send_latest(message["reply_channel"])
