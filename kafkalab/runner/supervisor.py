"""Starts, stops and kills a lab's NotificationService processes, and listens to their reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from channels.db import database_sync_to_async

from kafkalab.kafka.config import client_config
from kafkalab.kafka.consumer_config import ConsumerConfig, ConsumerStatus, FailurePolicy
from kafkalab.kafka.notification_service import POISON_EXIT_CODE
from kafkalab.labs import records
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab, NotificationConsumer, OutboxEmail, Rebalance
from kafkalab.labs.services.topics import dead_letter_topic_ensure
from kafkalab.registry import registry_url
from kafkalab.runner.live import ConsumerLive, Email, LabLive, Poison, PoisonAction

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0
ERROR_TEXT_LIMIT = 500
# A consumer's report lines are small; a longer one is dropped rather than buffered.
REPORT_LINE_LIMIT = 1 << 20
READ_CHUNK = 1 << 16
ORDER_ID_CHARS = OutboxEmail._meta.get_field("order_id").max_length
EVENT_TYPE_CHARS = OutboxEmail._meta.get_field("event_type").max_length
REASON_CHARS = OutboxEmail._meta.get_field("reason").max_length
POISON_TEXT_LIMIT = 300
# A consumer that crashed on a poison record is started again after 1 s, then 2, 4, 8 and 10 s
# while it keeps crashing without getting past the record.
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_CAP_SECONDS = 10.0


class Supervisor:
    """The processes of one lab. All methods run on the runner's event loop."""

    def __init__(self, *, lab_id: int, live: LabLive, on_change) -> None:
        self.lab_id = lab_id
        self.live = live
        self.on_change = on_change
        self.processes: dict[str, subprocess.Popen] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._deliberate: dict[str, ConsumerStatus] = {}  # name → STOPPED or KILLED, set by us
        self._restarts: dict[str, asyncio.TimerHandle] = {}  # crash-looping consumers, waiting
        self._starting: set[asyncio.Task] = set()  # restarts under way (held, so they are not collected)
        self._launching: set[str] = set()

    # Commands ---------------------------------------------------------------------------------

    async def start(self, name: str, *, after_crash: bool = False) -> None:
        """Start the consumer's process: asked by the learner, or `after_crash` on a poison record."""
        record = await _consumer_row(self.lab_id, name)
        if after_crash and name not in self._restarts:
            return  # stopped or killed while it waited
        self._cancel_restart(name)
        if record is None or name in self.processes or name in self._launching:
            return
        self._launching.add(name)  # a second start while this one awaits the topic starts nothing
        try:
            await self._launch(name, record, after_crash=after_crash)
        finally:
            self._launching.discard(name)

    async def _launch(self, name: str, record: NotificationConsumer, *, after_crash: bool) -> None:
        try:
            config = ConsumerConfig.from_dict(record.config)
        except (TypeError, ValueError) as exc:  # saved by an older version, or edited by hand
            self.live.consumer(name)
            await self._set_status(
                name, ConsumerStatus.CRASHED, error=f"could not start: its config is not valid: {exc}"
            )
            return
        live = self.live.consumer(name, config)
        with self.live.lock:
            live.status, live.assigned, live.restart_at = ConsumerStatus.STARTING, [], None
            if not after_crash:  # a crash loop keeps its count and its error on the card
                live.last_error, live.crashes, live.crash_streak, live.crashed_on = "", 0, 0, None
        if config.dead_letters:
            await _dead_letter_topic_ensure(self.lab_id)
        settings = self._service_settings(name, live.config)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "kafkalab.kafka.notification_service", json.dumps(settings)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            await self._set_status(name, ConsumerStatus.CRASHED, error=f"could not start the process: {exc}")
            return
        # Followed before anything else can fail: a process we know of can always be stopped.
        self.processes[name] = process
        self._readers[name] = asyncio.get_running_loop().create_task(self._follow(name, process))
        self._deliberate.pop(name, None)
        live.pid = process.pid
        self.on_change()
        await _save_consumer(
            self.lab_id, name, status=ConsumerStatus.STARTING, pid=process.pid, last_error=live.last_error
        )

    async def stop(self, name: str) -> None:
        """Graceful: SIGTERM; the process closes its consumer, which leaves the group at once."""
        process = self.processes.get(name)
        if process is None:
            await self._end_crash_loop(name, ConsumerStatus.STOPPED)
            return
        self._deliberate[name] = ConsumerStatus.STOPPED
        self.live.expect_rebalance(f"{name} stopped and left the group", at=time.time(), starts_now=True)
        await self._set_status(name, ConsumerStatus.STOPPING)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        asyncio.get_running_loop().call_later(STOP_GRACE_SECONDS, self._kill_if_running, name, process)

    async def kill(self, name: str) -> None:
        """SIGKILL: no goodbye to the group, which waits for the session timeout."""
        process = self.processes.get(name)
        if process is None:
            await self._end_crash_loop(name, ConsumerStatus.KILLED)
            return
        self._deliberate[name] = ConsumerStatus.KILLED
        timeout = self.live.consumer(name).config.session_timeout_ms
        self.live.expect_rebalance(
            f"{name} was killed; the group waited out its session timeout "
            f"({timeout / 1000:g} s from its last heartbeat)",
            at=time.time(),
            starts_now=True,
        )
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    async def reap(self) -> None:
        """Stop every process gracefully (so the group empties at once), killing stragglers."""
        for name in list(self._restarts):
            await self._end_crash_loop(name, ConsumerStatus.STOPPED)
        for name, process in list(self.processes.items()):
            self._deliberate[name] = ConsumerStatus.STOPPED
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        readers = list(self._readers.values())
        pending = set()
        if readers:
            _, pending = await asyncio.wait(readers, timeout=STOP_GRACE_SECONDS)
        for process in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)

    def _kill_if_running(self, name: str, process: subprocess.Popen) -> None:
        if process.poll() is None:
            log.warning("consumer %s did not stop within %ss; killing it", name, STOP_GRACE_SECONDS)
            process.kill()

    def _service_settings(self, name: str, config: ConsumerConfig) -> dict:
        lab = Lab(pk=self.lab_id)
        return {
            "name": name,
            "topic": lab.orders_topic,
            "group_id": lab.group_id,
            "client": client_config(),
            # The child asks Linux to end it when this process dies: no orphans, ever.
            "parent_pid": os.getpid(),
            "config": config.as_dict(),
            "dlq_topic": lab.dlq_topic,
            "registry_url": registry_url(),
        }

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

    async def _follow(self, name: str, process: subprocess.Popen) -> None:
        # Following must outlive any report: once it ends, the process can't be stopped or reset.
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=REPORT_LINE_LIMIT)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
        try:
            async for line in _lines(reader, limit=REPORT_LINE_LIMIT, what=f"consumer {name}"):
                try:
                    report = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if not isinstance(report, dict):
                    continue
                try:
                    await self._handle(name, report)
                except Exception:
                    log.exception("consumer %s: could not handle the report %.200r", name, line)
        finally:
            transport.close()
        returncode = await asyncio.to_thread(process.wait)
        stderr = await asyncio.to_thread(process.stderr.read)
        await self._exited(name, process, returncode, stderr.decode(errors="replace"))

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

    async def _exited(self, name: str, process: subprocess.Popen, returncode: int, stderr: str) -> None:
        if self.processes.get(name) is process:
            del self.processes[name]
        self._readers.pop(name, None)
        deliberate = self._deliberate.pop(name, None)
        live = self.live.consumer(name)
        with self.live.lock:
            live.pid, live.in_flight = None, set()
            if deliberate is None and live.assigned:
                self.live.expect_rebalance(f"{name} crashed", at=time.time())
            live.assigned = []
        if deliberate == ConsumerStatus.KILLED or returncode == -signal.SIGKILL:
            status, error = ConsumerStatus.KILLED, ""
        elif deliberate == ConsumerStatus.STOPPED or returncode == 0:
            status, error = ConsumerStatus.STOPPED, ""
        else:
            status = ConsumerStatus.CRASHED
            error = live.last_error or _last_line(stderr) or f"exited with code {returncode}"
            if returncode == POISON_EXIT_CODE and live.config.failure_policy == FailurePolicy.CRASH:
                await self._crash_loop(name, live, error)
                return
        if status != ConsumerStatus.CRASHED:
            # A crash keeps the blocked partition: nobody reads past the record.
            self.live.unblock_consumer(name)
        await self._set_status(name, status, error=error)

    async def _set_status(self, name: str, status: ConsumerStatus, *, error: str | None = None) -> None:
        live = self.live.consumer(name)
        with self.live.lock:
            live.status = status
            if error is not None:
                live.last_error = error[:ERROR_TEXT_LIMIT]
        fields = {"status": status}
        if error is not None:
            fields["last_error"] = live.last_error
        if not status.is_live or status == ConsumerStatus.RESTARTING:
            fields["pid"] = None
        await _save_consumer(self.lab_id, name, **fields)
        self.on_change()

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


async def _lines(reader: asyncio.StreamReader, *, limit: int, what: str) -> AsyncIterator[bytes]:
    """The stream's lines until it ends. A line longer than `limit` is dropped whole (logged),
    and reading goes on with the next one: StreamReader.readline() would raise instead."""
    pending = bytearray()
    overlong = False  # dropping the rest of a line already longer than the limit
    while chunk := await reader.read(READ_CHUNK):
        pending += chunk
        *lines, rest = pending.split(b"\n")
        pending = bytearray(rest)
        for line in lines:
            if overlong:
                overlong = False
            elif len(line) > limit:
                log.warning("%s: dropped a report line of %d bytes", what, len(line))
            else:
                yield bytes(line)
        if len(pending) > limit:
            if not overlong:
                log.warning("%s: dropping a report line of more than %d bytes", what, limit)
            pending.clear()
            overlong = True
    if pending and not overlong:
        yield bytes(pending)


def _db_text(value: object, limit: int) -> str:
    """A field of a report, whatever its type, as text a column of `limit` characters can hold."""
    if value is None:
        return ""
    return records.text_or_none(value if isinstance(value, str) else str(value), limit=limit)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


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
