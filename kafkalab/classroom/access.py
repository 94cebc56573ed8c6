"""Who may do what in a classroom.

The instructor is a Django staff user, logged in; every dashboard page, action and socket asks
for one. A learner is known by their browser session: joining stores their learner id there,
and their lab in the lab ids the session owns (kafkalab.labs.access). Watching a lab read-only
without owning it takes a staff login (any lab of a classroom), or a learner's session in the
classroom whose instructor's lab is being followed.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils.crypto import constant_time_compare

from kafkalab.classroom.models import Classroom, Learner

LEARNERS_KEY = "classroom_learners"  # classroom id → learner id
REJOIN_KEY = "classroom_rejoin_codes"  # learner id → the rejoin code shown at joining


def staff_required(view):
    """A view for the instructor: the login page for a visitor, 403 for a logged-in non-staff user."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("Only an instructor (a staff account) may open the classroom dashboard.")
        return view(request, *args, **kwargs)

    return wrapper


def classroom_for_staff(classroom_id: int) -> Classroom:
    return get_object_or_404(Classroom, pk=classroom_id)


def staff_in_session(session) -> bool:
    """Whether the session is logged in as an active staff user, checked as Django's own
    AuthenticationMiddleware does (a changed password logs the session out)."""
    if not session or SESSION_KEY not in session:
        return False
    try:
        backend = load_backend(session[BACKEND_SESSION_KEY])
    except (KeyError, ImportError):
        return False
    user = backend.get_user(session[SESSION_KEY])
    if user is None or not (user.is_active and user.is_staff):
        return False
    return constant_time_compare(session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())


def learner_grant(session, learner: Learner, rejoin_code: str | None) -> None:
    session[LEARNERS_KEY] = {**session.get(LEARNERS_KEY, {}), str(learner.classroom_id): learner.pk}
    if rejoin_code:
        session[REJOIN_KEY] = {**session.get(REJOIN_KEY, {}), str(learner.pk): rejoin_code}


def learner_in_session(session, classroom_id: int) -> Learner | None:
    learner_id = (session or {}).get(LEARNERS_KEY, {}).get(str(classroom_id))
    if learner_id is None:
        return None
    return Learner.objects.filter(pk=learner_id, classroom_id=classroom_id).select_related("classroom").first()


def learners_in_session(session) -> list[Learner]:
    ids = list((session or {}).get(LEARNERS_KEY, {}).values())
    return list(Learner.objects.filter(pk__in=ids).select_related("classroom"))


def rejoin_code_in_session(session, learner: Learner) -> str | None:
    return (session or {}).get(REJOIN_KEY, {}).get(str(learner.pk))


def may_watch(session, lab_id: int) -> bool:
    """Whether this session may watch a lab it does not own: an instructor watching a classroom's
    lab, or a learner following their classroom's instructor."""
    classroom_id = classroom_of_lab(lab_id)
    if classroom_id is None:
        return False
    if staff_in_session(session):
        return True
    learner = learner_in_session(session, classroom_id)
    return learner is not None and learner.classroom.follow_lab_id == lab_id


def classroom_of_lab(lab_id: int) -> int | None:
    """The id of the lab's classroom, or None (self-study, or no such lab)."""
    from kafkalab.labs.models import Lab

    return Lab.objects.filter(pk=lab_id).values_list("classroom_id", flat=True).first()
