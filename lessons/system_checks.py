"""A Django system check: every lesson file reads, or start-up says which one is wrong, and where."""

from __future__ import annotations

from django.core import checks

from lessons.content import read_all


@checks.register()
def lesson_files(app_configs, **kwargs) -> list[checks.CheckMessage]:
    _, errors = read_all()
    return [
        checks.Error(
            str(error),
            hint="Fix the lesson file; until then it is left out of the catalog.",
            obj=str(error.path),
            id="lessons.E001",
        )
        for error in errors
    ]
