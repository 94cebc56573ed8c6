"""A classroom's life: created by an instructor, joined by learners, watched, and closed.

Like the lab services, no database lock is held across a Kafka call: a learner's name is reserved
in a short transaction, their lab's topics made after it, and the reservation undone if Kafka
refuses.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from kafkalab.classroom import codes
from kafkalab.classroom.errors import ClassroomError, JoinRefused
from kafkalab.classroom.models import Classroom, Learner
from kafkalab.classroom.rate_limit import join_allowed, join_failed
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab
from kafkalab.labs.services import labs as lab_services
from kafkalab.runner.protocol import (
    ClassroomNotice,
    ClassroomRoster,
    LabClosed,
    LabDelete,
    classroom_group,
    classroom_learners_group,
    classroom_publish_sync,
    lab_group,
    runner_send_sync,
)
from lessons.models import StepRecord

CLOSED_REASON = (
    "The instructor closed this classroom: its labs have been deleted. Thank you for taking part! "
    "To go on alone, start a lab of your own from the home page."
)
FOLLOW_ENDED = "The instructor stopped sharing their lab."


# --- The instructor's side ------------------------------------------------------------------


def classroom_create(*, user, name: str, max_learners: int, max_consumers_per_lab: int) -> Classroom:
    with transaction.atomic():
        open_now = Classroom.objects.select_for_update().filter(closed_at__isnull=True)
        if len(open_now) >= settings.CLASSROOM_MAX_OPEN:
            raise ClassroomError(
                f"This kafkalab already has {settings.CLASSROOM_MAX_OPEN} open classrooms, its limit. "
                "Close one you no longer use, or raise CLASSROOM_MAX_OPEN.",
                status=429,
            )
        for _ in range(20):  # a clash among 887 million codes is rare; twenty in a row is impossible
            code = codes.new_code(codes.JOIN_CODE_LENGTH)
            if not Classroom.objects.filter(join_code=code).exists():
                break
        return Classroom.objects.create(
            name=name,
            join_code=code,
            created_by=user,
            max_learners=max_learners,
            max_consumers_per_lab=max_consumers_per_lab,
        )


def instructor_lab(*, classroom: Classroom, client_address: str) -> Lab:
    """The instructor's own lab in this classroom, made on first use."""
    _refuse_if_closed(classroom)
    existing = Lab.objects.filter(pk=classroom.instructor_lab_id).first() if classroom.instructor_lab_id else None
    if existing is not None:
        return existing
    lab = lab_services.lab_create(client_address=client_address, classroom=classroom)
    Classroom.objects.filter(pk=classroom.pk).update(instructor_lab=lab)
    classroom.instructor_lab = lab
    return lab


def broadcast(*, classroom: Classroom, text: str) -> None:
    """Show `text` as a banner on every learner's page ("" takes it down)."""
    _refuse_if_closed(classroom)
    classroom.banner, classroom.banner_at = text, timezone.now() if text else None
    classroom.save(update_fields=["banner", "banner_at"])
    _tell_learners(classroom)


def follow_set(*, classroom: Classroom, on: bool) -> None:
    """Let learners open the instructor's lab read-only, or stop them."""
    _refuse_if_closed(classroom)
    if on and classroom.instructor_lab_id is None:
        raise ClassroomError("Open your own lab first: Follow me shows it to the learners.")
    classroom.follow = on
    classroom.save(update_fields=["follow"])
    _tell_learners(classroom)
    if not on and classroom.instructor_lab_id:
        closed = LabClosed(reason=FOLLOW_ENDED, observers_only=True)
        classroom_publish_sync(lab_group(classroom.instructor_lab_id), closed)


def learner_lab_reset(*, classroom: Classroom, learner: Learner) -> str | None:
    """Reset a learner's lab, as its reset button would."""
    _refuse_if_closed(classroom)
    if learner.lab is None:
        raise ClassroomError(f"{learner.name} has no lab to reset.")
    try:
        note = lab_services.lab_reset(lab=learner.lab)
    except LabError as exc:
        raise ClassroomError(str(exc), status=503) from exc
    classroom_publish_sync(classroom_group(classroom.pk), ClassroomRoster(lab_id=learner.lab_id))
    return note


def classroom_close(*, classroom: Classroom) -> int:
    """Close the classroom: nobody joins any more, and the lab runner stops and deletes every lab
    of it (learners' and the instructor's). Returns how many labs are being deleted."""
    with transaction.atomic():
        locked = Classroom.objects.select_for_update().get(pk=classroom.pk)
        if not locked.is_open:
            raise ClassroomError("This classroom is closed already.")
        locked.closed_at, locked.follow, locked.banner = timezone.now(), False, ""
        locked.save(update_fields=["closed_at", "follow", "banner"])
    classroom.closed_at, classroom.follow, classroom.banner = locked.closed_at, False, ""
    _tell_learners(classroom)  # the banner and the Follow me link go before the labs do
    lab_ids = list(Lab.objects.filter(classroom=classroom).values_list("pk", flat=True))
    for lab_id in lab_ids:
        runner_send_sync(LabDelete(lab_id=lab_id, reason=CLOSED_REASON))
    classroom_publish_sync(classroom_group(classroom.pk), ClassroomRoster())
    return len(lab_ids)


def progress_csv(*, classroom: Classroom) -> str:
    """learner, lesson, step, passed_at: one row per step passed, and one for a learner with none."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["learner", "lesson", "step", "passed_at"])
    passed = StepRecord.objects.filter(lab__classroom=classroom, passed_at__isnull=False).order_by("passed_at")
    by_lab: dict[int, list[StepRecord]] = {}
    for record in passed:
        by_lab.setdefault(record.lab_id, []).append(record)
    for learner in classroom.learners.order_by(Lower("name")):
        records = by_lab.get(learner.lab_id, []) if learner.lab_id else []
        name = _csv_safe(learner.name)
        if not records:
            writer.writerow([name, "", "", ""])
        for record in records:
            writer.writerow([name, record.lesson, record.step, record.passed_at.isoformat()])
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """A display name a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _tell_learners(classroom: Classroom) -> None:
    classroom_publish_sync(classroom_learners_group(classroom.pk), ClassroomNotice(classroom_id=classroom.pk))


def _refuse_if_closed(classroom: Classroom) -> None:
    if not classroom.is_open:
        raise ClassroomError("This classroom is closed.")


# --- The learner's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Joined:
    learner: Learner
    rejoin_code: str | None  # shown once, to a learner who just joined (None on a rejoin)


def classroom_by_code(*, code: str, client_address: str) -> Classroom:
    """The open classroom a join code opens. A wrong code counts against the address."""
    join_allowed(client_address)
    classroom = Classroom.objects.filter(join_code=codes.normalise(code)).first()
    if classroom is None:
        join_failed(client_address)
        raise JoinRefused(
            f"No classroom has the code {code.strip()[:12]!r}. Check the code on the instructor's screen.",
            status=404,
        )
    if not classroom.is_open:
        raise JoinRefused("This classroom has closed. Ask your instructor for the code of today's.", status=410)
    return classroom


def learner_join(*, classroom: Classroom, name: str, rejoin_code: str, client_address: str) -> Joined:
    """Join under a display name, with a lab of one's own; or come back to that name and lab with
    its rejoin code (another browser, a lost cookie)."""
    join_allowed(client_address)
    existing = classroom.learners.filter(name__iexact=name).first()
    if existing is not None:
        return _rejoin(existing, rejoin_code=rejoin_code, client_address=client_address)
    learner, code = _reserve_name(classroom, name)
    try:
        lab = lab_services.lab_create(client_address=client_address, classroom=classroom)
    except LabError:
        learner.delete()
        raise
    learner.lab = lab
    learner.save(update_fields=["lab"])
    classroom_publish_sync(classroom_group(classroom.pk), ClassroomRoster(lab_id=lab.pk))
    return Joined(learner=learner, rejoin_code=code)


def _reserve_name(classroom: Classroom, name: str) -> tuple[Learner, str]:
    code = codes.new_code(codes.REJOIN_CODE_LENGTH)
    try:
        with transaction.atomic():
            locked = Classroom.objects.select_for_update().get(pk=classroom.pk)
            if not locked.is_open:
                raise JoinRefused("This classroom has just closed.", status=410)
            if locked.learners.count() >= locked.max_learners:
                raise JoinRefused(
                    f"This classroom is full: it takes {locked.max_learners} learners. Ask your instructor.",
                    status=429,
                )
            learner = Learner.objects.create(classroom=locked, name=name, rejoin_digest="")
            learner.rejoin_digest = codes.rejoin_digest(str(learner.pk), code)
            learner.save(update_fields=["rejoin_digest"])
    except IntegrityError as exc:  # someone took the name a moment ago
        raise JoinRefused(_name_taken(name)) from exc
    return learner, code


def _rejoin(learner: Learner, *, rejoin_code: str, client_address: str) -> Joined:
    if not rejoin_code.strip():
        raise JoinRefused(_name_taken(learner.name))
    if not codes.rejoin_matches(str(learner.pk), rejoin_code, learner.rejoin_digest):
        join_failed(client_address)
        raise JoinRefused(
            f"That is not the rejoin code of {learner.name!r}. It was shown when that name joined; "
            "if you lost it, pick another name or ask your instructor."
        )
    if learner.lab is None:
        raise JoinRefused(f"{learner.name!r} has no lab any more.", status=410)
    return Joined(learner=learner, rejoin_code=None)


def _name_taken(name: str) -> str:
    return (
        f"Someone joined as {name!r} already. If that was you, enter the rejoin code you were shown; "
        "otherwise pick another name."
    )
