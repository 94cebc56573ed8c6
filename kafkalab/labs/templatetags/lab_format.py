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
