"""Who may see a lab, and who may act on it.

The browser session that created a lab owns it: it sees the controls and may act. Anyone holding
the lab's share link may watch it, read-only: no button, no form, and every action refused. So may
a classroom's instructor, and its learners while the instructor's lab is followed
(kafkalab.classroom.access). Nobody else sees it at all.
"""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from kafkalab.classroom import access as classroom_access
from kafkalab.labs.models import Lab

SESSION_KEY = "lab_ids"


class Role(StrEnum):
    OWNER = "owner"
    OBSERVER = "observer"

    @property
    def can_act(self) -> bool:
        return self == Role.OWNER


def labs_owned(session) -> list[int]:
    return list(session.get(SESSION_KEY, []))


def lab_grant(session, lab: Lab) -> None:
    session[SESSION_KEY] = [*labs_owned(session), lab.pk]


def lab_for_owner(session, lab_id: int) -> Lab:
    """The lab, if this session owns it. Unknown → 404; someone else's → 403."""
    lab = Lab.objects.filter(pk=lab_id).first()
    if lab is None:
        raise Http404("There is no such lab.")
    if lab.pk not in labs_owned(session):
        raise PermissionDenied("This lab belongs to another learner.")
    return lab


def lab_touch(lab: Lab) -> None:
    """The owner acted on the lab: it is in use, so its idle time starts again."""
    Lab.objects.filter(pk=lab.pk).update(last_seen_at=timezone.now())


def lab_for_share(token: str) -> Lab:
    """The lab this share token opens, read-only. Unknown or revoked → 404."""
    lab = Lab.objects.filter(share_token=token).first() if token else None
    if lab is None:
        raise Http404("This share link is not valid (any more): its owner may have stopped sharing.")
    return lab


def lab_viewer_role(session, lab_id: int, *, share_token: str | None) -> Role:
    """How this session may watch the lab: as its owner, or with a valid share token."""
    if lab_id in labs_owned(session or {}) and Lab.objects.filter(pk=lab_id).exists():
        return Role.OWNER
    if share_token and Lab.objects.filter(pk=lab_id, share_token=share_token).exists():
        return Role.OBSERVER
    if classroom_access.may_watch(session, lab_id):  # the instructor, or a learner following them
        return Role.OBSERVER
    lab_for_owner(session or {}, lab_id)  # raises 404 or 403, as HTTP would
    raise PermissionDenied("This lab belongs to another learner.")
