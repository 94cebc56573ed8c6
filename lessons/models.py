"""A lab's progress through the lessons: stored, so that it survives a reload and a restart."""

from __future__ import annotations

from django.db import models

from kafkalab.labs.models import Lab


class LessonProgress(models.Model):
    """One lesson in one lab: the step being checked now, and what it is checked against."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="lessons")
    lesson = models.CharField(max_length=50)
    # The lesson the lab page shows and the runner checks; one per lab.
    active = models.BooleanField(default=False)
    current_step = models.CharField(max_length=50, blank=True)  # "" once every step passed
    # The lab as it was when the current step became current (lessons.checks.arm); null until
    # the runner next looks. What happened since `armed_at` counts for the step, even what
    # happened before the runner looked.
    armed = models.JSONField(null=True, blank=True)
    armed_at = models.DateTimeField(null=True, blank=True)  # when the current step became current
    began_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lab", "lesson"], name="one_progress_per_lesson")]

    def __str__(self) -> str:
        return f"lab {self.lab_id}: {self.lesson} at {self.current_step or 'the end'}"


class StepRecord(models.Model):
    """A step in one lab: the learner's prediction, and when Kafka showed it done, with what."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="lesson_steps")
    lesson = models.CharField(max_length=50)
    step = models.CharField(max_length=50)
    prediction = models.PositiveSmallIntegerField(null=True, blank=True)
    passed_at = models.DateTimeField(null=True, blank=True)
    facts = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lab", "lesson", "step"], name="one_record_per_step")]

    def __str__(self) -> str:
        return f"lab {self.lab_id}: {self.lesson}/{self.step}"
