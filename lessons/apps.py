from django.apps import AppConfig


class LessonsConfig(AppConfig):
    name = "lessons"
    verbose_name = "Lessons"

    def ready(self) -> None:
        from lessons import system_checks  # noqa: F401 (registers the lesson-file check)
