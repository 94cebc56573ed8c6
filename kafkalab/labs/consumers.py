"""Websocket: one lab's live view. Only the lab's owner may connect."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from kafkalab.labs.access import lab_for_session
from kafkalab.runner.embedded import RUNNER_CHANNEL
from kafkalab.runner.lab_observer import lab_group

# Close codes in the 4000 range are ours; 4403 and 4404 mirror the HTTP refusals.
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


class LabConsumer(AsyncWebsocketConsumer):
    lab_id: int | None = None

    async def connect(self) -> None:
        lab_id = int(self.scope["url_route"]["kwargs"]["lab_id"])
        refusal = await self._refusal(lab_id)
        if refusal is not None:
            await self.close(code=refusal)
            return
        self.lab_id = lab_id
        await self.channel_layer.group_add(lab_group(lab_id), self.channel_name)
        await self.accept()
        await self._tell_runner("lab.watch", reply_channel=self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.lab_id is None:
            return
        await self.channel_layer.group_discard(lab_group(self.lab_id), self.channel_name)
        await self._tell_runner("lab.unwatch")

    async def lab_html(self, event: dict) -> None:
        await self.send(text_data=event["html"])

    async def _tell_runner(self, command: str, **extra: object) -> None:
        await self.channel_layer.send(RUNNER_CHANNEL, {"type": command, "lab_id": self.lab_id, **extra})

    @database_sync_to_async
    def _refusal(self, lab_id: int) -> int | None:
        session = self.scope.get("session")
        if session is None:
            return CLOSE_FORBIDDEN
        try:
            lab_for_session(session, lab_id)
        except Http404:
            return CLOSE_NOT_FOUND
        except PermissionDenied:
            return CLOSE_FORBIDDEN
        return None
