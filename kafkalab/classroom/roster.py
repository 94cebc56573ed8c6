"""The dashboard's roster: each learner's progress (from the database) beside their lab's health
(the lab runner's summary, kafkalab.runner.model.lab_summary), sorted and filtered for the
instructor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q
from django.http import QueryDict
from django.utils import timezone

from kafkalab.classroom.models import Classroom, Learner
from lessons.content import lesson_by_slug
from lessons.models import LessonProgress

SORTS = {
    "name": "learner",
    "lesson": "lesson and step",
    "passed": "steps passed",
    "seen": "last seen",
    "lag": "lag",
    "errors": "errors",
}
DEFAULT_SORT = "name"


@dataclass
class RosterRow:
    learner_id: int
    name: str
    lab_id: int | None
    joined_at: datetime
    last_seen_at: datetime | None
    lesson_title: str = ""
    lesson_order: int = 0
    step_title: str = ""  # "" with a lesson: every step passed
    step_number: int = 0
    step_count: int = 0
    passed: int = 0  # steps passed, in every lesson
    live: dict | None = field(default=None)  # the runner's summary, once it sent one

    @property
    def online(self) -> bool:
        return bool(self.live and self.live["online"])

    @property
    def errors(self) -> list[str]:
        return self.live["errors"] if self.live else []

    @property
    def error_count(self) -> int:
        return self.live.get("error_count", len(self.errors)) if self.live else 0

    @property
    def more_errors(self) -> int:
        """Errors beyond those the summary lists."""
        return self.error_count - len(self.errors)

    @property
    def needs_help(self) -> bool:
        return bool(self.errors)

    @property
    def lag(self) -> int | None:
        return self.live["lag"] if self.live else None


def roster_rows(classroom: Classroom, *, lab_ids: list[int] | None = None) -> list[RosterRow]:
    """The classroom's learners (or those with these labs), as the database has them."""
    learners = classroom.learners.select_related("lab").annotate(
        passed=Count("lab__lesson_steps", filter=Q(lab__lesson_steps__passed_at__isnull=False))
    )
    if lab_ids is not None:
        learners = learners.filter(lab_id__in=lab_ids)
    progress = {
        p.lab_id: p
        for p in LessonProgress.objects.filter(lab__classroom=classroom, active=True, lab__learner__isnull=False)
    }
    return [_row(learner, progress.get(learner.lab_id)) for learner in learners]


def _row(learner: Learner, progress: LessonProgress | None) -> RosterRow:
    row = RosterRow(
        learner_id=learner.pk,
        name=learner.name,
        lab_id=learner.lab_id,
        joined_at=learner.joined_at,
        last_seen_at=learner.lab.last_seen_at if learner.lab else None,
        passed=learner.passed,
    )
    lesson = lesson_by_slug(progress.lesson) if progress else None
    if lesson is not None:
        row.lesson_title, row.lesson_order, row.step_count = lesson.title, lesson.order, len(lesson.steps)
        ids = [s.id for s in lesson.steps]
        if progress.current_step in ids:
            row.step_number = ids.index(progress.current_step) + 1
            row.step_title = lesson.steps[row.step_number - 1].title
        else:
            row.step_number = len(ids) + 1  # done: sorts after every step
    return row


def view_from(query) -> dict:
    """The sort and filter asked for in a query string (the dashboard's page and socket share it)."""
    sort = query.get("sort", DEFAULT_SORT)
    return {
        "sort": sort if sort in SORTS else DEFAULT_SORT,
        "descending": query.get("order") == "desc",
        "text": query.get("q", "")[:40],
        "needs_help": query.get("help") == "1",
    }


def query_of(view: dict, **changes) -> str:
    """A view as a query string, with `changes` (the sort links, the actions' way back)."""
    view = {**view, **changes}
    query = QueryDict(mutable=True)
    query["sort"] = view["sort"]
    if view["descending"]:
        query["order"] = "desc"
    if view["text"]:
        query["q"] = view["text"]
    if view["needs_help"]:
        query["help"] = "1"
    return query.urlencode()


def headers(view: dict) -> list[dict]:
    """The sortable column headers: a second click on the current one turns the order round."""
    return [
        {
            "key": key,
            "label": label,
            "current": key == view["sort"],
            "aria_sort": ("descending" if view["descending"] else "ascending") if key == view["sort"] else None,
            "query": query_of(view, sort=key, descending=key == view["sort"] and not view["descending"]),
        }
        for key, label in SORTS.items()
    ]


def roster_context(rows: list[RosterRow], *, view: dict, classroom_id: int, learners: int) -> dict:
    """What classroom/roster.html draws, from the page and from the dashboard's socket alike."""
    return {
        "rows": rows,
        "learners": learners,
        "classroom_id": classroom_id,
        "headers": {h["key"]: h for h in headers(view)},
        "view_query": query_of(view),
    }


def arranged(rows: list[RosterRow], *, sort: str, descending: bool, text: str, needs_help: bool) -> list[RosterRow]:
    """The rows the instructor asked for, in their order."""
    text = text.strip().casefold()
    shown = [
        row
        for row in rows
        if (not text or text in row.name.casefold() or text in row.lesson_title.casefold())
        and (not needs_help or row.needs_help)
    ]
    key = _SORT_KEYS.get(sort, _SORT_KEYS[DEFAULT_SORT])
    return sorted(shown, key=lambda row: (key(row), row.name.casefold()), reverse=descending)


_NEVER = timezone.make_aware(datetime(1970, 1, 1))

_SORT_KEYS = {
    "name": lambda row: row.name.casefold(),
    "lesson": lambda row: (row.lesson_order, row.step_number),
    "passed": lambda row: row.passed,
    "seen": lambda row: (row.online, row.last_seen_at or _NEVER),
    "lag": lambda row: -1 if row.lag is None else row.lag,
    "errors": lambda row: row.error_count,
}
