"""Lesson views: the catalog, a lesson beside the learner's lab, and the learner's two actions
(begin a lesson, predict a step). Passing a step is never an action: only Kafka passes steps."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from kafkalab.labs.access import labs_owned
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab
from kafkalab.labs.views import UNPROCESSABLE, _owned_lab, lab_page
from lessons import selectors, services
from lessons.content import Lesson, lesson_by_slug


def _lesson(slug: str) -> Lesson:
    lesson = lesson_by_slug(slug)
    if lesson is None:
        raise Http404("There is no such lesson.")
    return lesson


def _session_lab(request: HttpRequest) -> Lab | None:
    owned = labs_owned(request.session)
    return Lab.objects.filter(pk=owned[-1]).first() if owned else None


@require_GET
def catalog(request: HttpRequest) -> HttpResponse:
    lab = _session_lab(request)
    return render(request, "lessons/catalog.html", {"lab": lab, "lessons": selectors.catalog_progress(lab)})


@require_GET
def lesson_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The learner's lab with this lesson beside it (the start page first, without a lab)."""
    lesson = _lesson(slug)
    lab = _session_lab(request)
    if lab is None:
        messages.info(request, f"Start a lab first: the lesson “{lesson.title}” runs on it.")
        return redirect("labs:home")
    return lab_page(request, lab, lesson=lesson)


@require_POST
def lesson_begin(request: HttpRequest, lab_id: int, slug: str) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    lesson = _lesson(slug)
    services.lesson_begin(lab=lab, lesson=lesson)
    return redirect("lessons:detail", slug=lesson.slug)


@require_POST
def prediction(request: HttpRequest, lab_id: int, slug: str, step_id: str) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    lesson = _lesson(slug)
    error, status = None, 200
    try:
        choice = int(request.POST.get("choice", ""))
        services.prediction_save(lab=lab, lesson=lesson, step_id=step_id, choice=choice)
    except ValueError:
        error, status = "Choose one of the answers offered.", UNPROCESSABLE
    except LabError as exc:
        error, status = str(exc), UNPROCESSABLE
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("lessons:detail", slug=lesson.slug)
    context = {"lab": lab, "lesson": selectors.lesson_view(lab=lab, lesson=lesson), "can_act": True, "error": error}
    return render(request, "lessons/panel.html", context, status=status)
