"""A classroom: an instructor's workshop, its join code, and the learners who joined it.

Each learner has one lab of their own (kafkalab.labs.models.Lab, whose `classroom` names it). The
instructor may have a lab too, which learners open read-only while "Follow me" is on.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Classroom(models.Model):
    name = models.CharField(max_length=80)
    # What learners type or scan: short, upper case, no look-alike characters (kafkalab.classroom.codes).
    join_code = models.CharField(max_length=12, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="classrooms")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Limits of this classroom, set when it is created, within the site's own caps.
    max_learners = models.PositiveSmallIntegerField()
    max_consumers_per_lab = models.PositiveSmallIntegerField()
    # The instructor's message, shown as a banner in every learner's page ("" when none).
    banner = models.CharField(max_length=280, blank=True)
    banner_at = models.DateTimeField(null=True, blank=True)
    # The instructor's own lab, and whether learners may open it read-only ("Follow me").
    instructor_lab = models.ForeignKey("labs.Lab", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    follow = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.join_code})"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def follow_lab_id(self) -> int | None:
        """The lab learners may follow now, or None."""
        return self.instructor_lab_id if self.follow and self.is_open else None


class Learner(models.Model):
    """Someone who joined a classroom under a display name; no password, no account."""

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="learners")
    name = models.CharField(max_length=40)
    # Deleted with the classroom's labs when it closes; the learner stays, for the record.
    lab = models.OneToOneField("labs.Lab", null=True, blank=True, on_delete=models.SET_NULL, related_name="learner")
    # A keyed hash of the code shown once at joining (kafkalab.classroom.codes.rejoin_digest).
    rejoin_digest = models.CharField(max_length=64)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined_at"]
        constraints = [
            models.UniqueConstraint("classroom", Lower("name"), name="one_learner_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} in {self.classroom.join_code}"
