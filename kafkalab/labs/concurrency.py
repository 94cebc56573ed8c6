"""Views that wait on Kafka run in a bounded pool of their own, a few per lab at a time.

Under ASGI, Django runs every sync view in one shared thread. A view that waits for Kafka (a
produce waiting for acks=all, a reset waiting for consumers to leave) would hold up every other
learner's requests and the lab runner's database writes. So these views run in a pool of
LAB_KAFKA_VIEW_THREADS threads that nothing else uses, and one lab may hold at most
LAB_KAFKA_REQUESTS_PER_LAB of them: the rest of its requests wait their turn without a thread,
so one learner's slow requests can't take every thread from the others.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_pool: ThreadPoolExecutor | None = None
_registry_pool: ThreadPoolExecutor | None = None
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = weakref.WeakKeyDictionary()


def _kafka_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.LAB_KAFKA_VIEW_THREADS, thread_name_prefix="kafka-view")
    return _pool


def _registry_threads() -> ThreadPoolExecutor:
    global _registry_pool
    if _registry_pool is None:
        _registry_pool = ThreadPoolExecutor(
            max_workers=settings.SCHEMA_REGISTRY_VIEW_THREADS, thread_name_prefix="registry-view"
        )
    return _registry_pool


def _lab_slot(lab_id: int | None) -> asyncio.Semaphore:
    per_lab = _slots.setdefault(asyncio.get_running_loop(), {})
    if lab_id not in per_lab:
        per_lab[lab_id] = asyncio.Semaphore(settings.LAB_KAFKA_REQUESTS_PER_LAB)
    return per_lab[lab_id]


def kafka_view(view):
    """Run a sync view that talks to Kafka in the Kafka pool, in its lab's turn."""

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        run = DatabaseSyncToAsync(view, thread_sensitive=False, executor=_kafka_pool())
        async with _lab_slot(kwargs.get("lab_id")):
            return await run(request, *args, **kwargs)

    return wrapper


def registry_view(view):
    """Run a view of the embedded schema registry in a pool of its own. Lab views call the
    registry over HTTP from the Kafka pool; sharing that pool, enough of them waiting for an
    answer would leave no thread to give it."""

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        run = DatabaseSyncToAsync(view, thread_sensitive=False, executor=_registry_threads())
        return await run(request, *args, **kwargs)

    return wrapper
