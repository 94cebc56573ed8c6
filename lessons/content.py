"""Lessons are content: one Markdown file per lesson in lessons/content/, read here.

A file starts with TOML front matter between two `+++` lines: the lesson's slug, title, order
and summary, then one `[[steps]]` table per step with its `id`, its `check` (a name from
lessons.checks) and the check's `params`, and optionally `show_me` (the `data-control` of the
control to highlight), `hint_after_seconds` and a `prediction` (`question`, `choices`, and the
index of the choice Kafka will show true as `answer`).

The body has one section per step, in the same order, headed `## <step id>: <title>`: what to
do, then `### Hint` and `### Why`. The Why is shown once the step passes, with `$name`
placeholders filled from what the check found in the learner's lab (each check lists the facts
it gives). A file that breaks any of this is reported with its path and line by a Django system
check at start-up (`manage.py check`, `serve`, the test suite), and left out of the catalog.
"""

from __future__ import annotations

import functools
import logging
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import markdown as markdown_lib

from lessons import checks

log = logging.getLogger(__name__)

CONTENT_DIR = Path(__file__).resolve().parent / "content"
FENCE = "+++"
STEP_HEADING = re.compile(r"^## +(?P<id>[a-z0-9][a-z0-9-]*) *: *(?P<title>.+?) *$")
PART_HEADING = re.compile(r"^### +(?P<part>Hint|Why) *$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}$")
DEFAULT_HINT_AFTER_SECONDS = 45


class LessonFileError(ValueError):
    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path.name}, line {line}: {message}")
        self.path, self.line, self.message = path, line, message


@dataclass(frozen=True)
class Prediction:
    question: str
    choices: tuple[str, ...]
    answer: int


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    check: str
    params: dict
    text_html: str
    hint_html: str
    why_template: str  # HTML with $placeholders for the check's facts
    show_me: str | None = None
    hint_after_seconds: int = DEFAULT_HINT_AFTER_SECONDS
    prediction: Prediction | None = None

    def why_html(self, facts: dict) -> str:
        """The explanation, in the learner's own numbers (each fact HTML-escaped)."""
        from django.utils.html import escape

        return string.Template(self.why_template).safe_substitute({k: escape(v) for k, v in facts.items()})


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    order: int
    summary: str
    steps: tuple[Step, ...]
    path: Path = field(compare=False)

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def step_after(self, step_id: str) -> Step | None:
        ids = [s.id for s in self.steps]
        index = ids.index(step_id) + 1 if step_id in ids else len(ids)
        return self.steps[index] if index < len(ids) else None


# --- reading one file ------------------------------------------------------------------------


def read_lesson(path: Path) -> Lesson:
    """The lesson in `path`, or LessonFileError saying where the file is wrong."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != FENCE:
        raise LessonFileError(path, 1, f"a lesson starts with front matter: a line {FENCE}, TOML, then {FENCE}")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    except StopIteration:
        raise LessonFileError(path, 1, f"the front matter is never closed with a line {FENCE}") from None
    meta = _front_matter(path, "\n".join(lines[1:end]))
    sections = _step_sections(path, lines, first=end + 1)
    return _lesson(path, meta, sections, front_matter_lines=(2, end))


def _front_matter(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "(at line N, column M)", counting from the first line of the TOML itself.
        where = re.search(r"at line (\d+)", str(exc))
        raise LessonFileError(path, int(where.group(1)) + 1 if where else 2, f"front matter: {exc}") from None


@dataclass
class _Section:
    line: int
    title: str
    parts: dict[str, list[str]]  # "text", "Hint", "Why" → their lines


def _step_sections(path: Path, lines: list[str], *, first: int) -> dict[str, _Section]:
    sections: dict[str, _Section] = {}
    current: _Section | None = None
    part = "text"
    for number, line in enumerate(lines[first:], start=first + 1):
        if heading := STEP_HEADING.match(line):
            step_id = heading["id"]
            if step_id in sections:
                raise LessonFileError(path, number, f"a second section for step {step_id!r}")
            current = sections[step_id] = _Section(number, heading["title"], {"text": [], "Hint": [], "Why": []})
            part = "text"
        elif line.startswith("## "):
            raise LessonFileError(path, number, "a step section is headed `## <step id>: <title>`")
        elif heading := PART_HEADING.match(line):
            if current is None:
                raise LessonFileError(path, number, f"### {heading['part']} outside any step section")
            part = heading["part"]
        elif current is not None:
            current.parts[part].append(line)
        elif line.strip():
            raise LessonFileError(path, number, "text before the first step section (`## <step id>: <title>`)")
    return sections


def _lesson(path: Path, meta: dict, sections: dict[str, _Section], *, front_matter_lines: tuple[int, int]) -> Lesson:
    first_line, last_line = front_matter_lines

    def need(table: dict, key: str, kind: type, where: str):
        value = table.get(key)
        if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
            raise LessonFileError(path, first_line, f"{where}needs `{key}` ({kind.__name__})")
        return value

    slug = need(meta, "slug", str, "the lesson ")
    if not SLUG.match(slug):
        raise LessonFileError(path, first_line, f"slug {slug!r}: lowercase letters, digits and dashes only")
    raw_steps = meta.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise LessonFileError(path, last_line, "the lesson needs at least one [[steps]] table")
    steps = []
    for number, raw in enumerate(raw_steps, start=1):
        steps.append(_step(path, raw, sections, where=f"step {number} ", line=first_line, need=need))
    extra = set(sections) - {step.id for step in steps}
    if extra:
        step_id = sorted(extra, key=lambda s: sections[s].line)[0]
        raise LessonFileError(path, sections[step_id].line, f"section {step_id!r} has no [[steps]] entry")
    order = [step.id for step in steps]
    if order != sorted(order, key=lambda s: sections[s].line):
        raise LessonFileError(path, sections[order[0]].line, "the step sections are not in the [[steps]] order")
    return Lesson(
        slug=slug,
        title=need(meta, "title", str, "the lesson "),
        order=need(meta, "order", int, "the lesson "),
        summary=meta.get("summary", ""),
        steps=tuple(steps),
        path=path,
    )


def _step(path: Path, raw: dict, sections: dict[str, _Section], *, where: str, line: int, need) -> Step:
    step_id = need(raw, "id", str, where)
    section = sections.get(step_id)
    if section is None:
        raise LessonFileError(path, line, f"step {step_id!r} has no section `## {step_id}: <title>` in the body")
    check_name = need(raw, "check", str, where)
    spec = checks.REGISTRY.get(check_name)
    if spec is None:
        known = ", ".join(sorted(checks.REGISTRY))
        raise LessonFileError(path, line, f"step {step_id!r}: no check named {check_name!r} (known: {known})")
    try:
        params = spec.bind(raw.get("params", {}))
    except ValueError as exc:
        raise LessonFileError(path, line, f"step {step_id!r}: {exc}") from None
    why = "\n".join(section.parts["Why"]).strip()
    if not why:
        raise LessonFileError(path, section.line, f"step {step_id!r} has no `### Why` (shown when it passes)")
    unknown = _placeholders(why) - spec.facts
    if unknown:
        raise LessonFileError(
            path,
            section.line,
            f"step {step_id!r}: the Why uses ${', $'.join(sorted(unknown))}, which check {check_name!r} does not "
            f"give (it gives: {', '.join(sorted(spec.facts)) or 'nothing'})",
        )
    return Step(
        id=step_id,
        title=section.title,
        check=check_name,
        params=params,
        text_html=render_markdown("\n".join(section.parts["text"])),
        hint_html=render_markdown("\n".join(section.parts["Hint"])),
        why_template=render_markdown(why),
        show_me=raw.get("show_me"),
        hint_after_seconds=int(raw.get("hint_after_seconds", DEFAULT_HINT_AFTER_SECONDS)),
        prediction=_prediction(path, raw.get("prediction"), step_id=step_id, line=section.line),
    )


def _prediction(path: Path, raw: dict | None, *, step_id: str, line: int) -> Prediction | None:
    if raw is None:
        return None
    question, choices, answer = raw.get("question"), raw.get("choices"), raw.get("answer")
    if not isinstance(question, str) or not isinstance(choices, list) or len(choices) < 2:
        raise LessonFileError(path, line, f"step {step_id!r}: a prediction needs a question and two or more choices")
    if not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise LessonFileError(path, line, f"step {step_id!r}: the prediction's answer is the index of a choice")
    return Prediction(question=question, choices=tuple(str(c) for c in choices), answer=answer)


def _placeholders(text: str) -> set[str]:
    return {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(text)} - {None}


def render_markdown(text: str) -> str:
    # The content is the project's own (a teacher's files, not a learner's input).
    return markdown_lib.markdown(text, extensions=["fenced_code", "tables"], output_format="html")


# --- the catalog -----------------------------------------------------------------------------


def read_all(directory: Path | None = None) -> tuple[list[Lesson], list[LessonFileError]]:
    """Every lesson that reads, in order, and what is wrong with the others."""
    directory = directory or CONTENT_DIR
    lessons, errors = [], []
    for path in sorted(directory.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            lessons.append(read_lesson(path))
        except LessonFileError as exc:
            errors.append(exc)
    seen: dict[str, Lesson] = {}
    for lesson in list(lessons):
        if lesson.slug in seen:
            errors.append(
                LessonFileError(lesson.path, 2, f"slug {lesson.slug!r} is taken by {seen[lesson.slug].path.name}")
            )
            lessons.remove(lesson)
        else:
            seen[lesson.slug] = lesson
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.slug)), errors


@functools.cache
def catalog() -> tuple[Lesson, ...]:
    """The lessons the app teaches (read once per process). Broken files are left out and logged;
    the system check reports them at start-up."""
    lessons, errors = read_all()
    for error in errors:
        log.error("lesson file left out: %s", error)
    return tuple(lessons)


def lesson_by_slug(slug: str) -> Lesson | None:
    return next((lesson for lesson in catalog() if lesson.slug == slug), None)
