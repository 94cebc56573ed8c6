"""Wrong join and rejoin codes, counted per client address in the cache.

An address that sent CLASSROOM_JOIN_FAILURES wrong codes within CLASSROOM_JOIN_WINDOW_SECONDS
must wait until that window ends before any code of theirs is looked at. Right codes are not
counted: thirty learners behind one school router join freely, and guessing stays slow.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from kafkalab.classroom.errors import JoinRefused


def _key(address: str) -> str:
    window = int(time.time() // settings.CLASSROOM_JOIN_WINDOW_SECONDS)
    return f"classroom:join-failures:{window}:{address}"


def join_allowed(address: str) -> None:
    """Raise JoinRefused when this address sent too many wrong codes lately."""
    if (cache.get(_key(address)) or 0) >= settings.CLASSROOM_JOIN_FAILURES:
        window = settings.CLASSROOM_JOIN_WINDOW_SECONDS
        wait = window - time.time() % window
        raise JoinRefused(
            f"Too many wrong codes came from your address. Wait {max(1, round(wait / 60))} min, "
            "then check the code on the instructor's screen and try again.",
            status=429,
        )


def join_failed(address: str) -> None:
    key = _key(address)
    cache.add(key, 0, timeout=settings.CLASSROOM_JOIN_WINDOW_SECONDS + 5)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr: count it in a fresh window
        cache.add(key, 1, timeout=settings.CLASSROOM_JOIN_WINDOW_SECONDS + 5)
