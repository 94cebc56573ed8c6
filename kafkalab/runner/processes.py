"""What supervising a lab's service processes (NotificationService, BillingService) takes, whatever
the service: launching one, reading its reports line by line, noticing its exit, stopping it
(SIGTERM, then SIGKILL after a grace) and killing it. What a report means, and which rows and
live state it updates, is each service's own (kafkalab.runner.supervisor, kafkalab.runner.billing).
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
from collections.abc import AsyncIterator

from kafkalab.kafka.config import client_config
from kafkalab.kafka.consumer_config import ConsumerStatus
from kafkalab.labs.models import Lab
from kafkalab.runner.live import LabLive

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0
ERROR_TEXT_LIMIT = 500
# A process's report lines are small; a longer one is dropped rather than buffered.
REPORT_LINE_LIMIT = 1 << 20
READ_CHUNK = 1 << 16


class ProcessSupervisor:
    """The processes of one service in one lab. All methods run on the runner's event loop.

    A subclass names the module it runs (`module`), how its saved config is read (`config_type`)
    and what its log lines call it (`what`). Its `start` reads the row and calls
    `_launch_unless_running`; it fills in `_launch`, `_handle` (one report), `_exited`,
    `_live_state` and `_save` (its row).
    """

    module: str
    what: str
    config_type: type  # ConsumerConfig or BillingConfig: `from_dict`, `as_dict`

    def __init__(self, *, lab_id: int, live: LabLive, on_change) -> None:
        self.lab_id = lab_id
        self.live = live
        self.on_change = on_change
        self.processes: dict[str, subprocess.Popen] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._deliberate: dict[str, ConsumerStatus] = {}  # name → STOPPED or KILLED, set by us
        self._launching: set[str] = set()

    # What each service fills in ----------------------------------------------------------------

    async def _launch(self, name: str, row, **options) -> None:
        raise NotImplementedError

    async def _handle(self, name: str, report: dict) -> None:
        raise NotImplementedError

    async def _exited(self, name: str, deliberate: ConsumerStatus | None, returncode: int, stderr: str) -> None:
        raise NotImplementedError

    def _live_state(self, name: str, config=None):
        """The live state of `name` (made if new), holding `config` if one is given."""
        raise NotImplementedError

    async def _save(self, name: str, **fields: object) -> None:
        raise NotImplementedError

    # Starting ---------------------------------------------------------------------------------

    async def _launch_unless_running(self, name: str, row, **options) -> None:
        if name in self.processes or name in self._launching:
            return
        self._launching.add(name)  # a second start while this one awaits (a topic, a row) starts nothing
        try:
            await self._launch(name, row, **options)
        finally:
            self._launching.discard(name)

    async def _read_config(self, name: str, saved: dict):
        """The row's config, or None (and the card says why) when it can't be read."""
        try:
            return self.config_type.from_dict(saved)
        except (TypeError, ValueError) as exc:  # saved by an older version, or edited by hand
            self._live_state(name)
            await self._set_status(
                name, ConsumerStatus.CRASHED, error=f"could not start: its config is not valid: {exc}"
            )
            return None

    def _service_settings(self, name: str, config, **more: object) -> dict:
        """What the process is started with: what every service needs, and `more`."""
        return {
            "name": name,
            "topic": Lab(pk=self.lab_id).orders_topic,
            "client": client_config(),
            # The child asks Linux to end it when this process dies: no orphans, ever.
            "parent_pid": os.getpid(),
            "config": config.as_dict(),
            **more,
        }

    async def _spawn(self, name: str, live, settings: dict, **saved: object) -> None:
        """Run the service's process and follow it; its row says STARTING, its pid and `saved`."""
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", self.module, json.dumps(settings)],
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
        await self._save(name, status=ConsumerStatus.STARTING, pid=process.pid, **saved)

    # Stopping ---------------------------------------------------------------------------------

    async def stop(self, name: str) -> None:
        """Graceful: SIGTERM, and SIGKILL if it is still running after a grace."""
        process = self.processes.get(name)
        if process is None:
            return
        self._deliberate[name] = ConsumerStatus.STOPPED
        await self._set_status(name, ConsumerStatus.STOPPING)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        asyncio.get_running_loop().call_later(STOP_GRACE_SECONDS, self._kill_if_running, name, process)

    async def kill(self, name: str) -> None:
        """SIGKILL: the process says goodbye to nobody."""
        process = self.processes.get(name)
        if process is None:
            return
        self._deliberate[name] = ConsumerStatus.KILLED
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    async def reap(self) -> None:
        """Stop every process gracefully (so its group empties at once), killing stragglers."""
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
            log.warning("%s %s did not stop within %ss; killing it", self.what, name, STOP_GRACE_SECONDS)
            process.kill()

    # Reports and exits ------------------------------------------------------------------------

    async def _follow(self, name: str, process: subprocess.Popen) -> None:
        # Following must outlive any report: once it ends, the process can't be stopped or reset.
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=REPORT_LINE_LIMIT)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
        try:
            async for line in report_lines(reader, limit=REPORT_LINE_LIMIT, what=f"{self.what} {name}"):
                try:
                    report = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if not isinstance(report, dict):
                    continue
                try:
                    await self._handle(name, report)
                except Exception:
                    log.exception("%s %s: could not handle the report %.200r", self.what, name, line)
        finally:
            transport.close()
        returncode = await asyncio.to_thread(process.wait)
        stderr = await asyncio.to_thread(process.stderr.read)
        if self.processes.get(name) is process:
            del self.processes[name]
        self._readers.pop(name, None)
        deliberate = self._deliberate.pop(name, None)
        await self._exited(name, deliberate, returncode, stderr.decode(errors="replace"))

    async def _set_status(self, name: str, status: ConsumerStatus, *, error: str | None = None) -> None:
        live = self._live_state(name)
        with self.live.lock:
            live.status = status
            if error is not None:
                live.last_error = error[:ERROR_TEXT_LIMIT]
        fields: dict[str, object] = {"status": status}
        if error is not None:
            fields["last_error"] = live.last_error
        # A consumer waiting to be restarted after a crash has no process either.
        if not status.is_live or status == ConsumerStatus.RESTARTING:
            fields["pid"] = None
        await self._save(name, **fields)
        self.on_change()


def exit_status(deliberate: ConsumerStatus | None, returncode: int) -> ConsumerStatus:
    """What a process's exit makes it: killed (by us or anyone), stopped, or else crashed."""
    if deliberate == ConsumerStatus.KILLED or returncode == -signal.SIGKILL:
        return ConsumerStatus.KILLED
    if deliberate == ConsumerStatus.STOPPED or returncode == 0:
        return ConsumerStatus.STOPPED
    return ConsumerStatus.CRASHED


def crash_error(last_error: str, returncode: int, stderr: str) -> str:
    """Why it crashed: what it last reported, else the last line it wrote to stderr."""
    return last_error or last_line(stderr) or f"exited with code {returncode}"


async def report_lines(reader: asyncio.StreamReader, *, limit: int, what: str) -> AsyncIterator[bytes]:
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


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
