"""The lab runner: a Channels worker on the "lab-runner" channel (kafkalab.runner.protocol).

It owns everything long-running: the cluster watcher, each watched lab's observer and live model,
every lab's NotificationService processes, and the expiry of idle labs. What it holds lives in one
`Runner` per event loop, not in the Channels consumer instance: Channels makes a new instance when
one fails, and a new instance must find the processes and observers the old one started, never
start a second observer or lose track of a process.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import timedelta

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from kafkalab.kafka.consumer_config import LIVE_STATUSES, ConsumerConfig, ConsumerStatus
from kafkalab.labs.models import BillingInstance, Lab, NotificationConsumer, OutboxEmail, Rebalance
from kafkalab.labs.services.transactions import transactions_forget_all
from kafkalab.runner import model as model_data
from kafkalab.runner import protocol
from kafkalab.runner.billing import BillingSupervisor, load_billing
from kafkalab.runner.cluster_watcher import ClusterWatcher
from kafkalab.runner.lab_observer import LabObserver
from kafkalab.runner.live import LabLive, RebalanceLive
from kafkalab.runner.protocol import LabClosed, LabModel
from kafkalab.runner.supervisor import Supervisor
from kafkalab.runner.transactions import LabTransaction, TransactionRefused
from lessons.tracker import LessonTracker

log = logging.getLogger(__name__)

PERSIST_INTERVAL = 0.2
READY_WAIT_SECONDS = 15.0
RUNNER_FAILED = "The lab runner failed on that request; the app's log says why."
TIMELINE_LOADED = 12


class LabSession:
    """Everything the runner holds for one lab."""

    def __init__(self, lab_id: int, *, loop: asyncio.AbstractEventLoop | None = None, layer=None) -> None:
        self.lab_id = lab_id
        self.live = LabLive(lab_id)
        self.supervisor = Supervisor(lab_id=lab_id, live=self.live, on_change=self.changed)
        self.transaction = LabTransaction(lab_id, live=self.live, on_change=self.changed)
        self.billing = BillingSupervisor(lab_id=lab_id, live=self.live, on_change=self.changed)
        self.lessons = LessonTracker(lab_id)
        self.observer: LabObserver | None = None
        # Pages watching the lab (of which `owners` are its learner's own), and classroom
        # dashboards watching it: the observer runs while there is any.
        self.viewers = 0
        self.owners = 0
        self.dashboards = 0
        self.idle_stop: asyncio.TimerHandle | None = None
        # Its classroom, if any: each change of its summary goes to that classroom's dashboards.
        self.classroom_id: int | None = None
        self._last_summary: dict | None = None
        self._loop, self._layer = loop, layer

    @property
    def watched(self) -> bool:
        return bool(self.viewers or self.dashboards)

    def changed(self) -> None:
        if self.observer is not None:
            self.observer.request_redraw()

    def summary(self, panels: dict) -> dict:
        return model_data.lab_summary(panels, online=self.owners > 0)

    def panels_drawn(self, panels: dict) -> None:
        """From the observer's thread: tell the classroom's dashboards when the summary changed."""
        if self.classroom_id is None or self._loop is None:
            return
        summary = self.summary(panels)
        if summary == self._last_summary:
            return
        self._last_summary = summary
        update = protocol.LabSummary(lab_id=self.lab_id, summary=summary)
        push = protocol.classroom_publish(self._layer, protocol.classroom_group(self.classroom_id), update)
        try:
            asyncio.run_coroutine_threadsafe(push, self._loop)
        except RuntimeError:  # the runner's loop is gone
            push.close()

    async def progress_changed(self) -> None:
        """A lesson step passed or the lesson changed: the dashboards read the learner again."""
        if self.classroom_id is not None:
            group = protocol.classroom_group(self.classroom_id)
            await protocol.classroom_publish(self._layer, group, protocol.ClassroomRoster(lab_id=self.lab_id))


class Runner:
    """What one runner process holds, on one event loop."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.cluster_watcher = ClusterWatcher()
        self.labs: dict[int, LabSession] = {}
        self._background: list[asyncio.Task] = []

    async def start(self) -> None:
        await forget_processes_of_a_previous_run()
        await forget_transactions_of_a_previous_run()
        loop = asyncio.get_running_loop()
        self._background = [
            loop.create_task(self._persist_forever(), name="runner-persist"),
            loop.create_task(self._housekeeping_forever(), name="runner-housekeeping"),
        ]

    async def session(self, lab_id: int) -> LabSession:
        session = self.labs.get(lab_id)
        if session is None:
            session = LabSession(lab_id, loop=asyncio.get_running_loop(), layer=self.layer)
            await _load_history(session)
            await session.lessons.load(layer=self.layer, on_progress=session.progress_changed)
            # Another command may have made it while this one waited for the database.
            session = self.labs.setdefault(lab_id, session)
        return session

    def observer(self, session: LabSession) -> LabObserver:
        """The lab's one observer, started if it is not running."""
        if session.observer is None or not session.observer.alive:
            lab = Lab(pk=session.lab_id)
            session.observer = LabObserver(
                lab_id=session.lab_id,
                topic=lab.orders_topic,
                group_id=lab.group_id,
                invoices_topic=lab.invoices_topic,
                live=session.live,
                lessons=session.lessons,
                loop=asyncio.get_running_loop(),
                layer=self.layer,
                on_panels=session.panels_drawn,
            )
            session.observer.start()
        return session.observer

    def keep_watching(self, session: LabSession) -> None:
        """Stop the observer LAB_OBSERVER_GRACE_SECONDS after the last viewer left (unless one
        comes back)."""
        seconds = settings.LAB_OBSERVER_GRACE_SECONDS
        if session.idle_stop is not None:
            session.idle_stop.cancel()
        session.idle_stop = asyncio.get_running_loop().call_later(seconds, self._stop_observer_if_idle, session)

    def _stop_observer_if_idle(self, session: LabSession) -> None:
        session.idle_stop = None
        if not session.watched and session.observer is not None:
            session.observer.stop()
            session.observer = None

    async def model(self, session: LabSession) -> dict:
        """The lab's model, once its observer has first looked at Kafka."""
        observer = self.observer(session)
        await asyncio.to_thread(observer.ready.wait, READY_WAIT_SECONDS)
        return observer.model()

    def in_background(self, work, *, reply_channel: str | None = None) -> None:
        """Run slow work (waiting for an observer, reaping processes) beside the runner's command
        loop, so one lab's wait never holds up another lab's commands. A failure is logged and,
        when someone waits for an answer, answered with an error."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("the lab runner failed in the background")
                if reply_channel is not None:
                    await protocol.reply(self.layer, reply_channel, error=RUNNER_FAILED)

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.append(task)
        task.add_done_callback(self._background.remove)

    async def forget(self, lab_id: int, reason: str) -> None:
        """The lab is gone: its processes stop, its observer ends, its viewers are told."""
        session = self.labs.pop(lab_id, None)
        if session is not None:
            await session.supervisor.reap()
            await session.billing.reap()
            await session.transaction.close()
            if session.observer is not None:
                session.observer.stop()
        await protocol.lab_publish(self.layer, lab_id, LabClosed(reason=reason))

    # Background ---------------------------------------------------------------------------------

    async def _persist_forever(self) -> None:
        while True:
            for session in list(self.labs.values()):
                try:
                    await session.supervisor.persist()
                except Exception:  # one lab's database trouble must not stop the others
                    log.exception("saving lab %s failed", session.lab_id)
            await asyncio.sleep(PERSIST_INTERVAL)

    async def _housekeeping_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.LAB_HOUSEKEEPING_SECONDS)
            try:
                await self.housekeeping()
            except Exception:
                log.exception("lab housekeeping failed")

    async def housekeeping(self) -> None:
        """Labs with a page open are in use; idle ones past their time are deleted, and so are the
        labs of a closed classroom that are left (if the runner was down when it closed)."""
        watched = [lab_id for lab_id, session in self.labs.items() if session.viewers]
        await _mark_seen(watched)
        for lab_id in await _idle_lab_ids():
            await self.expire(lab_id)
        for lab_id in await _closed_classroom_lab_ids():
            await self.delete(lab_id, "This lab's classroom was closed, so the lab has been deleted.")

    async def expire(self, lab_id: int) -> None:
        reason = f"This lab was idle for {_idle_text()} and has been deleted. Start a new one from the home page."
        log.info("lab %s expired after %s idle: deleting its processes, topics, group and rows", lab_id, _idle_text())
        await self.delete(lab_id, reason)

    async def delete(self, lab_id: int, reason: str) -> None:
        from kafkalab.labs.services.labs import lab_delete

        await self.forget(lab_id, reason)
        await asyncio.to_thread(lab_delete, lab_id=lab_id)


_runners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runner] = weakref.WeakKeyDictionary()


async def runner_for_loop(layer) -> Runner:
    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is None:
        runner = _runners[loop] = Runner(layer)
        await runner.start()
    return runner


class LabRunner(AsyncConsumer):
    """Receives the commands of kafkalab.runner.protocol and hands them to the Runner."""

    async def dispatch(self, message: dict) -> None:
        self.runner = await runner_for_loop(self.channel_layer)
        try:
            await super().dispatch(message)
        except Exception:
            # One failed command must not end the runner: Channels would start a new instance.
            log.exception("the lab runner failed on %s", message.get("type"))
            if reply_channel := message.get("reply_channel"):
                await protocol.reply(self.channel_layer, reply_channel, error=RUNNER_FAILED)

    # Cluster ----------------------------------------------------------------------------------

    async def cluster_watch(self, message: dict) -> None:
        command = protocol.ClusterWatch.parse(message)
        self.runner.cluster_watcher.ensure_running()
        await self.runner.cluster_watcher.send_latest(command.reply_channel)

    # Viewers ----------------------------------------------------------------------------------

    async def lab_watch(self, message: dict) -> None:
        command = protocol.LabWatch.parse(message)
        session = await self.runner.session(command.lab_id)
        session.viewers += 1
        session.owners += command.owner
        self._keep_observing(session)
        if command.owner:
            session.changed()  # the dashboard shows the learner online
        self.runner.in_background(self._send_model(session, command.reply_channel))

    def _keep_observing(self, session: LabSession) -> None:
        if session.idle_stop is not None:
            session.idle_stop.cancel()
            session.idle_stop = None

    async def _send_model(self, session: LabSession, channel: str) -> None:
        model = LabModel(model=await self.runner.model(session))
        await self.channel_layer.send(channel, model.as_message())

    async def lab_unwatch(self, message: dict) -> None:
        command = protocol.LabUnwatch.parse(message)
        session = await self.runner.session(command.lab_id)
        session.viewers = max(0, session.viewers - 1)
        if command.owner:
            session.owners = max(0, session.owners - 1)
            session.changed()
        if not session.watched:
            self.runner.keep_watching(session)

    # Classroom dashboards -------------------------------------------------------------------

    async def classroom_watch(self, message: dict) -> None:
        command = protocol.ClassroomWatch.parse(message)
        for lab_id in command.lab_ids:
            session = await self.runner.session(lab_id)
            session.dashboards += 1
            self._keep_observing(session)
            self.runner.in_background(self._send_summary(session, command.reply_channel))

    async def _send_summary(self, session: LabSession, channel: str) -> None:
        observer = self.runner.observer(session)
        await asyncio.to_thread(observer.ready.wait, READY_WAIT_SECONDS)
        summary = session.summary(observer.model(with_records=False))
        await self.channel_layer.send(channel, protocol.LabSummary(lab_id=session.lab_id, summary=summary).as_message())

    async def classroom_unwatch(self, message: dict) -> None:
        command = protocol.ClassroomUnwatch.parse(message)
        for lab_id in command.lab_ids:
            session = self.runner.labs.get(lab_id)
            if session is None:
                continue
            session.dashboards = max(0, session.dashboards - 1)
            if not session.watched:
                self.runner.keep_watching(session)

    async def lab_state_ask(self, message: dict) -> None:
        command = protocol.LabStateAsk.parse(message)
        session = await self.runner.session(command.lab_id)
        if not session.viewers:
            self.runner.keep_watching(session)
        self.runner.in_background(
            self._answer_model(session, command.reply_channel), reply_channel=command.reply_channel
        )

    async def _answer_model(self, session: LabSession, channel: str) -> None:
        await protocol.reply(self.channel_layer, channel, data=await self.runner.model(session))

    # Lab lifecycle ----------------------------------------------------------------------------

    async def lab_reap(self, message: dict) -> None:
        """Before a reset: stop every consumer process of the lab, then say so."""
        command = protocol.LabReap.parse(message)
        session = await self.runner.session(command.lab_id)
        self.runner.in_background(self._reap(session, command.reply_channel), reply_channel=command.reply_channel)

    async def _reap(self, session: LabSession, channel: str) -> None:
        await session.supervisor.reap()
        await session.billing.reap()
        await session.transaction.end()  # an open transaction is aborted, its producer closed
        await protocol.reply(self.channel_layer, channel, data={"live": len(session.supervisor.processes)})

    async def lab_reset(self, message: dict) -> None:
        """The lab's topics were recreated: forget what was seen and read them afresh."""
        command = protocol.LabReset.parse(message)
        session = await self.runner.session(command.lab_id)
        session.live.reset()
        # The topics are new: so is the transactional producer (any transaction was aborted at the reap).
        self.runner.in_background(session.transaction.end())
        await session.lessons.rearm()
        if session.observer is not None:
            session.observer.stop()
            session.observer = None
            if session.viewers:
                self.runner.observer(session)

    async def lab_forget(self, message: dict) -> None:
        command = protocol.LabForget.parse(message)
        await self.runner.forget(command.lab_id, command.reason)

    async def lab_delete(self, message: dict) -> None:
        command = protocol.LabDelete.parse(message)
        self.runner.in_background(self.runner.delete(command.lab_id, command.reason))

    async def lab_refresh(self, message: dict) -> None:
        command = protocol.LabRefresh.parse(message)
        session = await self.runner.session(command.lab_id)
        if session.observer is not None:
            session.observer.request_refresh()

    # Lessons ----------------------------------------------------------------------------------

    async def lesson_changed(self, message: dict) -> None:
        command = protocol.LessonChanged.parse(message)
        session = await self.runner.session(command.lab_id)
        await session.lessons.load(layer=self.channel_layer, on_progress=session.progress_changed)
        await session.progress_changed()
        if session.observer is not None:
            session.observer.request_redraw()

    # The registry -----------------------------------------------------------------------------

    async def registry_changed(self, message: dict) -> None:
        command = protocol.RegistryChanged.parse(message)
        session = await self.runner.session(command.lab_id)
        fields = {"version": command.version, "schema_id": command.schema_id, "level": command.level}
        session.live.note_registry_event(
            subject=command.subject, action=command.action, at=command.at, message=command.message, **fields
        )
        session.changed()

    # OrderService's transaction ----------------------------------------------------------------

    async def txn_begin(self, message: dict) -> None:
        command = protocol.TxnBegin.parse(message)
        session = await self.runner.session(command.lab_id)
        self._answer_txn(session.transaction.begin(timeout_ms=command.timeout_ms), command.reply_channel)

    async def txn_produce(self, message: dict) -> None:
        command = protocol.TxnProduce.parse(message)
        session = await self.runner.session(command.lab_id)
        work = session.transaction.produce(
            key=command.transaction, records=command.records, partitioner=command.partitioner
        )
        self._answer_txn(work, command.reply_channel)

    async def txn_commit(self, message: dict) -> None:
        command = protocol.TxnCommit.parse(message)
        session = await self.runner.session(command.lab_id)
        self._answer_txn(session.transaction.commit(), command.reply_channel)

    async def txn_abort(self, message: dict) -> None:
        command = protocol.TxnAbort.parse(message)
        session = await self.runner.session(command.lab_id)
        self._answer_txn(session.transaction.abort(), command.reply_channel)

    def _answer_txn(self, work, channel: str) -> None:
        """Beside the command loop (Kafka may take seconds); the lab's own lock keeps its order."""

        async def answer() -> None:
            try:
                data = await work
            except TransactionRefused as exc:
                await protocol.reply(self.channel_layer, channel, error=str(exc))
            else:
                await protocol.reply(self.channel_layer, channel, data=data)

        self.runner.in_background(answer(), reply_channel=channel)

    # NotificationService and BillingService processes ----------------------------------------
    # Each command names a lab and one of its processes; the lab's supervisor of that service acts.

    async def _on_process(self, message: dict, command_type, service: str, action: str) -> None:
        command = command_type.parse(message)
        session = await self.runner.session(command.lab_id)
        supervisor = session.supervisor if service == "consumers" else session.billing
        await getattr(supervisor, action)(command.name)

    async def consumer_start(self, message: dict) -> None:
        await self._on_process(message, protocol.ConsumerStart, "consumers", "start")

    async def consumer_stop(self, message: dict) -> None:
        await self._on_process(message, protocol.ConsumerStop, "consumers", "stop")

    async def consumer_kill(self, message: dict) -> None:
        await self._on_process(message, protocol.ConsumerKill, "consumers", "kill")

    async def billing_start(self, message: dict) -> None:
        await self._on_process(message, protocol.BillingStart, "billing", "start")

    async def billing_stop(self, message: dict) -> None:
        await self._on_process(message, protocol.BillingStop, "billing", "stop")

    async def billing_kill(self, message: dict) -> None:
        await self._on_process(message, protocol.BillingKill, "billing", "kill")


def _idle_text() -> str:
    hours = settings.LAB_IDLE_EXPIRY_SECONDS / 3600
    return f"{hours:g} h" if hours >= 1 else f"{settings.LAB_IDLE_EXPIRY_SECONDS:g} s"


@database_sync_to_async
def forget_processes_of_a_previous_run() -> None:
    """Processes die with the runner that started them, so a fresh runner owns none."""
    NotificationConsumer.objects.filter(status__in=LIVE_STATUSES).update(status=ConsumerStatus.STOPPED, pid=None)
    BillingInstance.objects.filter(status__in=LIVE_STATUSES).update(status=ConsumerStatus.STOPPED, pid=None)


@database_sync_to_async
def forget_transactions_of_a_previous_run() -> None:
    """A fresh runner holds no transactional producer: what an earlier run left open is the broker's
    to abort now, and its orders are undone."""
    transactions_forget_all(
        message=(
            "The lab runner restarted while a transaction was open, and its producer went with it: the broker "
            "aborts that transaction by itself when its timeout runs out."
        )
    )


@database_sync_to_async
def _load_history(session: LabSession) -> None:
    """What earlier runs saved: consumers (stopped now), emails (to judge duplicates), the timeline."""
    live = session.live
    ended, session.classroom_id = Lab.objects.filter(pk=session.lab_id).values_list(
        "transaction_ended", "classroom_id"
    ).first() or (None, None)
    live.note_transaction(current=None, ended=ended)
    session.transaction.ended = ended
    sent = OutboxEmail.objects.filter(lab_id=session.lab_id, missed=False)  # a missed email was never sent
    live.load_emails(list(sent.values_list("partition", "offset")))
    for row in NotificationConsumer.objects.filter(lab_id=session.lab_id):
        try:
            config = ConsumerConfig.from_dict(row.config)
        except (TypeError, ValueError):  # shown with the defaults; starting it says what is wrong
            config = ConsumerConfig()
        consumer = live.consumer(row.name, config)
        consumer.status, consumer.last_error = ConsumerStatus(row.status), row.last_error
    load_billing(live, session.lab_id)
    saved = Rebalance.objects.filter(lab_id=session.lab_id)[:TIMELINE_LOADED]
    live.load_rebalances(
        [
            RebalanceLive.from_saved(trigger=r.trigger, started_at=r.started_at, ended_at=r.ended_at, changes=r.changes)
            for r in saved
        ]
    )


@database_sync_to_async
def _mark_seen(lab_ids: list[int]) -> None:
    if lab_ids:
        Lab.objects.filter(pk__in=lab_ids).update(last_seen_at=timezone.now())


@database_sync_to_async
def _closed_classroom_lab_ids() -> list[int]:
    return list(Lab.objects.filter(classroom__closed_at__isnull=False).values_list("pk", flat=True))


@database_sync_to_async
def _idle_lab_ids() -> list[int]:
    cutoff = timezone.now() - timedelta(seconds=settings.LAB_IDLE_EXPIRY_SECONDS)
    return list(Lab.objects.filter(last_seen_at__lt=cutoff).values_list("pk", flat=True))
