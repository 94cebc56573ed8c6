"""Websocket: a classroom's live dashboard, for the instructor (a staff login; others get 4403).

It holds the roster as the database has it, and beside each learner the latest summary of their
lab that the lab runner published (kafkalab.runner.model.lab_summary). While it is open, the
runner keeps every lab of the classroom observed. Updates come one lab at a time; the roster is
redrawn whole, in the instructor's sort and filter, at most every CLASSROOM_ROSTER_INTERVAL
seconds, so thirty busy labs cost a few small pushes a second.
"""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import QueryDict
from django.template.loader import render_to_string

from kafkalab.classroom import roster
from kafkalab.classroom.access import staff_in_session
from kafkalab.classroom.models import Classroom
from kafkalab.runner.protocol import (
    ClassroomRoster,
    ClassroomUnwatch,
    ClassroomWatch,
    LabSummary,
    classroom_group,
    runner_send,
    send_later,
)

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
REDRAW = "classroom.redraw"
REDRAW_GIVEN_UP_AFTER = 30.0


class DashboardConsumer(AsyncWebsocketConsumer):
    classroom_id: int | None = None
    closed = False

    async def connect(self) -> None:
        self.classroom_id = int(self.scope["url_route"]["kwargs"]["classroom_id"])
        refused = await self._refusal()
        if refused:
            await self.close(code=refused)
            return
        self.view = roster.view_from(QueryDict(self.scope.get("query_string", b"").decode()))
        self.rows: dict[int, roster.RosterRow] = {}  # by lab id
        self.summaries: dict[int, dict] = {}
        self.redraw_due, self.redraw_due_at = False, 0.0
        await self.channel_layer.group_add(classroom_group(self.classroom_id), self.channel_name)
        await self.accept()
        await self._load(lab_ids=None)
        await self._redraw_now()

    async def disconnect(self, code: int) -> None:
        if self.classroom_id is None or not hasattr(self, "rows"):
            return
        await self.channel_layer.group_discard(classroom_group(self.classroom_id), self.channel_name)
        if self.rows:
            await runner_send(ClassroomUnwatch(lab_ids=list(self.rows)), layer=self.channel_layer)

    async def close(self, code=None, reason=None) -> None:
        self.closed = True
        await super().close(code=code, reason=reason)

    async def dispatch(self, message: dict) -> None:
        if self.closed and message["type"].startswith("classroom."):
            return
        await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The dashboard only listens."""

    # Updates -----------------------------------------------------------------------------------

    async def classroom_summary(self, event: dict) -> None:
        update = LabSummary.parse(event)
        if update.lab_id in self.rows:
            self.summaries[update.lab_id] = update.summary
            self._redraw_soon()

    async def classroom_roster(self, event: dict) -> None:
        """A learner joined or progressed, a lab was reset, or the classroom closed."""
        update = ClassroomRoster.parse(event)
        await self._load(lab_ids=None if update.lab_id is None else [update.lab_id])
        self._redraw_soon()

    async def classroom_redraw(self, event: dict) -> None:
        await self._redraw_now()

    # Drawing -----------------------------------------------------------------------------------

    async def _load(self, *, lab_ids: list[int] | None) -> None:
        """Read these learners (or all) from the database; ask the runner to watch new labs."""
        rows, closed = await _roster(self.classroom_id, lab_ids)
        if closed:
            self.rows = {}
            return
        new = [row.lab_id for row in rows if row.lab_id not in self.rows]
        if lab_ids is None:
            self.rows = {}
        self.rows.update({row.lab_id: row for row in rows})
        if new:
            await runner_send(ClassroomWatch(lab_ids=new, reply_channel=self.channel_name), layer=self.channel_layer)

    def _redraw_soon(self) -> None:
        # One redraw waits at a time; one that never came (its channel stayed full) is given up.
        if self.redraw_due and time.monotonic() - self.redraw_due_at < REDRAW_GIVEN_UP_AFTER:
            return
        self.redraw_due, self.redraw_due_at = True, time.monotonic()
        send_later(self.channel_layer, self.channel_name, {"type": REDRAW}, delay=settings.CLASSROOM_ROSTER_INTERVAL)

    async def _redraw_now(self) -> None:
        self.redraw_due = False
        for lab_id, row in self.rows.items():
            row.live = self.summaries.get(lab_id)
        rows = roster.arranged(list(self.rows.values()), **self.view)
        context = roster.roster_context(rows, view=self.view, classroom_id=self.classroom_id, learners=len(self.rows))
        html = render_to_string("classroom/roster.html", {**context, "oob": True})
        await self.send(text_data=html)

    @database_sync_to_async
    def _refusal(self) -> int | None:
        if not staff_in_session(self.scope.get("session")):
            return CLOSE_FORBIDDEN
        if not Classroom.objects.filter(pk=self.classroom_id).exists():
            return CLOSE_NOT_FOUND
        return None


@database_sync_to_async
def _roster(classroom_id: int, lab_ids: list[int] | None) -> tuple[list[roster.RosterRow], bool]:
    classroom = Classroom.objects.get(pk=classroom_id)
    if not classroom.is_open:
        return [], True
    rows = [row for row in roster.roster_rows(classroom, lab_ids=lab_ids) if row.lab_id is not None]
    return rows, False
