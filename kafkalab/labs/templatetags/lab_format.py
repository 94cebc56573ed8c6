from __future__ import annotations

from datetime import UTC, datetime

from django import template

register = template.Library()


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


@register.filter
def type_class(record: dict) -> str:
    """The box's colour class: one per lifecycle event, "other" for anything else."""
    return _TYPE_CLASSES.get(record.get("event_type"), "other")


@register.filter
def type_label(record: dict) -> str:
    """Created, Paid, Shipped, or whatever type a foreign record claims (kept short)."""
    event_type = record.get("event_type") or "unknown"
    return event_type.removeprefix("Order") if event_type in _TYPE_CLASSES else event_type[:12]


@register.filter
def short_key(record: dict) -> str:
    key = record.get("key")
    return "∅" if key is None else key[:8]
