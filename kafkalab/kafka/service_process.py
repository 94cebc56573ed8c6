"""What the lab's service processes (NotificationService, BillingService) share: one JSON report
per line on stdout, which the lab runner reads, librdkafka's errors as reports, bounded text,
dying with the runner, and the entry point that starts one. Needs only the standard library."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

# A report is one line the lab runner reads with a bounded buffer: whatever a record holds,
# no text field of a report grows past these.
REPORT_TEXT_CHARS = 1000
PR_SET_PDEATHSIG = 1


def report(event: str, **fields: object) -> None:
    fields = {
        name: short_text(value, REPORT_TEXT_CHARS) if isinstance(value, str) else value
        for name, value in fields.items()
    }
    sys.stdout.write(json.dumps({"event": event, "at": time.time(), **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def partition_numbers(partitions) -> list[int]:
    return sorted(tp.partition for tp in partitions)


class ErrorLogger:
    """librdkafka's log lines, reported as errors when they are errors, else dropped."""

    def log(self, level: int, msg: str, *args, **kwargs) -> None:
        if level >= 40:
            report("error", message=msg % args if args else msg)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def text_prefix(value: bytes | None, limit: int) -> str | None:
    """At most `limit` characters of `value` as UTF-8, decoding no more bytes than that needs."""
    return None if value is None else value[: limit * 4].decode("utf-8", errors="replace")[:limit]


def short_text(text: str, limit: int) -> str:
    # JSON strings may hold lone surrogates ("\ud800"), which the lab runner could not store.
    return text[:limit].encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")[:limit]


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGTERM us when the lab runner dies, so no consumer outlives the app."""
    if parent_pid is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the runner reaps us on a clean stop
        pass
    if os.getppid() != parent_pid:  # the runner died before we asked
        sys.exit(0)


class Service(Protocol):
    def run(self) -> int: ...  # its exit code


def service_main(
    argv: list[str],
    *,
    module: str,
    settings_type: Callable[..., Any],  # a dataclass with a `parent_pid`
    service_type: Callable[[Any], Service],
    start_errors: tuple[type[Exception], ...] = (),
) -> int:
    """A service process's entry point: `python -m <module> '<json settings>'`. It dies with the
    lab runner; a start that fails (bad settings, or one of `start_errors`) is reported, exit 1."""
    if len(argv) != 2:
        print(f"usage: python -m {module} '<json settings>'", file=sys.stderr)
        return 2
    try:
        settings = settings_type(**json.loads(argv[1]))
        die_with_parent(settings.parent_pid)
        service = service_type(settings)
    except (TypeError, ValueError, *start_errors) as exc:
        report("error", message=f"could not start: {exc}", fatal=True)
        return 1
    return service.run()
