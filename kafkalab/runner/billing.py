"""Starts, stops and kills a lab's BillingService processes, and listens to their reports.

The process handling is kafkalab.runner.processes' (as for NotificationService); here is what is
BillingService's own: its reports, its rows, and being fenced. A twin is an instance started with
another's transactional.id: its init_transactions() fences that one.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async

from kafkalab.kafka.billing_config import BillingConfig
from kafkalab.kafka.billing_service import FENCED_EXIT_CODE
from kafkalab.kafka.consumer_config import ConsumerStatus
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import BillingInstance, Lab
from kafkalab.labs.services.topics import invoices_topic_ensure
from kafkalab.runner.live import BillingLive, LabLive
from kafkalab.runner.processes import ERROR_TEXT_LIMIT, ProcessSupervisor, crash_error, exit_status

log = logging.getLogger(__name__)

FENCED_MESSAGE = "Fenced: {twin} took its transactional.id ({tid}). This zombie can no longer write, and exited."


class BillingSupervisor(ProcessSupervisor):
    """The BillingService processes of one lab. All methods run on the runner's event loop."""

    module = "kafkalab.kafka.billing_service"
    what = "billing"
    config_type = BillingConfig

    async def start(self, name: str) -> None:
        row = await _instance_row(self.lab_id, name)
        if row is not None:
            await self._launch_unless_running(name, row)

    async def _launch(self, name: str, row: BillingInstance) -> None:
        config = await self._read_config(name, row.config)
        if config is None:
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
        await _save_instance(self.lab_id, name, status=ConsumerStatus.STARTING, last_error="", fenced=False)
        await _invoices_topic_ensure(self.lab_id)
        lab = Lab(pk=self.lab_id)
        settings = self._service_settings(
            name,
            config,
            invoices_topic=lab.invoices_topic,
            group_id=lab.billing_group_id,
            transactional_id=row.transactional_id,
        )
        await self._spawn(name, live, settings, last_error="", fenced=False)

    def _live_state(self, name: str, config: BillingConfig | None = None) -> BillingLive:
        return self.live.billing_instance(name, config)

    async def _save(self, name: str, **fields: object) -> None:
        await _save_instance(self.lab_id, name, **fields)

    # Reports ----------------------------------------------------------------------------------

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
            await _save_instance(self.lab_id, name, status=ConsumerStatus.RUNNING)
        elif event in {"error", "fenced"}:
            await _save_instance(self.lab_id, name, last_error=live.last_error, fenced=live.fenced)
        self.on_change()

    def _fenced_text(self, live: BillingLive) -> str:
        twins = [
            other.name
            for other in self.live.billing.values()
            if other is not live and other.transactional_id == live.transactional_id and other.live
        ]
        return FENCED_MESSAGE.format(twin=twins[-1] if twins else "another instance", tid=live.transactional_id)

    async def _exited(self, name: str, deliberate: ConsumerStatus | None, returncode: int, stderr: str) -> None:
        live = self.live.billing_instance(name)
        with self.live.lock:
            live.pid, live.assigned, live.in_batch = None, [], 0
        status, error = exit_status(deliberate, returncode), None  # a kill or a stop keeps the last error
        if status != ConsumerStatus.KILLED and returncode == FENCED_EXIT_CODE:
            status, error = ConsumerStatus.STOPPED, live.last_error  # the fence, said on its card
        elif status == ConsumerStatus.CRASHED:
            error = crash_error(live.last_error, returncode, stderr)
        await self._set_status(name, status, error=error)


async def _invoices_topic_ensure(lab_id: int) -> None:
    """Labs made before BillingService existed get their invoices topic when it first starts."""
    try:
        await asyncio.to_thread(invoices_topic_ensure, lab=Lab(pk=lab_id))
    except LabError as exc:  # the process says so when it can't write an invoice
        log.warning("lab %s: %s", lab_id, exc)


@database_sync_to_async
def _instance_row(lab_id: int, name: str) -> BillingInstance | None:
    return BillingInstance.objects.select_related("lab").filter(lab_id=lab_id, name=name).first()


@database_sync_to_async
def _save_instance(lab_id: int, name: str, **fields: object) -> None:
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
