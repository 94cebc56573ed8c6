from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.template.defaultfilters import pluralize, truncatechars
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from kafkalab.runner.protocol import ORDERS_VIEW

register = template.Library()


def dom_prefix(view: str) -> str:
    """How the element ids of a view's lanes start: the orders lanes keep plain `lane-<p>-…`."""
    return "" if view == ORDERS_VIEW else f"{view}-"


@register.filter
def ms_to_utc(value: int | None) -> str:
    """A Kafka timestamp (ms since the epoch) as UTC with milliseconds."""
    if value is None or value < 0:
        return "—"
    moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


@register.filter
def default_dash(value: object) -> object:
    return "—" if value is None else value


_TYPE_CLASSES = {"OrderCreated": "created", "OrderPaid": "paid", "OrderShipped": "shipped"}
# The lab's other event types, named to fit a box.
_SHORT_LABELS = {"InvoiceIssued": "Invoice"}


@register.filter
def type_class(record: dict) -> str:
    """The box's colour class: one per lifecycle event, "other" for anything else."""
    return _TYPE_CLASSES.get(record.get("event_type"), "other")


@register.filter
def type_label(record: dict) -> str:
    """Created, Paid, Shipped, or whatever type a foreign record claims (kept short)."""
    event_type = record.get("event_type") or "unknown"
    if event_type in _TYPE_CLASSES:
        return event_type.removeprefix("Order")
    return _SHORT_LABELS.get(event_type, event_type[:12])


@register.filter
def short_key(record: dict) -> str:
    key = record.get("key")
    return "∅" if key is None else key[:8]


# One event box. A busy lab pushes a hundred boxes at a time to each viewer, and the template
# engine took 0.2 ms a box (a quarter of the runner's time at 5,000 events/s); this takes a tenth.
# A plain link: lanes.js opens it in the inspector (one listener for every box, rather than htmx
# setting up each of the hundred boxes a push brings); without JavaScript it opens as a page.
_BOX_LINK = 'href="{url}" data-partition="{partition}" data-offset="{offset}" data-key="{key}" data-ts="{timestamp}"'
# `txn` marks a record of a transaction not decided yet (open) or aborted; `swap` redraws a box
# already on the page in place (htmx out-of-band, by lane and offset) when its marks change.
_EVENT_BOX = (
    '<a class="event event--{type_class}{txn_class}{quiet}" ' + _BOX_LINK + '{txn_attr} aria-label="Offset {offset}, '
    'key {label_key}, {event_type}{txn_said}"{swap}><span class="event-offset">{offset}</span>'
    '<span class="event-key">{short_key}</span><span class="event-type">{type_label}</span>{txn_badge}</a>'
)
# A poison record: marked, and its title says who failed it and why.
_POISON_BOX = (
    '<a class="event event--{type_class} event--poison{txn_class}{quiet}" ' + _BOX_LINK + "{txn_attr} "
    'data-poison="{reason}" title="{title}" aria-label="Offset {offset}, key {label_key}, {event_type}{txn_said}. '
    '{title}"{swap}><span class="event-offset">{offset}</span><span class="event-key">{short_key}</span>'
    '<span class="event-type">{type_label}</span><span class="event-poison" aria-hidden="true">☠ {reason}</span>'
    "{txn_badge}</a>"
)
# A transaction's COMMIT or ABORT marker: a control record. It takes an offset in the log and no
# consumer ever gets it, so readers see a gap there.
_CONTROL_MARKER = (
    '<span class="txn-marker txn-marker--{control}{quiet}" role="img" data-control="{control}" '
    'data-partition="{partition}" data-offset="{offset}" title="{title}" aria-label="Offset {offset}: {title}">'
    '<span class="txn-marker-offset">{offset}</span><span class="txn-marker-word">{word}</span></span>'
)
_CONTROL_TITLES = {
    "commit": "a COMMIT marker, written when a transaction committed; no consumer reads it",
    "abort": "an ABORT marker, written when a transaction was aborted; no consumer reads it",
}
_TXN_SAID = {"open": ", in a transaction not committed yet", "aborted": ", aborted: read_committed readers skip it"}
_TXN_BADGES = {
    "open": '<span class="event-txn" aria-hidden="true">open</span>',
    "aborted": '<span class="event-txn" aria-hidden="true">aborted</span>',
}
# A dead letter: where it came from in the orders topic, and why it was set aside.
_DEAD_LETTER_BOX = (
    '<a class="event event--dead-letter{quiet}" ' + _BOX_LINK + ' data-origin="{origin}" data-reason="{reason}" '
    'title="{title}" aria-label="Dead letter at offset {offset}: {title}">'
    '<span class="event-offset">{offset}</span><span class="event-origin">{origin}</span>'
    '<span class="event-reason">{reason}</span></a>'
)
_POISON_ACTIONS = {
    "crashed": "{consumer} crashed on it",
    "skipped": "{consumer} skipped it",
    "dead-lettered": "{consumer} set it aside on the dead-letter topic",
    "retrying": "{consumer} is retrying it",
}


@register.simple_tag(takes_context=True)
def event_box(context: template.Context, record: dict, *, quiet: bool = False, view: str = ORDERS_VIEW) -> str:
    """The box of one record in its lane; it opens the record in the inspector. A quiet box
    appears without the landing animation (among many, or already there when the page opened)."""
    return event_box_html(context["viewer"], record, quiet=quiet, view=view)


def event_box_html(viewer, record: dict, *, quiet: bool = False, view: str = ORDERS_VIEW, replace: bool = False) -> str:
    """event_box for `viewer`. With `replace`, the box redraws the one with its offset in its
    lane of `view` (an out-of-band swap), rather than being appended."""
    if "control" in record:
        return control_marker_html(record, quiet=quiet)
    key = record.get("key")
    txn = record.get("txn")
    fields = {
        "type_class": type_class(record),
        "quiet": " event--quiet" if quiet else "",
        "url": f"{viewer.events_url}{record['partition']}/{record['offset']}/{viewer.query_for(view)}",
        "partition": record["partition"],
        "offset": record["offset"],
        "key": "" if key is None else key,
        "timestamp": record.get("timestamp_ms"),
        "label_key": "none" if key is None else truncatechars(key, 40),
        "event_type": record.get("event_type"),
        "short_key": short_key(record),
        "type_label": type_label(record),
    }
    if "dead_letter" in record:
        return format_html(_DEAD_LETTER_BOX, **fields, **_dead_letter_fields(record["dead_letter"]))
    fields.update(
        txn_class=f" event--txn-{txn}" if txn else "",
        txn_attr=mark_safe(f' data-txn="{txn}"') if txn in _TXN_BADGES else "",
        txn_said=_TXN_SAID.get(txn, ""),
        txn_badge=mark_safe(_TXN_BADGES.get(txn, "")),
        swap=_box_swap(record, "outerHTML", view=view) if replace else "",
    )
    if poison := record.get("poison"):
        return format_html(_POISON_BOX, **fields, reason=poison["reason"], title=poison_title(poison))
    return format_html(_EVENT_BOX, **fields)


def _box_swap(record: dict, how: str, *, view: str = ORDERS_VIEW) -> str:
    """An out-of-band swap at the box of the record's partition and offset in its lane of `view`."""
    lane = f"#{dom_prefix(view)}lane-{record['partition']}-events"
    return mark_safe(f" hx-swap-oob=\"{how}:{lane} [data-offset='{record['offset']}']\"")


def control_marker_html(marker: dict, *, quiet: bool = False) -> str:
    """A COMMIT or ABORT marker, drawn in its lane among the boxes."""
    control = marker["control"]
    return format_html(
        _CONTROL_MARKER,
        control=control,
        quiet=" event--quiet" if quiet else "",
        partition=marker["partition"],
        offset=marker["offset"],
        title=_CONTROL_TITLES.get(control, "a control record"),
        word=control.upper(),
    )


def control_marker_insert_html(marker: dict, *, before: int | None, view: str = ORDERS_VIEW) -> str:
    """A marker found after its lane (of `view`) was drawn: put `before` the box of that offset, or
    (None) at the lane's end. (htmx drops the wrapper of a swap other than outerHTML and inserts its
    content.)"""
    lane = f"#{dom_prefix(view)}lane-{marker['partition']}-events"
    where = f"beforebegin:{lane} [data-offset='{before}']" if before is not None else f"beforeend:{lane}"
    return format_html('<div hx-swap-oob="{}">{}</div>', where, control_marker_html(marker, quiet=True))


def poison_title(mark: dict) -> str:
    """ "Poison: c1 crashed on it (not-decodable: …)": who failed the record, and why."""
    who = _POISON_ACTIONS.get(mark.get("action"), "{consumer} failed it").format(
        consumer=mark.get("consumer") or "a consumer"
    )
    why = mark["reason"] + (f": {mark['message']}" if mark.get("message") else "")
    return f"Poison: {who} ({why})"


def _dead_letter_fields(letter: dict | None) -> dict:
    if letter is None:  # a record some other client wrote to the dead-letter topic
        return {
            "origin": "?",
            "reason": "no dead-letter headers",
            "title": "no kafkalab.dlq headers say where it came from",
        }
    known = letter["partition"] is not None and letter["offset"] is not None
    origin = f"P{letter['partition']}@{letter['offset']}" if known else "?"
    where = f"partition {letter['partition']}, offset {letter['offset']}" if known else "an unknown record"
    by = f" by {letter['consumer']}" if letter["consumer"] else ""
    why = letter["reason"] + (f": {letter['error']}" if letter["error"] else "")
    return {
        "origin": origin,
        "reason": letter["reason"],
        "title": f"{where} of {letter['topic'] or 'the orders topic'}, set aside{by} ({why})",
    }


# --- A lane's lag chart: the points of LagHistory.as_data(), newest at the right edge ---------
LAG_CHART_HEIGHT = 20
LAG_CHART_FLOOR = 10  # the lag drawn full height at least: a lag of 2 is a small bump, not a wall


def _lag_chart_width(history: dict) -> float:
    """One unit per point the chart can hold: the history's whole span."""
    return history["span_seconds"] / history["seconds_per_point"]


@register.filter
def lag_chart_viewbox(history: dict) -> str:
    return f"0 0 {_lag_chart_width(history):g} {LAG_CHART_HEIGHT}"


@register.filter
def lag_chart_points(history: dict) -> str:
    """A polyline closed along the bottom, so it draws both the line and the area under it. A
    history shorter than the span starts part way in: the time axis stays the same."""
    points = history["points"]
    if not points:
        return ""
    scale = max(history["peak"] or 0, LAG_CHART_FLOOR)
    start = _lag_chart_width(history) - len(points) + 0.5  # each point in the middle of its stretch
    xs = [start + i for i in range(len(points))]
    # From 1 (the peak) to 19 (no lag): a lag of 0 is a line along the bottom, not nothing.
    ys = [LAG_CHART_HEIGHT - 1 - lag * (LAG_CHART_HEIGHT - 2) / scale for lag in points]
    line = " ".join(f"{x:g},{round(y, 1):g}" for x, y in zip(xs, ys, strict=True))
    return f"{xs[0]:g},{LAG_CHART_HEIGHT} {line} {xs[-1]:g},{LAG_CHART_HEIGHT}"


@register.filter
def span_words(seconds: float, style: str = "") -> str:
    """180 → "3 minutes" ("3 min" with style "short"); 45 → "45 seconds" ("45 s")."""
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} min" if style == "short" else f"{minutes} minute{pluralize(minutes)}"
    seconds = int(seconds)
    return f"{seconds} s" if style == "short" else f"{seconds} second{pluralize(seconds)}"
