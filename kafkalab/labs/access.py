"""Who may open a lab: in self-study, the browser session that created it, and nobody else."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from kafkalab.labs.models import Lab

SESSION_KEY = "lab_ids"


def labs_owned(session) -> list[int]:
    return list(session.get(SESSION_KEY, []))


def lab_grant(session, lab: Lab) -> None:
    session[SESSION_KEY] = [*labs_owned(session), lab.pk]


def lab_for_session(session, lab_id: int) -> Lab:
    """The lab, if this session owns it. Unknown → 404; someone else's → 403."""
    lab = Lab.objects.filter(pk=lab_id).first()
    if lab is None:
        raise Http404("There is no such lab.")
    if lab.pk not in labs_owned(session):
        raise PermissionDenied("This lab belongs to another learner.")
    return lab
