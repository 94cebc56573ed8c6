"""Websocket: one lab's live view, rendered for its viewer.

The owner's session gets the controls; a holder of the share link (`?share=<token>`) watches
read-only. Nobody else connects: 4404 for an unknown lab, 4403 for someone else's.

The page sends one thing back: DRAWN, once it has drawn a push of records. The next records push
waits for it, so a busy lab never queues pushes faster than the browser draws them (a slow
laptop sees fewer, fuller pushes) and the page is never behind by more than one. Anything else
from an observer is refused: it is disconnected with 4403.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from kafkalab.classroom.access import classroom_of_lab
from kafkalab.classroom.selectors import notice_html
from kafkalab.labs import live_view
from kafkalab.labs.access import Role, lab_viewer_role
from kafkalab.labs.live_view import RecordsBacklog, Viewer, ViewerPage
from kafkalab.runner.protocol import (
    ClassroomNotice,
    LabClosed,
    LabLesson,
    LabModel,
    LabPanels,
    LabRecords,
    LabUnwatch,
    LabWatch,
    classroom_learners_group,
    lab_group,
    runner_send,
    send_later,
)

# Close codes in the 4000 range are ours; 4403 and 4404 mirror the HTTP refusals, 4410 "gone".
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_GONE = 4410
DRAWN = "drawn"


class LabConsumer(AsyncWebsocketConsumer):
    viewer: Viewer | None = None
    classroom_id: int | None = None
    closed = False
    page: ViewerPage | None = None
    backlog: RecordsBacklog | None = None
    # Counts records pushes; while `drawing` equals it, the browser has not said it drew the last.
    pushes = 0
    drawing: int | None = None

    async def connect(self) -> None:
        lab_id = int(self.scope["url_route"]["kwargs"]["lab_id"])
        share_token = parse_qs(self.scope.get("query_string", b"").decode()).get("share", [None])[0]
        # Join before the check: a link revoked after the check still reaches this socket (its
        # notice waits until the socket is accepted), and one revoked before it fails the check.
        await self.channel_layer.group_add(lab_group(lab_id), self.channel_name)
        role = await self._role(lab_id, share_token)
        if not isinstance(role, Role):
            await self.channel_layer.group_discard(lab_group(lab_id), self.channel_name)
            await self.close(code=role)
            return
        self.viewer = Viewer(lab_id=lab_id, role=role, share_token=share_token)
        self.page = ViewerPage(self.viewer)
        self.backlog = RecordsBacklog(settings.LAB_LANE_WINDOW)
        # A classroom's lab hears its instructor: the banner, and "Follow me" turned on or off.
        self.classroom_id = await database_sync_to_async(classroom_of_lab)(lab_id)
        if self.classroom_id is not None:
            await self.channel_layer.group_add(classroom_learners_group(self.classroom_id), self.channel_name)
        await self.accept()
        watch = LabWatch(lab_id=lab_id, reply_channel=self.channel_name, owner=self.viewer.can_act)
        await runner_send(watch, layer=self.channel_layer)

    async def disconnect(self, code: int) -> None:
        if self.viewer is None:
            return
        await self.channel_layer.group_discard(lab_group(self.viewer.lab_id), self.channel_name)
        if self.classroom_id is not None:
            await self.channel_layer.group_discard(classroom_learners_group(self.classroom_id), self.channel_name)
        await runner_send(LabUnwatch(lab_id=self.viewer.lab_id, owner=self.viewer.can_act), layer=self.channel_layer)

    async def close(self, code=None, reason=None) -> None:
        self.closed = True
        await super().close(code=code, reason=reason)

    async def dispatch(self, message: dict) -> None:
        # Updates that reach a socket once it is closed (refused after joining the group to be
        # checked, or closed before the browser answered) go nowhere: daphne can't send on it.
        if self.closed and message["type"].startswith(("lab.", "classroom.")):
            return
        await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data == DRAWN and self.viewer is not None:
            self.drawing = None
            await self._push_backlog()
        elif self.viewer is not None and not self.viewer.can_act:
            await self.close(code=CLOSE_FORBIDDEN)

    # Updates from the runner (kafkalab.runner.protocol) ------------------------------------------

    async def lab_model(self, event: dict) -> None:
        self.backlog.clear()  # the whole lab, records included
        await self.send(text_data=self.page.model(LabModel.parse(event).model))

    async def lab_records(self, event: dict) -> None:
        update = LabRecords.parse(event)
        self.backlog.add(appends=update.appends, lanes=update.lanes)
        if self.drawing is None:
            await self._push_backlog()

    async def lab_draw_timeout(self, event: dict) -> None:
        if self.drawing == event["push"]:
            self.drawing = None
            await self._push_backlog()

    async def lab_panels(self, event: dict) -> None:
        # The panels carry the lanes' offsets too, newer than any the backlog holds.
        self.backlog.lanes = None
        # Another viewer's change, or a change this page already shows, may leave nothing to send.
        if html := self.page.panels(LabPanels.parse(event).panels):
            await self.send(text_data=html)

    async def _push_backlog(self) -> None:
        taken = self.backlog.take()
        if taken is None:
            return
        appends, lanes = taken
        await self.send(text_data=self.page.records(appends=appends, lanes=lanes))
        self.pushes += 1
        self.drawing = self.pushes
        # A page that never says DRAWN (no JavaScript, a test client) still gets records.
        timeout = {"type": "lab.draw_timeout", "push": self.pushes}
        send_later(self.channel_layer, self.channel_name, timeout, delay=settings.LAB_DRAW_TIMEOUT_SECONDS)

    async def lab_lesson(self, event: dict) -> None:
        LabLesson.parse(event)
        if html := await database_sync_to_async(live_view.lesson_html)(self.viewer):
            await self.send(text_data=html)

    async def classroom_notice(self, event: dict) -> None:
        notice = ClassroomNotice.parse(event)
        html = await database_sync_to_async(notice_html)(classroom_id=notice.classroom_id, lab_id=self.viewer.lab_id)
        if html:
            await self.send(text_data=html)

    async def lab_closed(self, event: dict) -> None:
        closed = LabClosed.parse(event)
        if closed.observers_only and self.viewer.can_act:
            return
        await self.send(text_data=live_view.closed_html(closed.reason))
        await self.close(code=CLOSE_FORBIDDEN if closed.observers_only else CLOSE_GONE)

    @database_sync_to_async
    def _role(self, lab_id: int, share_token: str | None) -> Role | int:
        try:
            return lab_viewer_role(self.scope.get("session"), lab_id, share_token=share_token)
        except Http404:
            return CLOSE_NOT_FOUND
        except PermissionDenied:
            return CLOSE_FORBIDDEN
