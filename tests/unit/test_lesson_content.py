"""Lesson files: what a teacher writes, read, and every mistake reported with its file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lessons.content import LessonFileError, read_all, read_lesson

GOOD = """\
+++
slug = "demo"
title = "Demo"
order = 9

[[steps]]
id = "one"
check = "record_written"
show_me = "create-order"

[steps.prediction]
question = "Where?"
choices = ["here", "there"]
answer = 1
+++

## one: Write something

Do it.

### Hint

Press the button.

### Why

Key `$key` went to partition $partition.
"""


def write(tmp_path: Path, text: str, name: str = "09-demo.md") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_file_reads_into_a_lesson_with_its_steps(tmp_path):
    lesson = read_lesson(write(tmp_path, GOOD))

    [step] = lesson.steps
    assert (lesson.slug, lesson.title, lesson.order) == ("demo", "Demo", 9)
    assert (step.id, step.title, step.check, step.show_me) == (
        "one",
        "Write something",
        "record_written",
        "create-order",
    )
    assert step.prediction.choices == ("here", "there") and step.prediction.answer == 1
    assert "<strong>" not in step.text_html and "Do it." in step.text_html
    assert step.why_html({"key": "<k>", "partition": "2"}) == "<p>Key <code>&lt;k&gt;</code> went to partition 2.</p>"


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        (('check = "record_written"', 'check = "no_such_check"'), 2, "no check named 'no_such_check'"),
        (("order = 9", "order = [9"), 6, "front matter"),  # where TOML noticed
        (("$partition", "$nonsense"), 17, "$nonsense"),
        (("answer = 1", "answer = 5"), 17, "answer"),
        (("## one: Write something", "## two: Write something"), 2, "no section"),
        (("### Why\n\nKey `$key` went to partition $partition.\n", ""), 17, "no `### Why`"),
    ],
)
def test_each_mistake_is_reported_with_file_and_line(tmp_path, change, line, says):
    path = write(tmp_path, GOOD.replace(*change))

    with pytest.raises(LessonFileError) as raised:
        read_lesson(path)

    assert raised.value.line == line, str(raised.value)
    assert says in raised.value.message
    assert str(raised.value).startswith(f"{path.name}, line {line}:")


def test_broken_files_are_left_out_and_reported_the_others_read(tmp_path):
    write(tmp_path, GOOD)
    write(tmp_path, "no front matter here\n", name="10-broken.md")
    write(tmp_path, GOOD, name="11-same-slug.md")

    lessons, errors = read_all(tmp_path)

    assert [lesson.slug for lesson in lessons] == ["demo"]
    assert sorted((e.path.name, e.line) for e in errors) == [("10-broken.md", 1), ("11-same-slug.md", 2)]


def test_the_shipped_lessons_all_read():
    lessons, errors = read_all()
    assert errors == []
    assert [lesson.order for lesson in lessons] == sorted(lesson.order for lesson in lessons)
    assert all(4 <= len(lesson.steps) <= 8 for lesson in lessons)


def test_start_up_reports_a_broken_lesson_file_with_its_line(tmp_path, monkeypatch):
    from lessons import content, system_checks

    write(tmp_path, GOOD.replace("$partition", "$nonsense"))
    monkeypatch.setattr(content, "CONTENT_DIR", tmp_path)

    [error] = system_checks.lesson_files(None)

    assert error.id == "lessons.E001"
    assert error.msg.startswith("09-demo.md, line 17:") and "$nonsense" in error.msg
