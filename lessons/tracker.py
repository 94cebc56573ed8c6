"""The runner's side of lessons: each watched lab's current step, checked on its live model.

The lab observer hands every model it builds for the panels (a few a second) to the lab's
tracker. The tracker arms a step that just became current (its baseline: lessons.checks.arm),
runs its check, and when Kafka shows the step done, stores it and makes the next step current,
armed on the same model. Steps therefore pass within a second of Kafka showing them, whoever
caused it, and nothing a learner sends can pass one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async

from lessons import checks, services
from lessons.content import Lesson, Step, lesson_by_slug
from lessons.models import LessonProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Change:
    lesson: str
    step_id: str
    armed: dict | None
    facts: dict | None = None  # set when the step passed
    next_step: str = ""


class LessonTracker:
    def __init__(self, lab_id: int) -> None:
        self.lab_id = lab_id
        self._lock = threading.Lock()
        self.lesson: Lesson | None = None
        self.step: Step | None = None
        self.armed: dict | None = None
        self.since: float | None = None  # when the current step became current
        self._loop: asyncio.AbstractEventLoop | None = None
        self._layer = None
        self._saving: asyncio.Lock | None = None
        self._on_progress = None

    # From the runner's event loop ---------------------------------------------------------------

    async def load(self, *, layer, on_progress=None) -> None:
        """Take the lab's active lesson and current step from the database. `on_progress` is
        awaited after each step passed is saved (a classroom's dashboard reads it)."""
        self._loop, self._layer = asyncio.get_running_loop(), layer
        self._on_progress = on_progress or self._on_progress
        self._saving = self._saving or asyncio.Lock()
        progress = await _active_progress(self.lab_id)
        lesson = lesson_by_slug(progress.lesson) if progress else None
        with self._lock:
            self.lesson = lesson
            self.step = lesson.step(progress.current_step) if lesson and progress.current_step else None
            self.armed = progress.armed if progress else None
            self.since = progress.armed_at.timestamp() if progress and progress.armed_at else None

    async def rearm(self) -> None:
        """After a reset: the current step counts again, from the new topic."""
        with self._lock:
            self.armed, self.since = None, time.time()
        await database_sync_to_async(services.progress_rearm)(lab_id=self.lab_id)

    @property
    def checking(self) -> bool:
        return self.step is not None

    # From the observer's thread -------------------------------------------------------------------

    def evaluate(self, model: dict, *, now: float) -> None:
        with self._lock:
            lesson, step = self.lesson, self.step
            if lesson is None or step is None or self._loop is None:
                return
            if self.armed is None:
                self.armed = checks.arm(model, now=now, since=self.since)
                change = _Change(lesson.slug, step.id, armed=self.armed)
            else:
                try:
                    facts = checks.evaluate(step.check, step.params, model=model, armed=self.armed, now=now)
                except Exception:  # a check's bug must not stop the observer, nor pass the step
                    log.exception("lab %s: check %s of %s failed", self.lab_id, step.check, lesson.slug)
                    return
                if facts is None:
                    return
                following = lesson.step_after(step.id)
                self.step = following
                self.armed = checks.arm(model, now=now) if following else None
                change = _Change(
                    lesson.slug, step.id, armed=self.armed, facts=facts, next_step=following.id if following else ""
                )
        with contextlib.suppress(RuntimeError):  # the runner's loop is gone: nothing to save for
            asyncio.run_coroutine_threadsafe(self._save(change), self._loop)

    async def _save(self, change: _Change) -> None:
        from kafkalab.runner.protocol import LabLesson, lab_publish

        async with self._saving:
            try:
                if change.facts is None:
                    await database_sync_to_async(services.step_arm)(
                        lab_id=self.lab_id, lesson=change.lesson, step_id=change.step_id, armed=change.armed
                    )
                else:
                    await database_sync_to_async(services.step_pass)(
                        lab_id=self.lab_id,
                        lesson=change.lesson,
                        step_id=change.step_id,
                        facts=change.facts,
                        next_step=change.next_step,
                        armed=change.armed,
                    )
            except Exception:
                log.exception("lab %s: saving lesson progress failed", self.lab_id)
                return
            passed = change.step_id if change.facts is not None else None
            await lab_publish(self._layer, self.lab_id, LabLesson(lesson=change.lesson, passed=passed))
            if passed and self._on_progress is not None:
                await self._on_progress()


@database_sync_to_async
def _active_progress(lab_id: int) -> LessonProgress | None:
    return LessonProgress.objects.filter(lab_id=lab_id, active=True).first()
