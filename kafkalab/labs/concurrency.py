"""Run views that wait on Kafka off Django's shared sync thread.

Under ASGI, Django runs every sync view in one shared thread. A view that waits for Kafka (a
produce waiting for acks=all, a reset waiting for consumers to leave) would hold up every
other learner's requests and the lab runner's database writes. These views run in a pool
thread of their own instead.
"""

from __future__ import annotations

import functools

from channels.db import database_sync_to_async


def off_shared_thread(view):
    run = database_sync_to_async(view, thread_sensitive=False)

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        return await run(request, *args, **kwargs)

    return wrapper
