from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def needing_help(rows) -> int:
    """How many learners' labs report an error (a crash, a blocked partition, Kafka away)."""
    return sum(1 for row in rows if row.needs_help)


@register.filter
def seen_ago(moment: datetime | None) -> str:
    """ "4 min ago", short enough for a roster cell."""
    if moment is None:
        return ""
    seconds = max(0, (timezone.now() - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return moment.strftime("%Y-%m-%d")
