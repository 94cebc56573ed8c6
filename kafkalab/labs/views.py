"""Lab views: thin. Check who is asking, validate, call a service or selector, render."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from kafkalab.classroom import selectors as classroom_selectors
from kafkalab.labs import contract_selectors, selectors
from kafkalab.labs.access import (
    Role,
    lab_for_owner,
    lab_for_share,
    lab_grant,
    lab_touch,
    lab_viewer_role,
    labs_owned,
)
from kafkalab.labs.client_address import client_address
from kafkalab.labs.concurrency import kafka_view
from kafkalab.labs.errors import LabError, LabLimitReached
from kafkalab.labs.events import sample_order
from kafkalab.labs.forms import (
    AdvanceForm,
    BurstForm,
    ConsumerConfigForm,
    OrderForm,
    PartitionsForm,
    item_formset_class,
)
from kafkalab.labs.live_view import Viewer
from kafkalab.labs.models import Lab
from kafkalab.labs.services import consumers as consumer_services
from kafkalab.labs.services import dead_letters as dead_letter_services
from kafkalab.labs.services import labs as lab_services
from kafkalab.labs.services import orders as order_services
from kafkalab.labs.services import topics as topic_services
from kafkalab.registry import registry_url
from lessons import selectors as lesson_selectors
from lessons.content import Lesson

# htmx swaps these statuses too (see the htmx-config meta tag in base.html).
UNPROCESSABLE = 422
TOO_MANY = 429
UNAVAILABLE = 503


def _owned_lab(request: HttpRequest, lab_id: int) -> Lab:
    """The lab a POST acts on, if the session owns it; acting on it keeps it from expiring."""
    lab = lab_for_owner(request.session, lab_id)
    lab_touch(lab)
    return lab


# --- A lab's life ---------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Back to your lab if you have one; else what a lab is, and a button to start one."""
    owned = labs_owned(request.session)
    if owned and Lab.objects.filter(pk=owned[-1]).exists():
        return redirect("labs:detail", lab_id=owned[-1])
    return render(request, "labs/start.html", {"idle_hours": settings.LAB_IDLE_EXPIRY_SECONDS / 3600})


@kafka_view
@require_POST
def lab_start(request: HttpRequest) -> HttpResponse:
    try:
        lab = lab_services.lab_create(client_address=client_address(request))
    except LabLimitReached as exc:
        return render(request, "labs/start.html", {"error": str(exc)}, status=TOO_MANY)
    except LabError as exc:
        return render(request, "labs/unavailable.html", {"error": str(exc)}, status=UNAVAILABLE)
    lab_grant(request.session, lab)
    return redirect("labs:detail", lab_id=lab.pk)


@kafka_view
@require_GET
def lab_detail(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = lab_for_owner(request.session, lab_id)  # a GET: looking is not using
    return lab_page(request, lab)


def lab_page(request: HttpRequest, lab: Lab, *, lesson: Lesson | None = None) -> HttpResponse:
    """The lab for its owner, with a lesson beside it: `lesson`, else the lab's current one."""
    context = _page_context(request, lab, Viewer(lab_id=lab.pk, role=Role.OWNER))
    context["lesson"] = lesson_selectors.lesson_for_page(lab=lab, lesson=lesson)
    return render(request, "labs/lab.html", context)


@require_GET
def lab_shared(request: HttpRequest, token: str) -> HttpResponse:
    """The lab, live and read-only, for whoever holds its share link."""
    lab = lab_for_share(token)
    return _observer_page(request, lab, Viewer(lab_id=lab.pk, role=Role.OBSERVER, share_token=token))


@require_GET
def lab_watch(request: HttpRequest, lab_id: int) -> HttpResponse:
    """The lab, live and read-only, for a classroom's instructor, or a learner following the
    instructor's lab (kafkalab.classroom.access); its owner gets the lab itself."""
    if lab_viewer_role(request.session, lab_id, share_token=None) == Role.OWNER:
        return redirect("labs:detail", lab_id=lab_id)
    lab = Lab.objects.get(pk=lab_id)
    return _observer_page(request, lab, Viewer(lab_id=lab.pk, role=Role.OBSERVER))


def _observer_page(request: HttpRequest, lab: Lab, viewer: Viewer) -> HttpResponse:
    context = {"lab": lab, "viewer": viewer, "lane_window": settings.LAB_LANE_WINDOW}
    context.update(contract_selectors.editor_context(lab=lab))
    context.update(classroom_selectors.lab_classroom_context(request.session, lab, viewer))
    return render(request, "labs/lab.html", {**context, "lesson": lesson_selectors.lesson_for_page(lab=lab)})


@require_GET
async def lab_state(request: HttpRequest, lab_id: int) -> JsonResponse:
    """state.json: the runner's live model of the lab, for its owner or a share-link holder."""
    await database_sync_to_async(lab_viewer_role)(request.session, lab_id, share_token=request.GET.get("share"))
    try:
        model = await selectors.lab_model(lab_id=lab_id)
    except LabError as exc:
        return JsonResponse({"error": str(exc)}, status=UNAVAILABLE)
    state = selectors.lab_state(model)
    # The registry is asked over HTTP (it may be this very app): in a thread, off the event loop.
    registry_state = database_sync_to_async(contract_selectors.registry_state, thread_sensitive=False)
    state["schema_registry"] = await registry_state(lab_id=lab_id, client_url=registry_url(request))
    return JsonResponse(state, json_dumps_params={"indent": 2})


@kafka_view
@require_POST
def lab_reset(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    try:
        registry_note = lab_services.lab_reset(lab=lab)
        messages.success(
            request,
            "Lab reset: its consumers were stopped and removed, and its topic and group were deleted "
            "and created afresh, with 4 empty partitions. OrderService writes plain JSON version 1 again.",
        )
        if registry_note:
            messages.warning(request, registry_note)
    except LabError as exc:
        messages.error(request, str(exc))
    return redirect("labs:detail", lab_id=lab.pk)


@require_POST
def lab_share(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    lab_services.lab_share(lab=lab)
    return _share_panel(request, lab, notice="Anyone with this link can watch your lab live, read-only.")


@require_POST
def lab_unshare(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    lab_services.lab_unshare(lab=lab)
    return _share_panel(request, lab, notice="Sharing stopped: the old link no longer opens your lab.")


def _share_panel(request: HttpRequest, lab: Lab, *, notice: str) -> HttpResponse:
    if not request.htmx:
        return _redirect_with(request, lab, notice, ok=True)
    return render(request, "labs/panels/share.html", {"lab": lab, "notice": notice, **_share_context(request, lab)})


def _share_context(request: HttpRequest, lab: Lab) -> dict:
    if not lab.share_token:
        return {"share_url": None}
    return {"share_url": request.build_absolute_uri(reverse("labs:shared", args=[lab.share_token]))}


# --- OrderService ---------------------------------------------------------------------------


@kafka_view
@require_POST
def order_create(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
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
        lambda: order_services.order_create(lab=lab, items=item_rows, **form.cleaned_data),
        keep={"order_form": form, "items": items},
    )


@kafka_view
@require_POST
def orders_burst(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    form = BurstForm(request.POST)
    if not form.is_valid():
        return _order_panel(request, lab, burst_form=form, status=UNPROCESSABLE)
    return _produce(
        request, lab, lambda: order_services.orders_burst(lab=lab, **form.cleaned_data), keep={"burst_form": form}
    )


@kafka_view
@require_POST
def order_advance(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    form = AdvanceForm(request.POST)
    if not form.is_valid():
        return _order_panel(request, lab, error="Pick an order first.", status=UNPROCESSABLE)
    return _produce(request, lab, lambda: order_services.order_advance(lab=lab, order_id=form.cleaned_data["order_id"]))


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
        "recent_orders": lab.orders.filter(acknowledged=True).exclude(status="OrderShipped")[:5],
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
    return render(request, "labs/panels/order_panel.html", _order_panel_context(lab, **overrides), status=status)


def _produce(request: HttpRequest, lab: Lab, action, *, keep: dict | None = None) -> HttpResponse:
    """Run a produce action and report exactly what Kafka acknowledged. `keep` holds the forms
    to show again, as typed, when not everything was written."""
    keep = keep or {}
    try:
        outcome = action()
    except LabError as exc:
        if not request.htmx:
            return _redirect_with(request, lab, str(exc), ok=False)
        return _order_panel(request, lab, error=str(exc), status=UNPROCESSABLE, **keep)
    if not request.htmx:
        return _redirect_with(request, lab, _outcome_text(outcome), ok=not outcome.failed)
    if outcome.failed:
        return _order_panel(request, lab, outcome=outcome, status=UNAVAILABLE, **keep)
    return _order_panel(request, lab, outcome=outcome)


def _outcome_text(outcome: order_services.ProduceOutcome) -> str:
    if not outcome.failed:
        return f"Kafka acknowledged {outcome.written} event(s)."
    return f"Kafka acknowledged {outcome.written} of {outcome.requested} event(s): {outcome.first_error}"


def _redirect_with(request: HttpRequest, lab: Lab, text: str, *, ok: bool) -> HttpResponse:
    (messages.success if ok else messages.error)(request, text)
    return redirect("labs:detail", lab_id=lab.pk)


# --- The topic --------------------------------------------------------------------------------


@kafka_view
@require_POST
def partitions_change(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    form = PartitionsForm(request.POST)
    context = {"lab": lab, "partitions_form": form}
    status = 200
    if form.is_valid():
        try:
            total = form.cleaned_data["partitions"]
            context["change"] = topic_services.topic_partitions_increase(lab=lab, total=total)
            context["partitions_form"] = PartitionsForm(initial={"partitions": total})
        except LabError as exc:
            context["error"] = str(exc)
            status = UNPROCESSABLE
    else:
        status = UNPROCESSABLE
    if not request.htmx:
        return _redirect_with(request, lab, context.get("error") or "Partition count changed.", ok=status == 200)
    return render(request, "labs/panels/topic_controls.html", context, status=status)


@kafka_view
@require_GET
def event_detail(request: HttpRequest, lab_id: int, partition: int, offset: int) -> HttpResponse:
    """The inspector, for the owner or a share-link holder."""
    share_token = request.GET.get("share")
    role = lab_viewer_role(request.session, lab_id, share_token=share_token)
    lab = Lab.objects.get(pk=lab_id)
    viewer = Viewer(lab_id=lab_id, role=role, share_token=share_token)
    try:
        context = {
            "lab": lab,
            "viewer": viewer,
            "event": selectors.event_inspect(lab=lab, partition=partition, offset=offset, view=request.GET.get("view")),
        }
        status = 200
    except LabError as exc:
        context, status = {"lab": lab, "viewer": viewer, "error": str(exc)}, UNPROCESSABLE
    template = "labs/panels/inspector.html" if request.htmx else "labs/event.html"
    return render(request, template, context, status=status)


# --- Consumers --------------------------------------------------------------------------------


@kafka_view
@require_POST
def consumer_add(request: HttpRequest, lab_id: int) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    form = ConsumerConfigForm(request.POST)
    context = {"lab": lab, "consumer_form": form}
    status = 200
    if form.is_valid():
        try:
            consumer = consumer_services.consumer_add(lab=lab, config=form.config())
            context["notice"] = f"Starting {consumer.name}… it joins the group and Kafka rebalances."
        except LabError as exc:
            context["error"], status = str(exc), UNPROCESSABLE
    else:
        status = UNPROCESSABLE
    if not request.htmx:
        return _redirect_with(
            request, lab, context.get("error") or context.get("notice") or "Check the form.", ok=status == 200
        )
    return render(request, "labs/panels/consumer_controls.html", context, status=status)


CONSUMER_ACTIONS = {
    "stop": (consumer_services.consumer_stop, "Stopping {name}: it closes and leaves the group."),
    "kill": (consumer_services.consumer_kill, "Killed {name} with SIGKILL: the group waits for its session timeout."),
    "restart": (consumer_services.consumer_restart, "Restarting {name}…"),
}


@kafka_view
@require_POST
def consumer_action(request: HttpRequest, lab_id: int, name: str, action: str) -> HttpResponse:
    lab = _owned_lab(request, lab_id)
    act, done = CONSUMER_ACTIONS[action]
    try:
        act(lab=lab, name=name)
        text, ok = done.format(name=name), True
    except LabError as exc:
        text, ok = str(exc), False
    return _consumer_notice(request, lab, text, ok=ok, failed_status=UNPROCESSABLE)


@kafka_view
@require_POST
def dlq_replay(request: HttpRequest, lab_id: int) -> HttpResponse:
    """Replay DLQ: the dead letters since the last replay go back to the orders topic."""
    lab = _owned_lab(request, lab_id)
    try:
        text, ok = dead_letter_services.dlq_replay(lab=lab).message, True
    except LabError as exc:
        text, ok = str(exc), False
    return _consumer_notice(request, lab, text, ok=ok, failed_status=UNAVAILABLE)


def _consumer_notice(request: HttpRequest, lab: Lab, text: str, *, ok: bool, failed_status: int) -> HttpResponse:
    template = "labs/panels/consumer_notice.html"
    return _panel_notice(request, lab, text, ok=ok, template=template, failed_status=failed_status)


def _panel_notice(
    request: HttpRequest, lab: Lab, text: str, *, ok: bool, template: str, failed_status: int = UNPROCESSABLE
) -> HttpResponse:
    """A panel's notice (htmx), or the lab page with it as a message (no JavaScript)."""
    if not request.htmx:
        return _redirect_with(request, lab, text, ok=ok)
    context = {"notice": text if ok else None, "error": None if ok else text}
    return render(request, template, context, status=200 if ok else failed_status)


# --- The page -------------------------------------------------------------------------------


def _page_context(request: HttpRequest, lab: Lab, viewer: Viewer) -> dict:
    return {
        "lab": lab,
        "viewer": viewer,
        **_order_panel_context(lab),
        **_share_context(request, lab),
        "partitions_form": PartitionsForm(initial={"partitions": selectors.lab_partition_count(lab=lab)}),
        "lane_window": settings.LAB_LANE_WINDOW,
        "lab_idle_hours": settings.LAB_IDLE_EXPIRY_SECONDS / 3600,
        "consumer_form": ConsumerConfigForm(),
        **contract_selectors.editor_context(lab=lab),
        **classroom_selectors.lab_classroom_context(request.session, lab, viewer),
    }
