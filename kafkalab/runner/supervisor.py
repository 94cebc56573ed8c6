"""Starts, stops and kills a lab's NotificationService processes, and listens to their reports.

The process handling is kafkalab.runner.processes'; here is what is NotificationService's own: its
reports, its crash loop on a poison record, its rows, the emails and the rebalances.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from channels.db import database_sync_to_async

from kafkalab.kafka.consumer_config import ConsumerConfig, ConsumerStatus, FailurePolicy
from kafkalab.kafka.notification_service import POISON_EXIT_CODE
from kafkalab.labs import records
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab, NotificationConsumer, OutboxEmail, Rebalance
from kafkalab.labs.services.topics import dead_letter_topic_ensure
from kafkalab.registry import registry_url
from kafkalab.runner.live import ConsumerLive, Email, LabLive, Poison, PoisonAction
from kafkalab.runner.processes import ERROR_TEXT_LIMIT, ProcessSupervisor, crash_error, exit_status

log = logging.getLogger(__name__)

ORDER_ID_CHARS = OutboxEmail._meta.get_field("order_id").max_length
EVENT_TYPE_CHARS = OutboxEmail._meta.get_field("event_type").max_length
REASON_CHARS = OutboxEmail._meta.get_field("reason").max_length
POISON_TEXT_LIMIT = 300
# A consumer that crashed on a poison record is started again after 1 s, then 2, 4, 8 and 10 s
# while it keeps crashing without getting past the record.
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_CAP_SECONDS = 10.0


class Supervisor(ProcessSupervisor):
    """The NotificationService processes of one lab. All methods run on the runner's event loop."""

    module = "kafkalab.kafka.notification_service"
    what = "consumer"
    config_type = ConsumerConfig

    def __init__(self, *, lab_id: int, live: LabLive, on_change) -> None:
        super().__init__(lab_id=lab_id, live=live, on_change=on_change)
        self._restarts: dict[str, asyncio.TimerHandle] = {}  # crash-looping consumers, waiting
        self._starting: set[asyncio.Task] = set()  # restarts under way (held, so they are not collected)

    # Commands ---------------------------------------------------------------------------------

    async def start(self, name: str, *, after_crash: bool = False) -> None:
        """Start the consumer's process: asked by the learner, or `after_crash` on a poison record."""
        record = await _consumer_row(self.lab_id, name)
        if after_crash and name not in self._restarts:
            return  # stopped or killed while it waited
        self._cancel_restart(name)
        if record is not None:
            await self._launch_unless_running(name, record, after_crash=after_crash)

    async def _launch(self, name: str, record: NotificationConsumer, *, after_crash: bool) -> None:
        config = await self._read_config(name, record.config)
        if config is None:
            return
        live = self.live.consumer(name, config)
        with self.live.lock:
            live.status, live.assigned, live.restart_at = ConsumerStatus.STARTING, [], None
            if not after_crash:  # a crash loop keeps its count and its error on the card
                live.last_error, live.crashes, live.crash_streak, live.crashed_on = "", 0, 0, None
        if config.dead_letters:
            await _dead_letter_topic_ensure(self.lab_id)
        lab = Lab(pk=self.lab_id)
        settings = self._service_settings(
            name, live.config, group_id=lab.group_id, dlq_topic=lab.dlq_topic, registry_url=registry_url()
        )
        await self._spawn(name, live, settings, last_error=live.last_error)

    async def stop(self, name: str) -> None:
        """Graceful: SIGTERM; the process closes its consumer, which leaves the group at once."""
        if name not in self.processes:
            await self._end_crash_loop(name, ConsumerStatus.STOPPED)
            return
        self.live.expect_rebalance(f"{name} stopped and left the group", at=time.time(), starts_now=True)
        await super().stop(name)

    async def kill(self, name: str) -> None:
        """SIGKILL: no goodbye to the group, which waits for the session timeout."""
        if name not in self.processes:
            await self._end_crash_loop(name, ConsumerStatus.KILLED)
            return
        timeout = self.live.consumer(name).config.session_timeout_ms
        self.live.expect_rebalance(
            f"{name} was killed; the group waited out its session timeout "
            f"({timeout / 1000:g} s from its last heartbeat)",
            at=time.time(),
            starts_now=True,
        )
        await super().kill(name)

    async def reap(self) -> None:
        """Stop every process gracefully (so the group empties at once), killing stragglers."""
        for name in list(self._restarts):
            await self._end_crash_loop(name, ConsumerStatus.STOPPED)
        await super().reap()

    def _live_state(self, name: str, config: ConsumerConfig | None = None) -> ConsumerLive:
        return self.live.consumer(name, config)

    async def _save(self, name: str, **fields: object) -> None:
        await _save_consumer(self.lab_id, name, **fields)

    # Crash loops ------------------------------------------------------------------------------

    async def _crash_loop(self, name: str, live: ConsumerLive, error: str) -> None:
        """It crashed on a poison record: start it again after a wait that grows while it keeps
        crashing (as Kubernetes' CrashLoopBackOff does), until the learner stops or kills it."""
        with self.live.lock:
            live.crashes += 1
            live.crash_streak += 1
            delay = min(RESTART_BACKOFF_CAP_SECONDS, RESTART_BACKOFF_SECONDS * 2 ** (live.crash_streak - 1))
            live.restart_at = time.time() + delay
        self._restarts[name] = asyncio.get_running_loop().call_later(delay, self._restart_after_crash, name)
        await self._set_status(name, ConsumerStatus.RESTARTING, error=error)

    def _restart_after_crash(self, name: str) -> None:
        # Its handle stays in _restarts until the process starts: a Stop meanwhile still ends the loop.
        task = asyncio.get_running_loop().create_task(self.start(name, after_crash=True))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    def _cancel_restart(self, name: str) -> None:
        handle = self._restarts.pop(name, None)
        if handle is not None:
            handle.cancel()

    async def _end_crash_loop(self, name: str, status: ConsumerStatus) -> None:
        """Stop or Kill while it waits to be restarted: it stays down, and blocks nothing."""
        if name not in self._restarts:
            return
        self._cancel_restart(name)
        live = self.live.consumer(name)
        with self.live.lock:
            live.restart_at = None
        self.live.unblock_consumer(name)
        await self._set_status(name, status)

    # Reports ----------------------------------------------------------------------------------

    async def _handle(self, name: str, report: dict) -> None:
        live = self.live.consumer(name)
        event, at = report.get("event"), report.get("at", time.time())
        with self.live.lock:
            if event == "started":
                live.status = ConsumerStatus.RUNNING
                # The clock starts when it subscribes: joining is the rebalance.
                self.live.expect_rebalance(f"{name} joined the group", at=at, starts_now=True)
            elif event in {"assigned", "revoked", "lost"}:
                self._assignment(live, event, report["partitions"], at)
            elif event == "received":
                where = (report["partition"], report["offset"])
                live.positions[where[0]] = where[1] + 1
                live.in_flight.add(where)
                self.live.note_received(name, *where)
            elif event == "emailed":
                live.in_flight.discard((report["partition"], report["offset"]))
                live.emailed += 1
                self.live.note_passed(name, report["partition"], report["offset"])
            elif event == "poison":
                self._poison(live, report, at)
            elif event == "error":
                live.last_error = str(report.get("message", ""))[:ERROR_TEXT_LIMIT]
        if event == "emailed":
            order_id = records.text_or_none(report.get("order_id"), limit=ORDER_ID_CHARS)
            event_type = records.text_or_none(report.get("event_type"), limit=EVENT_TYPE_CHARS)
            self.live.note_email(Email(name, report["partition"], report["offset"], order_id, event_type, at))
        elif event == "started":
            await _save_consumer(self.lab_id, name, status=ConsumerStatus.RUNNING)
        elif event == "error":
            await _save_consumer(self.lab_id, name, last_error=live.last_error)
        self.on_change()

    def _poison(self, live: ConsumerLive, report: dict, at: float) -> None:
        """A record its reader could not process, and what the failure policy did with it."""
        action = PoisonAction(report["action"])
        where = (report["partition"], report["offset"])
        reason = _db_text(report.get("reason"), POISON_TEXT_LIMIT)
        poison = Poison(
            consumer=live.name,
            partition=where[0],
            offset=where[1],
            reason=reason,
            message=_db_text(report.get("message"), POISON_TEXT_LIMIT),
            action=str(action),
            at=at,
        )
        if action != PoisonAction.RETRYING:
            live.in_flight.discard(where)
        if action == PoisonAction.CRASHED:
            live.crashed_on = where
        elif action == PoisonAction.SKIPPED:
            live.skipped += 1
            # No email goes out for it: the outbox shows it as missed, with the reason.
            missed = Email(live.name, *where, None, None, at, missed=True, reason=reason[:REASON_CHARS])
            self.live.note_email(missed)
        elif action == PoisonAction.DEAD_LETTERED:
            live.dead_lettered += 1
        else:
            live.retries += 1
        self.live.note_poison(poison)

    def _assignment(self, live, event: str, partitions: list[int], at: float) -> None:
        if event == "assigned":
            live.assigned = sorted(set(live.assigned) | set(partitions))
        else:
            live.assigned = [p for p in live.assigned if p not in partitions]
            for partition in partitions:
                live.positions.pop(partition, None)
        self.live.note_assignment_change(live.name, event, partitions, at)

    async def _exited(self, name: str, deliberate: ConsumerStatus | None, returncode: int, stderr: str) -> None:
        live = self.live.consumer(name)
        with self.live.lock:
            live.pid, live.in_flight = None, set()
            if deliberate is None and live.assigned:
                self.live.expect_rebalance(f"{name} crashed", at=time.time())
            live.assigned = []
        status, error = exit_status(deliberate, returncode), ""
        if status == ConsumerStatus.CRASHED:
            error = crash_error(live.last_error, returncode, stderr)
            if returncode == POISON_EXIT_CODE and live.config.failure_policy == FailurePolicy.CRASH:
                await self._crash_loop(name, live, error)
                return
        else:
            # A crash keeps the blocked partition: nobody reads past the record.
            self.live.unblock_consumer(name)
        await self._set_status(name, status, error=error)

    # Persistence ------------------------------------------------------------------------------

    async def persist(self) -> None:
        """Write what the page has shown to the database: emails, finished rebalances."""
        emails = self.live.take_unsaved_emails()
        self.live.close_quiet_rebalance()
        closed = self.live.take_closed_rebalances()
        if emails:
            await _save_emails(self.lab_id, emails)
        for rebalance in closed:
            await _save_rebalance(self.lab_id, rebalance)


def _db_text(value: object, limit: int) -> str:
    """A field of a report, whatever its type, as text a column of `limit` characters can hold."""
    if value is None:
        return ""
    return records.text_or_none(value if isinstance(value, str) else str(value), limit=limit)


def _as_datetime(at: float) -> datetime:
    return datetime.fromtimestamp(at, tz=UTC)


async def _dead_letter_topic_ensure(lab_id: int) -> None:
    """Labs made before dead-letter topics existed get theirs when a consumer needs it."""
    try:
        # Kafka's admin calls, not the database's: a thread of its own, not the database thread.
        await asyncio.to_thread(dead_letter_topic_ensure, lab=Lab(pk=lab_id))
    except LabError as exc:  # the process says so when it can't write a dead letter
        log.warning("lab %s: %s", lab_id, exc)


@database_sync_to_async
def _consumer_row(lab_id: int, name: str) -> NotificationConsumer | None:
    return NotificationConsumer.objects.filter(lab_id=lab_id, name=name).first()


@database_sync_to_async
def _save_consumer(lab_id: int, name: str, **fields: object) -> None:
    NotificationConsumer.objects.filter(lab_id=lab_id, name=name).update(**fields)


@database_sync_to_async
def _save_emails(lab_id: int, emails: list[Email]) -> None:
    OutboxEmail.objects.bulk_create(
        OutboxEmail(
            lab_id=lab_id,
            consumer_name=email.consumer,
            partition=email.partition,
            offset=email.offset,
            order_id=_db_text(email.order_id, ORDER_ID_CHARS),
            event_type=_db_text(email.event_type, EVENT_TYPE_CHARS),
            sent_at=_as_datetime(email.at),
            missed=email.missed,
            reason=_db_text(email.reason, REASON_CHARS),
        )
        for email in emails
    )


@database_sync_to_async
def _save_rebalance(lab_id: int, rebalance) -> None:
    if not Lab.objects.filter(pk=lab_id).exists():
        return
    Rebalance.objects.create(
        lab_id=lab_id,
        trigger=rebalance.trigger[:200],
        started_at=_as_datetime(rebalance.started_at),
        ended_at=_as_datetime(rebalance.ended_at),
        changes=rebalance.as_changes(),
    )
