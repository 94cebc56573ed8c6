"""The lab runner's command handler: one instance per runner process, holding every lab's
long-running parts (observer, consumer processes, live state)."""

from __future__ import annotations

import asyncio
import logging

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async

from kafkalab.labs.models import Lab, NotificationConsumer, OutboxEmail
from kafkalab.runner.cluster_watcher import ClusterWatcher
from kafkalab.runner.lab_observer import LabObserver
from kafkalab.runner.live import LabLive
from kafkalab.runner.supervisor import Supervisor

log = logging.getLogger(__name__)

# An observer outlives its last viewer this long, so a page reload doesn't restart it.
OBSERVER_GRACE_SECONDS = 30.0
PERSIST_INTERVAL = 0.2


class LabSession:
    """Everything the runner holds for one lab."""

    def __init__(self, lab_id: int) -> None:
        self.lab_id = lab_id
        self.live = LabLive(lab_id)
        self.supervisor = Supervisor(lab_id=lab_id, live=self.live, on_change=self.changed)
        self.observer: LabObserver | None = None
        self.viewers = 0
        self.idle_stop: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        if self.observer is not None:
            self.observer.request_redraw()


class LabRunner(AsyncConsumer):
    """Receives commands sent with `channel_layer.send("lab-runner", {...})`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_watcher = ClusterWatcher()
        self.labs: dict[int, LabSession] = {}
        self._started = False

    async def dispatch(self, message: dict) -> None:
        if not self._started:
            self._started = True
            await forget_processes_of_a_previous_run()
            asyncio.get_running_loop().create_task(self._persist_forever(), name="runner-persist")
        await super().dispatch(message)

    # Cluster ----------------------------------------------------------------------------------

    async def cluster_watch(self, message: dict) -> None:
        """A page wants live broker state: keep the watcher running, answer with the latest."""
        self.cluster_watcher.ensure_running()
        await self.cluster_watcher.send_latest(message["reply_channel"])

    # Viewers ----------------------------------------------------------------------------------

    async def lab_watch(self, message: dict) -> None:
        session = await self._session(message["lab_id"])
        session.viewers += 1
        if session.idle_stop is not None:
            session.idle_stop.cancel()
            session.idle_stop = None
        observer = self._observer(session)
        await self.channel_layer.send(message["reply_channel"], {"type": "lab.html", "html": observer.snapshot_html()})

    async def lab_unwatch(self, message: dict) -> None:
        session = await self._session(message["lab_id"])
        session.viewers = max(0, session.viewers - 1)
        if session.viewers == 0 and session.idle_stop is None:
            loop = asyncio.get_running_loop()
            session.idle_stop = loop.call_later(OBSERVER_GRACE_SECONDS, self._stop_observer_if_idle, session)

    # Lab lifecycle ----------------------------------------------------------------------------

    async def lab_reap(self, message: dict) -> None:
        """Before a reset: stop every consumer process of the lab."""
        session = await self._session(message["lab_id"])
        await session.supervisor.reap()

    async def lab_reset(self, message: dict) -> None:
        """The lab's topics were recreated: forget what was seen and read them afresh."""
        session = await self._session(message["lab_id"])
        session.live.reset()
        if session.observer is not None:
            session.observer.stop()
            session.observer = None
            if session.viewers:
                self._observer(session)

    async def lab_refresh(self, message: dict) -> None:
        """Partitions changed: look now rather than at the next periodic check."""
        session = await self._session(message["lab_id"])
        if session.observer is not None:
            session.observer.request_refresh()

    # Consumers --------------------------------------------------------------------------------

    async def consumer_start(self, message: dict) -> None:
        session = await self._session(message["lab_id"])
        await session.supervisor.start(message["name"])

    async def consumer_stop(self, message: dict) -> None:
        session = await self._session(message["lab_id"])
        await session.supervisor.stop(message["name"])

    async def consumer_kill(self, message: dict) -> None:
        session = await self._session(message["lab_id"])
        await session.supervisor.kill(message["name"])

    # Helpers ----------------------------------------------------------------------------------

    async def _session(self, lab_id: int) -> LabSession:
        session = self.labs.get(lab_id)
        if session is None:
            session = self.labs[lab_id] = LabSession(lab_id)
            session.live.load_emails(await _email_keys(lab_id))
            for row in await _consumer_rows(lab_id):
                live = session.live.consumer(row.name, row.config)
                live.status, live.last_error = row.status, row.last_error
        return session

    def _observer(self, session: LabSession) -> LabObserver:
        if session.observer is None or not session.observer.alive:
            session.observer = LabObserver(
                lab_id=session.lab_id,
                topic=Lab(pk=session.lab_id).orders_topic,
                group_id=Lab(pk=session.lab_id).group_id,
                live=session.live,
                loop=asyncio.get_running_loop(),
                layer=self.channel_layer,
            )
            session.observer.start()
        return session.observer

    def _stop_observer_if_idle(self, session: LabSession) -> None:
        session.idle_stop = None
        if session.viewers == 0 and session.observer is not None:
            session.observer.stop()
            session.observer = None

    async def _persist_forever(self) -> None:
        while True:
            for session in list(self.labs.values()):
                try:
                    await session.supervisor.persist()
                except Exception:  # one lab's database trouble must not stop the others
                    log.exception("saving lab %s failed", session.lab_id)
            await asyncio.sleep(PERSIST_INTERVAL)


@database_sync_to_async
def forget_processes_of_a_previous_run() -> None:
    """Processes die with the runner that started them, so a fresh runner owns none."""
    live = [
        NotificationConsumer.Status.STARTING,
        NotificationConsumer.Status.RUNNING,
        NotificationConsumer.Status.STOPPING,
    ]
    NotificationConsumer.objects.filter(status__in=live).update(status=NotificationConsumer.Status.STOPPED, pid=None)


@database_sync_to_async
def _email_keys(lab_id: int) -> list[tuple[int, int]]:
    return list(OutboxEmail.objects.filter(lab_id=lab_id).values_list("partition", "offset"))


@database_sync_to_async
def _consumer_rows(lab_id: int) -> list[NotificationConsumer]:
    return list(NotificationConsumer.objects.filter(lab_id=lab_id))
