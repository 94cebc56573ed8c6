"""Websocket: live broker health for the cluster panel."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from kafkalab.runner.protocol import CLUSTER_GROUP, ClusterUpdate, ClusterWatch, runner_send


class ClusterConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(CLUSTER_GROUP, self.channel_name)
        await self.accept()
        await runner_send(ClusterWatch(reply_channel=self.channel_name), layer=self.channel_layer)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(CLUSTER_GROUP, self.channel_name)

    async def cluster_update(self, event: dict) -> None:
        update = ClusterUpdate.parse(event)
        await self.send(text_data=render_to_string(self._template(), {"health": update.health}))

    def _template(self) -> str:
        # The lab page shows a compact badge; the cluster page the full panel.
        if b"view=badge" in self.scope.get("query_string", b""):
            return "cluster/_badge.html"
        return "cluster/home.html#cluster-panel"
