"""OrderService's transaction: Begin, Commit, Abort, Leave open, and the transaction.timeout.ms lever.

Thin, like the other lab views: every POST acts on the requester's own lab only. With htmx each
answers the transaction's notice, and its state out of band; without it, a redirect to the lab
with the notice as a message, so the buttons work without JavaScript.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from kafkalab.labs.concurrency import kafka_view
from kafkalab.labs.errors import LabError
from kafkalab.labs.forms import TransactionTimeoutForm
from kafkalab.labs.models import Lab
from kafkalab.labs.services import transactions as transaction_services
from kafkalab.labs.views import UNPROCESSABLE, _owned_lab, _redirect_with

PANEL = "labs/panels/order_panel.html"

TRANSACTION_ACTIONS = {
    "begin": transaction_services.transaction_begin,
    "commit": transaction_services.transaction_commit,
    "abort": transaction_services.transaction_abort,
    "leave": transaction_services.transaction_leave_open,
}


@kafka_view
@require_POST
def transaction_action(request: HttpRequest, lab_id: int, action: str) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    try:
        text, ok = TRANSACTION_ACTIONS[action](lab=lab), True
    except LabError as exc:
        text, ok = str(exc), False
    return _transaction_notice(request, lab, text, ok=ok)


@require_POST
def transaction_timeout(request: HttpRequest, lab_id: int) -> HttpResponse:
    """The lever: transaction.timeout.ms of the next transaction begun."""
    lab = _owned_lab(request, lab_id)
    form = TransactionTimeoutForm(request.POST)
    context = {"lab": lab, "timeout_form": form}
    status = UNPROCESSABLE
    if form.is_valid():
        try:
            context["timeout_notice"] = transaction_services.transaction_timeout_set(
                lab=lab, timeout_ms=form.cleaned_data["timeout_ms"]
            )
            status = 200
        except LabError as exc:
            context["timeout_error"] = str(exc)
    if not request.htmx:
        errors = form.errors.get("timeout_ms") or [context.get("timeout_error", "Check the form.")]
        return _redirect_with(request, lab, context.get("timeout_notice") or errors[0], ok=status == 200)
    return HttpResponse(render_to_string(f"{PANEL}#transaction-timeout", context, request=request), status=status)


def _transaction_notice(request: HttpRequest, lab: Lab, text: str, *, ok: bool) -> HttpResponse:
    """The transaction's notice and its state now (htmx), or the lab page with it as a message."""
    if not request.htmx:
        return _redirect_with(request, lab, text, ok=ok)
    notice = {"txn_notice": text if ok else None, "txn_error": None if ok else text}
    html = render_to_string(f"{PANEL}#transaction-notice", notice, request=request)
    state = {
        "transaction": lab.transaction_open,
        "ended": lab.transaction_ended,
        "lab_id": lab.pk,
        "can_act": True,
        "oob": True,
    }
    html += render_to_string("labs/panels/transaction.html", state, request=request)
    return HttpResponse(html, status=200 if ok else UNPROCESSABLE)
