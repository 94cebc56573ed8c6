"""Start the lab runner inside the web process when there is no separate runner service."""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer
from channels.worker import Worker
from django.conf import settings

from kafkalab.runner.protocol import RUNNER_CHANNEL

log = logging.getLogger(__name__)


class EmbeddedRunner:
    """ASGI middleware: on the first connection, start a Channels worker for the lab runner
    on this server's event loop (daphne has no lifespan hook to do it at start-up)."""

    def __init__(self, application) -> None:
        self.application = application
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if settings.LAB_RUNNER_EMBEDDED and scope["type"] in {"http", "websocket"}:
            self._ensure_started()
            # Consumers of a previous run died with it: show them stopped before anyone looks or acts.
            await asyncio.wait([self._ready])
        return await self.application(scope, receive, send)

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        if self._loop is not loop:  # a new server: its runner owns no process yet
            from kafkalab.runner.consumer import forget_processes_of_a_previous_run

            self._ready = loop.create_task(forget_processes_of_a_previous_run(), name="forget-previous-run")
            self._ready.add_done_callback(_log_exit)
        worker = Worker(application=self.application, channels=[RUNNER_CHANNEL], channel_layer=get_channel_layer())
        self._loop = loop
        self._task = loop.create_task(worker.arun(), name="embedded-lab-runner")
        self._task.add_done_callback(_log_exit)
        log.info("lab runner started inside the web process")


def _log_exit(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
