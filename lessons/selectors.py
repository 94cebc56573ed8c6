"""Lesson reads: what the lesson panel and the catalog show, from the stored progress."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from kafkalab.labs.models import Lab
from lessons.content import Lesson, Step, catalog, lesson_by_slug
from lessons.models import LessonProgress, StepRecord

PENDING, CURRENT, PASSED = "pending", "current", "passed"


@dataclass(frozen=True)
class StepView:
    step: Step
    status: str
    prediction: int | None
    passed_at: datetime | None
    why_html: str
    reveal_hint_at_ms: int | None  # when the hint shows (ms since the epoch), for the current step

    @property
    def hint_shown(self) -> bool:
        """Whether the hint's time has come already (lessons.js shows it when it does)."""
        return self.reveal_hint_at_ms is not None and self.reveal_hint_at_ms <= time.time() * 1000

    @property
    def predicted_choice(self) -> str | None:
        if self.prediction is None or self.step.prediction is None:
            return None
        return self.step.prediction.choices[self.prediction]

    @property
    def answer_text(self) -> str | None:
        return self.step.prediction.choices[self.step.prediction.answer] if self.step.prediction else None

    @property
    def predicted_right(self) -> bool | None:
        if self.prediction is None or self.step.prediction is None:
            return None
        return self.prediction == self.step.prediction.answer


@dataclass(frozen=True)
class LessonView:
    lesson: Lesson
    active: bool
    begun: bool
    steps: list[StepView]

    @property
    def passed(self) -> int:
        return sum(1 for s in self.steps if s.status == PASSED)

    @property
    def current(self) -> StepView | None:
        return next((s for s in self.steps if s.status == CURRENT), None)

    @property
    def last_passed(self) -> str | None:
        passed = [s for s in self.steps if s.passed_at is not None]
        return max(passed, key=lambda s: s.passed_at).step.id if passed else None

    @property
    def complete(self) -> bool:
        return self.passed == len(self.steps)

    @property
    def next_lesson(self) -> Lesson | None:
        lessons = list(catalog())
        index = next((i for i, lesson in enumerate(lessons) if lesson.slug == self.lesson.slug), len(lessons))
        return lessons[index + 1] if index + 1 < len(lessons) else None


def lesson_view(*, lab: Lab, lesson: Lesson) -> LessonView:
    progress = LessonProgress.objects.filter(lab=lab, lesson=lesson.slug).first()
    records = {r.step: r for r in StepRecord.objects.filter(lab=lab, lesson=lesson.slug)}
    current = progress.current_step if progress and progress.active else None
    steps = []
    for step in lesson.steps:
        record = records.get(step.id)
        passed = record is not None and record.passed_at is not None
        status = PASSED if passed else CURRENT if step.id == current else PENDING
        reveal = None
        if status == CURRENT and progress.armed_at is not None:
            reveal = int(progress.armed_at.timestamp() * 1000) + step.hint_after_seconds * 1000
        steps.append(
            StepView(
                step=step,
                status=status,
                prediction=record.prediction if record else None,
                passed_at=record.passed_at if passed else None,
                why_html=step.why_html(record.facts) if passed else "",
                reveal_hint_at_ms=reveal,
            )
        )
    return LessonView(lesson=lesson, active=bool(progress and progress.active), begun=progress is not None, steps=steps)


def active_lesson(lab: Lab) -> Lesson | None:
    progress = LessonProgress.objects.filter(lab=lab, active=True).first()
    return lesson_by_slug(progress.lesson) if progress else None


def catalog_progress(lab: Lab | None) -> list[tuple[Lesson, int]]:
    """Each lesson with how many of its steps the lab has passed."""
    passed: dict[str, int] = {}
    if lab is not None:
        for record in StepRecord.objects.filter(lab=lab, passed_at__isnull=False).only("lesson"):
            passed[record.lesson] = passed.get(record.lesson, 0) + 1
    return [(lesson, passed.get(lesson.slug, 0)) for lesson in catalog()]


def lesson_for_page(*, lab: Lab, lesson: Lesson | None = None) -> LessonView | None:
    """The lesson the lab page shows: the one asked for, else the lab's current one, else the
    first it has not finished (offered with a Begin button)."""
    lesson = lesson or active_lesson(lab)
    if lesson is None:
        unfinished = [entry for entry, passed in catalog_progress(lab) if passed < len(entry.steps)]
        lesson = unfinished[0] if unfinished else next(iter(catalog()), None)
    return lesson_view(lab=lab, lesson=lesson) if lesson else None
