"""Starts, stops and kills a lab's BillingService processes, and listens to their reports.

A sibling of kafkalab.runner.supervisor (which owns NotificationService): the process handling is
the same in kind, the reports and the rows are BillingService's. A twin is an instance started
with another's transactional.id: its init_transactions() fences that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys

from channels.db import database_sync_to_async

from kafkalab.kafka.billing_config import BillingConfig
from kafkalab.kafka.billing_service import FENCED_EXIT_CODE
from kafkalab.kafka.config import client_config
from kafkalab.kafka.consumer_config import ConsumerStatus
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import BillingInstance, Lab
from kafkalab.labs.services.topics import invoices_topic_ensure
from kafkalab.runner.live import BillingLive, LabLive
from kafkalab.runner.supervisor import ERROR_TEXT_LIMIT, REPORT_LINE_LIMIT, STOP_GRACE_SECONDS, _last_line, _lines

log = logging.getLogger(__name__)

FENCED_MESSAGE = "Fenced: {twin} took its transactional.id ({tid}). This zombie can no longer write, and exited."


class BillingSupervisor:
    """The BillingService processes of one lab. All methods run on the runner's event loop."""

    def __init__(self, *, lab_id: int, live: LabLive, on_change) -> None:
        self.lab_id = lab_id
        self.live = live
        self.on_change = on_change
        self.processes: dict[str, subprocess.Popen] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._deliberate: dict[str, ConsumerStatus] = {}
        self._launching: set[str] = set()

    async def start(self, name: str) -> None:
        row = await _row(self.lab_id, name)
        if row is None or name in self.processes or name in self._launching:
            return
        self._launching.add(name)
        try:
            await self._launch(row)
        finally:
            self._launching.discard(name)

    async def _launch(self, row: BillingInstance) -> None:
        name = row.name
        try:
            config = BillingConfig.from_dict(row.config)
        except (TypeError, ValueError) as exc:
            self.live.billing_instance(name)
            await self._set_status(
                name, ConsumerStatus.CRASHED, error=f"could not start: its config is not valid: {exc}"
            )
            return
        live = self.live.billing_instance(name, config)
        with self.live.lock:
            live.status, live.assigned, live.in_batch, live.fenced, live.last_error = (
                ConsumerStatus.STARTING,
                [],
                0,
                False,
                "",
            )
            live.transactional_id, live.twin_of = row.transactional_id, row.twin_of
        # Said at once: a fresh runner marks every row stopped before its first command, and the
        # topic check below may take a while.
        await _save(self.lab_id, name, status=ConsumerStatus.STARTING, last_error="", fenced=False)
        await _invoices_topic_ensure(self.lab_id)
        lab = Lab(pk=self.lab_id)
        settings = {
            "name": name,
            "topic": lab.orders_topic,
            "invoices_topic": lab.invoices_topic,
            "group_id": lab.billing_group_id,
            "transactional_id": row.transactional_id,
            "client": client_config(),
            "config": config.as_dict(),
            "parent_pid": os.getpid(),  # the child ends when the runner does
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "kafkalab.kafka.billing_service", json.dumps(settings)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            await self._set_status(name, ConsumerStatus.CRASHED, error=f"could not start the process: {exc}")
            return
        self.processes[name] = process
        self._readers[name] = asyncio.get_running_loop().create_task(self._follow(name, process))
        self._deliberate.pop(name, None)
        live.pid = process.pid
        self.on_change()
        await _save(self.lab_id, name, status=ConsumerStatus.STARTING, pid=process.pid, last_error="", fenced=False)

    async def stop(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None:
            return
        self._deliberate[name] = ConsumerStatus.STOPPED
        await self._set_status(name, ConsumerStatus.STOPPING)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        asyncio.get_running_loop().call_later(STOP_GRACE_SECONDS, _kill_if_running, process)

    async def kill(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None:
            return
        self._deliberate[name] = ConsumerStatus.KILLED
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    async def reap(self) -> None:
        """Stop every process gracefully, killing stragglers."""
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

    # Reports ----------------------------------------------------------------------------------

    async def _follow(self, name: str, process: subprocess.Popen) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=REPORT_LINE_LIMIT)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
        try:
            async for line in _lines(reader, limit=REPORT_LINE_LIMIT, what=f"billing {name}"):
                try:
                    report = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(report, dict):
                    try:
                        await self._handle(name, report)
                    except Exception:
                        log.exception("billing %s: could not handle the report %.200r", name, line)
        finally:
            transport.close()
        returncode = await asyncio.to_thread(process.wait)
        stderr = await asyncio.to_thread(process.stderr.read)
        await self._exited(name, process, returncode, stderr.decode(errors="replace"))

    async def _handle(self, name: str, report: dict) -> None:
        live = self.live.billing_instance(name)
        event = report.get("event")
        with self.live.lock:
            if event == "started":
                live.status = ConsumerStatus.RUNNING
            elif event == "assigned":
                live.assigned = sorted(set(live.assigned) | set(report["partitions"]))
            elif event in {"revoked", "lost"}:
                live.assigned = [p for p in live.assigned if p not in report["partitions"]]
            elif event == "received":
                live.in_batch += 1
            elif event == "invoiced":
                live.invoiced += 1
            elif event == "skipped":
                live.skipped += 1
            elif event == "committed":
                live.in_batch, live.batches = 0, live.batches + 1
            elif event == "aborted":
                live.in_batch = 0
            elif event == "fenced":
                live.fenced = True
                live.last_error = self._fenced_text(live)
            elif event == "error":
                live.last_error = str(report.get("message", ""))[:ERROR_TEXT_LIMIT]
        if event == "started":
            await _save(self.lab_id, name, status=ConsumerStatus.RUNNING)
        elif event in {"error", "fenced"}:
            await _save(self.lab_id, name, last_error=live.last_error, fenced=live.fenced)
        self.on_change()

    def _fenced_text(self, live: BillingLive) -> str:
        twins = [
            other.name
            for other in self.live.billing.values()
            if other is not live and other.transactional_id == live.transactional_id and other.live
        ]
        return FENCED_MESSAGE.format(twin=twins[-1] if twins else "another instance", tid=live.transactional_id)

    async def _exited(self, name: str, process: subprocess.Popen, returncode: int, stderr: str) -> None:
        if self.processes.get(name) is process:
            del self.processes[name]
        self._readers.pop(name, None)
        deliberate = self._deliberate.pop(name, None)
        live = self.live.billing_instance(name)
        with self.live.lock:
            live.pid, live.assigned, live.in_batch = None, [], 0
        if deliberate == ConsumerStatus.KILLED or returncode == -signal.SIGKILL:
            status, error = ConsumerStatus.KILLED, None
        elif returncode == FENCED_EXIT_CODE:
            status, error = ConsumerStatus.STOPPED, live.last_error
        elif deliberate == ConsumerStatus.STOPPED or returncode == 0:
            status, error = ConsumerStatus.STOPPED, None
        else:
            status = ConsumerStatus.CRASHED
            error = live.last_error or _last_line(stderr) or f"exited with code {returncode}"
        await self._set_status(name, status, error=error)

    async def _set_status(self, name: str, status: ConsumerStatus, *, error: str | None = None) -> None:
        live = self.live.billing_instance(name)
        with self.live.lock:
            live.status = status
            if error is not None:
                live.last_error = error[:ERROR_TEXT_LIMIT]
        fields: dict[str, object] = {"status": status}
        if error is not None:
            fields["last_error"] = live.last_error
        if not status.is_live:
            fields["pid"] = None
        await _save(self.lab_id, name, **fields)
        self.on_change()


def _kill_if_running(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()


async def _invoices_topic_ensure(lab_id: int) -> None:
    """Labs made before BillingService existed get their invoices topic when it first starts."""
    try:
        await asyncio.to_thread(invoices_topic_ensure, lab=Lab(pk=lab_id))
    except LabError as exc:  # the process says so when it can't write an invoice
        log.warning("lab %s: %s", lab_id, exc)


@database_sync_to_async
def _row(lab_id: int, name: str) -> BillingInstance | None:
    return BillingInstance.objects.select_related("lab").filter(lab_id=lab_id, name=name).first()


@database_sync_to_async
def _save(lab_id: int, name: str, **fields: object) -> None:
    BillingInstance.objects.filter(lab_id=lab_id, name=name).update(**fields)


def load_billing(live: LabLive, lab_id: int) -> None:
    """What earlier runs saved (sync; the runner calls it in its history loader)."""
    for row in BillingInstance.objects.select_related("lab").filter(lab_id=lab_id):
        try:
            config = BillingConfig.from_dict(row.config)
        except (TypeError, ValueError):
            config = BillingConfig()
        instance = live.billing_instance(row.name, config)
        instance.status, instance.last_error, instance.fenced = ConsumerStatus(row.status), row.last_error, row.fenced
        instance.transactional_id, instance.twin_of = row.transactional_id, row.twin_of
