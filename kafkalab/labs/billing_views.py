"""BillingService: Start, Start a twin, Stop, Kill and Restart.

Thin, like the consumer views: every POST acts on the requester's own lab only. With htmx each
answers the billing panel's notice (the cards follow over the websocket); without it, a redirect to
the lab with the notice as a message.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from kafkalab.labs.concurrency import kafka_view
from kafkalab.labs.errors import LabError
from kafkalab.labs.forms import BillingConfigForm
from kafkalab.labs.services import billing as billing_services
from kafkalab.labs.views import _owned_lab, _panel_notice

NOTICE = "labs/panels/billing_notice.html"

BILLING_ACTIONS = {
    "stop": (billing_services.billing_stop, "Stopping {name}: it ends its batch and leaves the group."),
    "kill": (billing_services.billing_kill, "Killed {name} with SIGKILL, mid-batch if it was in one."),
    "restart": (billing_services.billing_restart, "Restarting {name}…"),
}


@kafka_view
@require_POST
def billing_add(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    form = BillingConfigForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[f].label}: {' '.join(e)}" for f, e in form.errors.items())
        return _notice(request, lab, errors or "Check the form.", ok=False)
    try:
        instance = billing_services.billing_add(lab=lab, config=form.config())
        text, ok = f"Starting {instance.name} ({form.config().mode})… it joins the group {lab.billing_group_id}.", True
    except LabError as exc:
        text, ok = str(exc), False
    return _notice(request, lab, text, ok=ok)


@kafka_view
@require_POST
def billing_twin(request: HttpRequest, lab_id: int, name: str) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    try:
        twin = billing_services.billing_twin(lab=lab, name=name)
        text = (
            f"Starting {twin.name} with {name}'s transactional.id: its init_transactions() fences {name}, "
            f"which finds out at its next transaction (write a few orders)."
        )
        ok = True
    except LabError as exc:
        text, ok = str(exc), False
    return _notice(request, lab, text, ok=ok)


@kafka_view
@require_POST
def billing_action(request: HttpRequest, lab_id: int, name: str, action: str) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    act, done = BILLING_ACTIONS[action]
    try:
        act(lab=lab, name=name)
        text, ok = done.format(name=name), True
    except LabError as exc:
        text, ok = str(exc), False
    return _notice(request, lab, text, ok=ok)


def _notice(request: HttpRequest, lab, text: str, *, ok: bool) -> HttpResponse:
    return _panel_notice(request, lab, text, ok=ok, template=NOTICE)
