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
from kafkalab.kafka.consumer_config import ConsumerConfig, ConsumerStatus
from kafkalab.labs import records
from kafkalab.labs.models import Lab, NotificationConsumer, OutboxEmail, Rebalance
from kafkalab.runner.live import Email, LabLive

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0
ERROR_TEXT_LIMIT = 500
# A consumer's report lines are small; a longer one is dropped rather than buffered.
REPORT_LINE_LIMIT = 1 << 20
READ_CHUNK = 1 << 16
ORDER_ID_CHARS = OutboxEmail._meta.get_field("order_id").max_length
EVENT_TYPE_CHARS = OutboxEmail._meta.get_field("event_type").max_length


class Supervisor:
    """The processes of one lab. All methods run on the runner's event loop."""

    def __init__(self, *, lab_id: int, live: LabLive, on_change) -> None:
        self.lab_id = lab_id
        self.live = live
        self.on_change = on_change
        self.processes: dict[str, subprocess.Popen] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._deliberate: dict[str, ConsumerStatus] = {}  # name → STOPPED or KILLED, set by us

    # Commands ---------------------------------------------------------------------------------

    async def start(self, name: str) -> None:
        record = await _consumer_row(self.lab_id, name)
        if record is None or name in self.processes:
            return
        try:
            config = ConsumerConfig.from_dict(record.config)
        except (TypeError, ValueError) as exc:  # saved by an older version, or edited by hand
            self.live.consumer(name)
            await self._set_status(
                name, ConsumerStatus.CRASHED, error=f"could not start: its config is not valid: {exc}"
            )
            return
        live = self.live.consumer(name, config)
        live.status, live.last_error, live.assigned = ConsumerStatus.STARTING, "", []
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
        await _save_consumer(self.lab_id, name, status=ConsumerStatus.STARTING, pid=process.pid, last_error="")

    async def stop(self, name: str) -> None:
        """Graceful: SIGTERM; the process closes its consumer, which leaves the group at once."""
        process = self.processes.get(name)
        if process is None:
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
        }

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
            elif event == "emailed":
                live.in_flight.discard((report["partition"], report["offset"]))
                live.emailed += 1
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
        if not status.is_live:
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
