"""Classroom reads for the lab page: who the learner is in which classroom, the instructor's
banner, and the link to follow the instructor's lab."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from kafkalab.classroom.access import rejoin_code_in_session, staff_in_session
from kafkalab.classroom.models import Classroom, Learner


def lab_classroom_context(session, lab, viewer) -> dict:
    """What the lab page shows of the lab's classroom, for this viewer ({} outside a classroom)."""
    if lab.classroom_id is None:
        return {}
    classroom = Classroom.objects.get(pk=lab.classroom_id)
    context = {"classroom": classroom, **notice_context(classroom, lab_id=lab.pk)}
    if staff_in_session(session):
        context["dashboard_url"] = reverse("classroom:dashboard", args=[classroom.pk])
    if viewer.can_act:
        learner = Learner.objects.filter(lab=lab).first()
        context["classroom_learner"] = learner
        context["rejoin_code"] = rejoin_code_in_session(session, learner) if learner else None
        context["is_instructor_lab"] = classroom.instructor_lab_id == lab.pk
    return context


def notice_context(classroom: Classroom, *, lab_id: int) -> dict:
    """The banner and "Follow me" link (none on the instructor's own lab)."""
    follow_id = classroom.follow_lab_id
    follow_url = reverse("labs:watch", args=[follow_id]) if follow_id and follow_id != lab_id else None
    return {"classroom": classroom, "follow_url": follow_url}


def notice_html(*, classroom_id: int, lab_id: int) -> str:
    """The notice as a learner's socket pushes it (an out-of-band swap)."""
    classroom = Classroom.objects.filter(pk=classroom_id).first()
    if classroom is None:
        return ""
    context = {**notice_context(classroom, lab_id=lab_id), "oob": True}
    return render_to_string("classroom/notice.html", context)
