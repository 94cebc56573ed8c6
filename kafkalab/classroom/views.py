"""Classroom views: thin. Check who is asking, validate, call a service or selector, render.

Learners: /join/ (type the code), /join/<code>/ (a name, and a lab of one's own). The instructor
(a staff login): the classroom list, the live dashboard and its actions, the projector page with
the code and its QR code, and the progress CSV.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from kafkalab.classroom import codes, roster, services
from kafkalab.classroom.access import classroom_for_staff, learner_grant, learner_in_session, staff_required
from kafkalab.classroom.errors import ClassroomError, JoinRefused
from kafkalab.classroom.forms import BroadcastForm, ClassroomForm, CloseForm, JoinCodeForm, JoinForm
from kafkalab.classroom.models import Classroom
from kafkalab.classroom.qr import qr_svg
from kafkalab.labs.access import lab_grant, labs_owned
from kafkalab.labs.client_address import client_address
from kafkalab.labs.concurrency import kafka_view
from kafkalab.labs.errors import LabError, LabLimitReached

UNPROCESSABLE = 422


class LoginView(auth_views.LoginView):
    template_name = "classroom/login.html"
    redirect_authenticated_user = True


# --- Learners -----------------------------------------------------------------------------------


def join(request: HttpRequest) -> HttpResponse:
    """Type the code from the projector; it leads to that classroom's join page."""
    form = JoinCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            classroom = services.classroom_by_code(
                code=form.cleaned_data["code"], client_address=client_address(request)
            )
        except JoinRefused as exc:
            form.add_error("code", str(exc))
            return render(request, "classroom/join_code.html", {"form": form}, status=exc.status)
        return redirect("classroom:join-classroom", code=classroom.join_code)
    status = UNPROCESSABLE if form.is_bound else 200
    return render(request, "classroom/join_code.html", {"form": form}, status=status)


@kafka_view
def join_classroom(request: HttpRequest, code: str) -> HttpResponse:
    """The classroom's join page (the URL on the projector and in its QR code)."""
    address = client_address(request)
    try:
        classroom = services.classroom_by_code(code=code, client_address=address)
    except JoinRefused as exc:
        return render(request, "classroom/join_refused.html", {"error": str(exc)}, status=exc.status)
    mine = learner_in_session(request.session, classroom.pk)
    if mine is not None and mine.lab_id:  # a second tab, or back again: the same lab
        return redirect("labs:detail", lab_id=mine.lab_id)
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            joined = services.learner_join(classroom=classroom, client_address=address, **form.cleaned_data)
        except JoinRefused as exc:
            form.add_error(None, str(exc))
            return _join_page(request, classroom, form, status=exc.status)
        except (LabLimitReached, LabError) as exc:
            form.add_error(None, str(exc))
            return _join_page(request, classroom, form, status=429 if isinstance(exc, LabLimitReached) else 503)
        learner_grant(request.session, joined.learner, joined.rejoin_code)
        lab_grant(request.session, joined.learner.lab)
        return redirect("labs:detail", lab_id=joined.learner.lab_id)
    return _join_page(request, classroom, form, status=UNPROCESSABLE if form.is_bound else 200)


def _join_page(request: HttpRequest, classroom: Classroom, form: JoinForm, *, status: int) -> HttpResponse:
    return render(request, "classroom/join.html", {"classroom": classroom, "form": form}, status=status)


# --- The instructor -------------------------------------------------------------------------------


@staff_required
def classroom_list(request: HttpRequest) -> HttpResponse:
    form = ClassroomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            classroom = services.classroom_create(user=request.user, **form.cleaned_data)
        except ClassroomError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("classroom:dashboard", classroom_id=classroom.pk)
    status = UNPROCESSABLE if form.errors else 200
    context = {"form": form, "classrooms": Classroom.objects.select_related("created_by")}
    return render(request, "classroom/list.html", context, status=status)


@require_GET
@staff_required
def dashboard(request: HttpRequest, classroom_id: int) -> HttpResponse:
    classroom = classroom_for_staff(classroom_id)
    view = roster.view_from(request.GET)  # the dashboard's socket takes the same query
    rows = roster.arranged(roster.roster_rows(classroom), **view)
    context = {
        "classroom": classroom,
        **roster.roster_context(rows, view=view, classroom_id=classroom.pk, learners=classroom.learners.count()),
        "view": view,
        "broadcast_form": BroadcastForm(initial={"message": classroom.banner}),
        "close_form": CloseForm(),
        **_join_links(request, classroom),
    }
    return render(request, "classroom/dashboard.html", context)


@require_GET
@staff_required
def projector(request: HttpRequest, classroom_id: int) -> HttpResponse:
    """The join code, URL and QR code, large, for the projector."""
    classroom = classroom_for_staff(classroom_id)
    return render(request, "classroom/projector.html", {"classroom": classroom, **_join_links(request, classroom)})


def _join_links(request: HttpRequest, classroom: Classroom) -> dict:
    join_url = request.build_absolute_uri(reverse("classroom:join-classroom", args=[classroom.join_code]))
    return {
        "join_url": join_url,
        "join_code": codes.spaced(classroom.join_code),
        "join_page": request.build_absolute_uri(reverse("classroom:join")),
        "qr_svg": qr_svg(join_url),
    }


@require_GET
@staff_required
def progress_csv(request: HttpRequest, classroom_id: int) -> HttpResponse:
    classroom = classroom_for_staff(classroom_id)
    response = HttpResponse(services.progress_csv(classroom=classroom), content_type="text/csv; charset=utf-8")
    filename = f"kafkalab-{classroom.join_code}-progress.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
@staff_required
def broadcast(request: HttpRequest, classroom_id: int) -> HttpResponse:
    classroom = classroom_for_staff(classroom_id)
    form = BroadcastForm(request.POST)
    if not form.is_valid():
        return _back(
            request, classroom, " ".join(form.errors.get("message", [])) or "That message cannot be sent.", ok=False
        )
    text = form.cleaned_data["message"]
    return _act(
        request,
        classroom,
        lambda: services.broadcast(classroom=classroom, text=text),
        "Sent: every learner's lab shows your message." if text else "The banner is down.",
    )


@require_POST
@staff_required
def follow(request: HttpRequest, classroom_id: int) -> HttpResponse:
    classroom = classroom_for_staff(classroom_id)
    on = request.POST.get("follow") == "on"
    done = "Follow me is on: learners see a link to watch your lab." if on else "Follow me is off."
    return _act(request, classroom, lambda: services.follow_set(classroom=classroom, on=on), done)


@kafka_view
@require_POST
@staff_required
def my_lab(request: HttpRequest, classroom_id: int) -> HttpResponse:
    """The instructor's own lab in this classroom (made on first use): the one learners follow."""
    classroom = classroom_for_staff(classroom_id)
    try:
        lab = services.instructor_lab(classroom=classroom, client_address=client_address(request))
    except (ClassroomError, LabError) as exc:
        return _back(request, classroom, str(exc), ok=False)
    if lab.pk not in labs_owned(request.session):
        lab_grant(request.session, lab)
    return redirect("labs:detail", lab_id=lab.pk)


@kafka_view
@require_POST
@staff_required
def learner_reset(request: HttpRequest, classroom_id: int, learner_id: int) -> HttpResponse:
    classroom = classroom_for_staff(classroom_id)
    learner = get_object_or_404(classroom.learners, pk=learner_id)
    try:
        note = services.learner_lab_reset(classroom=classroom, learner=learner)
    except ClassroomError as exc:
        return _back(request, classroom, str(exc), ok=False)
    done = f"{learner.name}'s lab was reset: consumers stopped, topics and group made afresh."
    return _back(request, classroom, f"{done} {note}" if note else done, ok=True)


@kafka_view
@require_POST
@staff_required
def close(request: HttpRequest, classroom_id: int) -> HttpResponse:
    classroom = classroom_for_staff(classroom_id)
    form = CloseForm(request.POST)
    if not form.is_valid():
        return _back(request, classroom, form.errors["confirm"][0], ok=False)
    try:
        deleting = services.classroom_close(classroom=classroom)
    except ClassroomError as exc:
        return _back(request, classroom, str(exc), ok=False)
    messages.success(
        request, f"{classroom.name} is closed: nobody can join it, and its {deleting} lab(s) are being deleted."
    )
    return redirect("classroom:list")


def _act(request: HttpRequest, classroom: Classroom, action, done: str) -> HttpResponse:
    try:
        action()
    except ClassroomError as exc:
        return _back(request, classroom, str(exc), ok=False)
    return _back(request, classroom, done, ok=True)


def _back(request: HttpRequest, classroom: Classroom, text: str, *, ok: bool) -> HttpResponse:
    (messages.success if ok else messages.error)(request, text)
    return redirect(reverse("classroom:dashboard", args=[classroom.pk]) + _query_back(request))


def _query_back(request: HttpRequest) -> str:
    """Back to the dashboard as the instructor had it sorted and filtered."""
    query = request.POST.get("view", "")
    return f"?{query}" if query and len(query) < 300 else ""
