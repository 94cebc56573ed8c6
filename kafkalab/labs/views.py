from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from kafkalab.labs import services
from kafkalab.labs.access import lab_for_session, lab_grant, labs_owned
from kafkalab.labs.concurrency import off_shared_thread
from kafkalab.labs.events import sample_order
from kafkalab.labs.forms import (
    AdvanceForm,
    BurstForm,
    ConsumerConfigForm,
    OrderForm,
    PartitionsForm,
    item_formset_class,
)
from kafkalab.labs.models import Lab, LabOrder

# htmx swaps these statuses too (see the htmx-config meta tag in base.html).
UNPROCESSABLE = 422
UNAVAILABLE = 503


@off_shared_thread
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """First visit: a lab of your own. Later visits: back to it."""
    owned = labs_owned(request.session)
    if owned and Lab.objects.filter(pk=owned[-1]).exists():
        return redirect("labs:detail", lab_id=owned[-1])
    try:
        lab = services.lab_create()
    except services.LabError as exc:
        return render(request, "labs/unavailable.html", {"error": str(exc)}, status=UNAVAILABLE)
    lab_grant(request.session, lab)
    return redirect("labs:detail", lab_id=lab.pk)


@off_shared_thread
@require_GET
def lab_detail(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    return render(request, "labs/lab.html", _page_context(lab))


@off_shared_thread
@require_GET
def lab_state(request: HttpRequest, lab_id: int) -> JsonResponse:
    lab = lab_for_session(request.session, lab_id)
    return JsonResponse(services.lab_state(lab=lab), json_dumps_params={"indent": 2})


@off_shared_thread
@require_POST
def lab_reset(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    try:
        services.lab_reset(lab=lab)
        messages.success(
            request,
            "Lab reset: its consumers were stopped and removed, and its topic and group were deleted "
            "and created afresh, with 4 empty partitions.",
        )
    except services.LabError as exc:
        messages.error(request, str(exc))
    return redirect("labs:detail", lab_id=lab.pk)


@off_shared_thread
@require_POST
def order_create(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    form = OrderForm(request.POST)
    items = item_formset_class()(request.POST, prefix="items")
    if "add_item" in request.POST:
        return _order_panel(
            request, lab, order_form=OrderForm(initial=request.POST.dict()), items=_with_extra_row(request)
        )
    if not (form.is_valid() and items.is_valid()):
        return _order_panel(request, lab, order_form=form, items=items, status=UNPROCESSABLE)
    item_rows = [
        {"productId": row["product_id"], "quantity": row["quantity"], "price": row["price"]}
        for row in items.cleaned_data
        if row
    ]
    return _produce(
        request,
        lab,
        lambda: services.order_create(lab=lab, items=item_rows, **form.cleaned_data),
        keep={"order_form": form, "items": items},
    )


@off_shared_thread
@require_POST
def orders_burst(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    form = BurstForm(request.POST)
    if not form.is_valid():
        return _order_panel(request, lab, burst_form=form, status=UNPROCESSABLE)
    return _produce(
        request, lab, lambda: services.orders_burst(lab=lab, **form.cleaned_data), keep={"burst_form": form}
    )


@off_shared_thread
@require_POST
def order_advance(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    form = AdvanceForm(request.POST)
    if not form.is_valid():
        return _order_panel(request, lab, error="Pick an order first.", status=UNPROCESSABLE)
    return _produce(request, lab, lambda: services.order_advance(lab=lab, order_id=form.cleaned_data["order_id"]))


@off_shared_thread
@require_POST
def partitions_change(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    form = PartitionsForm(request.POST)
    context = {"lab": lab, "partitions_form": form}
    status = 200
    if form.is_valid():
        try:
            context["change"] = services.topic_partitions_increase(lab=lab, total=form.cleaned_data["partitions"])
            context["partitions_form"] = PartitionsForm(initial={"partitions": form.cleaned_data["partitions"]})
        except services.LabError as exc:
            context["error"] = str(exc)
            status = UNPROCESSABLE
    else:
        status = UNPROCESSABLE
    if not request.htmx:
        return _redirect_with(request, lab, context.get("error") or "Partition count changed.", ok=status == 200)
    return render(request, "labs/lab.html#topic-controls", context, status=status)


@off_shared_thread
@require_GET
def event_detail(request: HttpRequest, lab_id: int, partition: int, offset: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    try:
        context = {"lab": lab, "event": services.event_inspect(lab=lab, partition=partition, offset=offset)}
        status = 200
    except services.LabError as exc:
        context, status = {"lab": lab, "error": str(exc)}, UNPROCESSABLE
    template = "labs/lab.html#inspector" if request.htmx else "labs/event.html"
    return render(request, template, context, status=status)


# --- helpers --------------------------------------------------------------------------------


def _page_context(lab: Lab) -> dict:
    return {
        "lab": lab,
        "lab_id": lab.pk,
        **_order_panel_context(lab),
        "partitions_form": PartitionsForm(initial={"partitions": services.lab_partition_count(lab=lab)}),
        "lane_window": settings.LAB_LANE_WINDOW,
        "consumer_form": ConsumerConfigForm(),
    }


def _order_panel_context(lab: Lab, **overrides) -> dict:
    sample = sample_order()
    context = {
        "lab": lab,
        "order_form": OrderForm(
            initial={"order_id": sample["orderId"], "customer_id": sample["customerId"], "key_strategy": "orderId"}
        ),
        "items": item_formset_class()(
            prefix="items",
            initial=[
                {"product_id": i["productId"], "quantity": i["quantity"], "price": i["price"]} for i in sample["items"]
            ],
        ),
        "burst_form": BurstForm(),
        "recent_orders": lab.orders.exclude(status=LabOrder.Status.SHIPPED)[:5],
    }
    context.update(overrides)
    return context


def _with_extra_row(request: HttpRequest):
    """The rows typed so far plus an empty one, for "Add item"; works without JavaScript."""
    try:
        typed = int(request.POST.get("items-TOTAL_FORMS", "0"))
    except ValueError:
        typed = 0
    typed = max(0, min(typed, settings.LAB_MAX_ITEMS - 1))
    fields = ("product_id", "quantity", "price")
    rows = [{f: request.POST.get(f"items-{i}-{f}", "") for f in fields} for i in range(typed)]
    return item_formset_class()(prefix="items", initial=[*rows, {}])


def _order_panel(request: HttpRequest, lab: Lab, *, status: int = 200, **overrides) -> HttpResponse:
    return render(request, "labs/lab.html#order-panel", _order_panel_context(lab, **overrides), status=status)


def _produce(request: HttpRequest, lab: Lab, action, *, keep: dict | None = None) -> HttpResponse:
    """Run a produce action and report exactly what Kafka acknowledged. `keep` holds the forms
    to show again, as typed, when not everything was written."""
    keep = keep or {}
    try:
        outcome = action()
    except services.LabError as exc:
        if not request.htmx:
            return _redirect_with(request, lab, str(exc), ok=False)
        return _order_panel(request, lab, error=str(exc), status=UNPROCESSABLE, **keep)
    if not request.htmx:
        return _redirect_with(request, lab, _outcome_text(outcome), ok=not outcome.failed)
    if outcome.failed:
        return _order_panel(request, lab, outcome=outcome, status=UNAVAILABLE, **keep)
    return _order_panel(request, lab, outcome=outcome)


def _outcome_text(outcome: services.ProduceOutcome) -> str:
    if not outcome.failed:
        return f"Kafka acknowledged {outcome.written} event(s)."
    return f"Kafka acknowledged {outcome.written} of {outcome.requested} event(s): {outcome.first_error}"


def _redirect_with(request: HttpRequest, lab: Lab, text: str, *, ok: bool) -> HttpResponse:
    (messages.success if ok else messages.error)(request, text)
    return redirect("labs:detail", lab_id=lab.pk)


# --- consumers ------------------------------------------------------------------------------


@off_shared_thread
@require_POST
def consumer_add(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    form = ConsumerConfigForm(request.POST)
    context = {"lab": lab, "consumer_form": form}
    status = 200
    if form.is_valid():
        try:
            consumer = services.consumer_add(lab=lab, config=form.cleaned_data)
            context["notice"] = f"Starting {consumer.name}… it joins the group and Kafka rebalances."
        except services.LabError as exc:
            context["error"], status = str(exc), UNPROCESSABLE
    else:
        status = UNPROCESSABLE
    if not request.htmx:
        return _redirect_with(
            request, lab, context.get("error") or context.get("notice") or "Check the form.", ok=status == 200
        )
    return render(request, "labs/lab.html#consumer-controls", context, status=status)


@off_shared_thread
@require_POST
def consumer_action(request: HttpRequest, lab_id: int, name: str, action: str) -> HttpResponse:
    lab = lab_for_session(request.session, lab_id)
    act = {
        "stop": (services.consumer_stop, f"Stopping {name}: it closes and leaves the group."),
        "kill": (services.consumer_kill, f"Killed {name} with SIGKILL: the group waits for its session timeout."),
        "restart": (services.consumer_restart, f"Restarting {name}…"),
    }[action]
    try:
        act[0](lab=lab, name=name)
        text, ok = act[1], True
    except services.LabError as exc:
        text, ok = str(exc), False
    if not request.htmx:
        return _redirect_with(request, lab, text, ok=ok)
    return render(
        request,
        "labs/lab.html#consumer-notice",
        {"notice": text if ok else None, "error": None if ok else text},
        status=200 if ok else UNPROCESSABLE,
    )
