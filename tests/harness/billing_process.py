"""One BillingService process, started as the lab runner starts it (its settings as JSON on the
command line), its stdout reports collected as they come. Shared by the tests and the bench."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time

SERVICE_MODULE = "kafkalab.kafka.billing_service"


class BillingProcess:
    def __init__(self, settings: dict) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- outlives __init__; end() closes it
        self.process = subprocess.Popen(
            [sys.executable, "-m", SERVICE_MODULE, json.dumps(settings)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
        )
        self.reports: list[dict] = []
        # Drained all along: it writes a line per order received and invoiced, and must never block.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.reports.append(json.loads(line))

    def events(self, event: str) -> list[dict]:
        return [r for r in list(self.reports) if r["event"] == event]

    def wait_for(self, event: str, *, timeout: float) -> float:
        """Until the process reports `event`; when it did, in seconds since the epoch. Raises
        RuntimeError when it exits first, or does not report it within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.events(event):
                return found[0]["at"]
            if self.process.poll() is not None:
                raise RuntimeError(f"BillingService exited with code {self.process.returncode}: {self.last_words()}")
            time.sleep(0.02)
        raise RuntimeError(f"BillingService did not report {event!r} within {timeout:.0f} s")

    def last_words(self) -> str:
        """Its last error reports and what it wrote to stderr."""
        self.stderr.seek(0)
        return f"{self.events('error')[-3:]} {self.stderr.read().decode(errors='replace')[-2000:]}"

    def end(self, *, kill: bool = False) -> None:
        """SIGTERM, as the runner stops it, then SIGKILL if it has not left within 10 s; or
        SIGKILL at once."""
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        self.process.stdout.close()
        self.stderr.close()
