"""OrderService's contract and the registry panel: thin views over services.contracts and
contract_selectors. Every POST acts on the requester's own lab only; the GET changes nothing.

With htmx each answers the fragment it changed; without it, the encoding switch redirects to the
lab and the others answer a page of their own (labs/contract.html), so the forms work without JS.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from kafkalab.kafka.contracts import LEVELS
from kafkalab.labs import contract_selectors
from kafkalab.labs.access import Role, lab_viewer_role
from kafkalab.labs.concurrency import kafka_view
from kafkalab.labs.contract_forms import CompatibilityForm, DiffForm, EncodingForm, SchemaForm
from kafkalab.labs.errors import LabError
from kafkalab.labs.live_view import Viewer
from kafkalab.labs.models import Lab
from kafkalab.labs.services import contracts as contract_services
from kafkalab.labs.services.contracts import ContractInvalid, ContractRefused
from kafkalab.labs.views import UNAVAILABLE, UNPROCESSABLE, _order_panel_context, _owned_lab, _redirect_with
from kafkalab.registry import is_embedded, registry_url
from kafkalab.registry.credentials import lab_credentials

PANEL = "labs/panels/registry.html"
# Tells the page's registry part to fetch itself again (the subject's versions changed).
CHANGED_TRIGGER = "contract-changed"


def _status_of(exc: LabError) -> int:
    if isinstance(exc, ContractRefused):
        return exc.status
    return UNPROCESSABLE if isinstance(exc, ContractInvalid) else UNAVAILABLE


def _editor_context(lab: Lab, **extra) -> dict:
    viewer = Viewer(lab_id=lab.pk, role=Role.OWNER)
    return {"lab": lab, "viewer": viewer, **contract_selectors.editor_context(lab=lab), **extra}


def _editor_answer(request: HttpRequest, lab: Lab, context: dict, *, status: int, changed: bool) -> HttpResponse:
    """The editor; with htmx, also the order panel's contract line (out of band)."""
    if not request.htmx:
        return _page(request, lab, context, status=status)
    html = render_to_string(f"{PANEL}#contract-editor", context, request=request)
    html += render_to_string("labs/panels/contract_status.html", {"lab": lab, "oob": True}, request=request)
    response = HttpResponse(html, status=status)
    if changed:
        response["HX-Trigger"] = CHANGED_TRIGGER
    return response


def _page(request: HttpRequest, lab: Lab, context: dict, *, status: int = 200) -> HttpResponse:
    """The contract and registry on a page of their own, for browsers without JavaScript."""
    subject = context.get("subject") or contract_selectors.registry_subject(lab=lab, client_url=registry_url(request))
    page = {**_editor_context(lab), **context, "subject": subject, "levels": LEVELS, "open": True}
    return render(request, "labs/contract.html", page, status=status)


# --- OrderService's contract ----------------------------------------------------------------


@kafka_view
@require_POST
def contract_encoding(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    form = EncodingForm(request.POST)
    notice, error, status = None, None, 200
    if not form.is_valid():
        error, status = "Pick an encoding: plain JSON, JSON Schema or Avro.", UNPROCESSABLE
    else:
        try:
            notice = contract_services.contract_encoding_set(lab=lab, encoding=form.encoding_choice())
        except LabError as exc:
            error, status = str(exc), _status_of(exc)
    if not request.htmx:
        return _redirect_with(request, lab, error or notice, ok=status == 200)
    panel = {**_order_panel_context(lab), "contract_notice": notice, "contract_error": error}
    html = render_to_string("labs/panels/order_panel.html", panel, request=request)
    # The editor shows the new encoding's language and version 1.
    html += render_to_string(f"{PANEL}#contract-editor", {**_editor_context(lab), "oob": True}, request=request)
    response = HttpResponse(html, status=status)
    if status == 200:
        response["HX-Trigger"] = CHANGED_TRIGGER
    return response


@kafka_view
@require_POST
def contract_check(request: HttpRequest, lab_id: int) -> HttpResponse:
    """What a schema (typed, or a one-click change) would do, before anything is sent. Changes nothing."""
    lab = _owned_lab(request, lab_id)
    form = SchemaForm(request.POST)
    typed = request.POST.get("schema", "")
    if not form.is_valid():
        context = _editor_context(lab, schema_text=typed, form_errors=form.errors)
        return _editor_answer(request, lab, context, status=UNPROCESSABLE, changed=False)
    change = form.cleaned_data["change"] or None
    try:
        preview = contract_services.contract_preview(lab=lab, text=form.cleaned_data["schema"], change=change)
    except LabError as exc:
        context = _editor_context(lab, schema_text=lab.writer_schema_text if change else typed, error=str(exc))
        return _editor_answer(request, lab, context, status=_status_of(exc), changed=False)
    context = _editor_context(lab, schema_text=preview.schema_text, preview=preview)
    return _editor_answer(request, lab, context, status=200, changed=False)


@kafka_view
@require_POST
def contract_use(request: HttpRequest, lab_id: int) -> HttpResponse:
    """Register the editor's schema (for a registry encoding) and write every order with it."""
    lab = _owned_lab(request, lab_id)
    typed = request.POST.get("schema", "")
    try:
        used = contract_services.contract_use(lab=lab, text=typed)
    except ContractRefused as exc:
        context = _editor_context(lab, schema_text=typed, refused=exc)
        return _editor_answer(request, lab, context, status=exc.status, changed=False)
    except LabError as exc:
        context = _editor_context(lab, schema_text=typed, error=str(exc))
        return _editor_answer(request, lab, context, status=_status_of(exc), changed=False)
    return _editor_answer(request, lab, _editor_context(lab, used=used), status=200, changed=True)


# --- The registry's subject ---------------------------------------------------------------------


def _subject_answer(request: HttpRequest, lab: Lab, viewer: Viewer, *, status: int = 200, **extra) -> HttpResponse:
    subject = contract_selectors.registry_subject(lab=lab, client_url=registry_url(request))
    diff_form = DiffForm(request.GET)
    cleaned = diff_form.cleaned_data if diff_form.is_valid() else {}
    context = {
        "lab": lab,
        "viewer": viewer,
        "subject": subject,
        "levels": LEVELS,
        "diff": contract_selectors.version_diff(subject, cleaned.get("a"), cleaned.get("b")),
        # Only the owner sees the lab's own registry credentials, and only for the embedded registry.
        "credentials": lab_credentials(lab.pk) if viewer.can_act and is_embedded() else None,
        **extra,
    }
    if not request.htmx:
        return _page(request, lab, context, status=status)
    return render(request, f"{PANEL}#registry-subject", context, status=status)


@kafka_view
@require_GET
def registry_subject(request: HttpRequest, lab_id: int) -> HttpResponse:
    """The lab's subject: versions, a diff, the level. For the owner or a share-link holder."""
    share_token = request.GET.get("share")
    role = lab_viewer_role(request.session, lab_id, share_token=share_token)
    lab = Lab.objects.get(pk=lab_id)
    return _subject_answer(request, lab, Viewer(lab_id=lab_id, role=role, share_token=share_token))


@kafka_view
@require_POST
def compatibility_set(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    viewer = Viewer(lab_id=lab.pk, role=Role.OWNER)
    form = CompatibilityForm(request.POST)
    if not form.is_valid():
        return _subject_answer(request, lab, viewer, status=UNPROCESSABLE, error="Pick a compatibility level.")
    try:
        notice = contract_services.contract_compatibility_set(lab=lab, level=form.cleaned_data["level"])
    except LabError as exc:
        return _subject_answer(request, lab, viewer, status=_status_of(exc), error=str(exc))
    return _subject_answer(request, lab, viewer, notice=notice)
