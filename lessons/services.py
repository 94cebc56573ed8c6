"""Lesson writes: begin a lesson, record a prediction, and (from the runner) pass and arm steps.

Only the runner passes a step, when the lab's model shows it (lessons.tracker); nothing a
learner sends can.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab
from kafkalab.runner.protocol import LabLesson, LessonChanged, lab_publish, runner_send_sync
from lessons.content import Lesson
from lessons.models import LessonProgress, StepRecord


def lesson_begin(*, lab: Lab, lesson: Lesson) -> LessonProgress:
    """Make `lesson` the lab's lesson. Its current step (the first not passed) counts what
    happens from now on: it is armed afresh."""
    with transaction.atomic():
        LessonProgress.objects.filter(lab=lab, active=True).exclude(lesson=lesson.slug).update(active=False)
        progress, _ = LessonProgress.objects.get_or_create(lab=lab, lesson=lesson.slug)
        passed = set(
            StepRecord.objects.filter(lab=lab, lesson=lesson.slug, passed_at__isnull=False).values_list(
                "step", flat=True
            )
        )
        progress.current_step = next((s.id for s in lesson.steps if s.id not in passed), "")
        # Current from now: the runner takes its baseline at its next look, counting from now.
        progress.active, progress.armed, progress.armed_at = True, None, timezone.now()
        progress.save()
    runner_send_sync(LessonChanged(lab_id=lab.pk))
    return progress


def prediction_save(*, lab: Lab, lesson: Lesson, step_id: str, choice: int) -> StepRecord:
    """The learner's prediction for the current step, before it passes (it can't change after)."""
    step = lesson.step(step_id)
    if step is None or step.prediction is None:
        raise LabError("That step asks for no prediction.")
    if not 0 <= choice < len(step.prediction.choices):
        raise LabError("Choose one of the answers offered.")
    with transaction.atomic():
        progress = LessonProgress.objects.select_for_update().filter(lab=lab, lesson=lesson.slug).first()
        if progress is None or progress.current_step != step_id:
            raise LabError("Predict the step you are on: this one is not current.")
        record, _ = StepRecord.objects.get_or_create(lab=lab, lesson=lesson.slug, step=step_id)
        if record.passed_at is not None:
            raise LabError("That step has passed already: Kafka has shown what happens.")
        record.prediction = choice
        record.save(update_fields=["prediction"])
    # The lab's pages redraw the panel from what is stored now: a push of it rendered a moment
    # before (the step being armed) could otherwise land after this answer and hide the prediction.
    async_to_sync(lab_publish)(get_channel_layer(), lab.pk, LabLesson(lesson=lesson.slug))
    return record


def step_arm(*, lab_id: int, lesson: str, step_id: str, armed: dict) -> None:
    """The runner took the step's baseline (counting from when the step became current)."""
    LessonProgress.objects.filter(lab_id=lab_id, lesson=lesson, current_step=step_id).update(armed=armed)


def step_pass(*, lab_id: int, lesson: str, step_id: str, facts: dict, next_step: str, armed: dict | None) -> None:
    """The runner saw the step happen in Kafka: store it with its facts, and make the next current."""
    now = timezone.now()
    with transaction.atomic():
        record, _ = StepRecord.objects.get_or_create(lab_id=lab_id, lesson=lesson, step=step_id)
        if record.passed_at is None:
            record.passed_at, record.facts = now, facts
            record.save(update_fields=["passed_at", "facts"])
        LessonProgress.objects.filter(lab_id=lab_id, lesson=lesson, current_step=step_id).update(
            current_step=next_step, armed=armed, armed_at=now if armed is not None else None
        )


def progress_rearm(*, lab_id: int) -> None:
    """After a lab reset: progress stays, and the current step counts again from the new topic."""
    LessonProgress.objects.filter(lab_id=lab_id, active=True).update(armed=None, armed_at=timezone.now())
