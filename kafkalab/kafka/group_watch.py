"""Group state through kafkalab.kafka.group_probe, a process of its own (see there why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.groups import GroupDescription, GroupMember
from kafkalab.kafka.topics import PartitionState

RESTART_BACKOFF_SECONDS = 2.0


@dataclass(frozen=True)
class GroupSnapshot:
    partitions: list[PartitionState]  # leader, replicas, ISR and offsets of each partition
    group: GroupDescription | None
    committed: dict[int, int] | None
    error: str | None


def _snapshot(line: bytes) -> GroupSnapshot:
    data = json.loads(line)
    group = data.get("group")
    if group is not None:
        group = GroupDescription(**{**group, "members": [GroupMember(**m) for m in group["members"]]})
    committed = data.get("committed")
    return GroupSnapshot(
        partitions=[PartitionState(**p) for p in data.get("partitions", [])],
        group=group,
        committed=None if committed is None else {int(p): o for p, o in committed.items()},
        error=data.get("error"),
    )


def _command(mode: str, params: dict) -> list[str]:
    return [sys.executable, "-m", "kafkalab.kafka.group_probe", mode, json.dumps(params)]


class GroupWatch:
    """Keeps a probe running and hands out its latest snapshot without ever blocking."""

    def __init__(self, *, client: dict, group_id: str, topic: str, interval: float = 0.5) -> None:
        self._params = {
            "client": client,
            "group_id": group_id,
            "topic": topic,
            "interval": interval,
            "parent_pid": os.getpid(),
        }
        self._process: subprocess.Popen | None = None
        self._started_at = 0.0
        self._buffer = b""
        self._latest: GroupSnapshot | None = None

    def latest(self) -> GroupSnapshot | None:
        self._ensure_running()
        if self._process is not None:
            self._read_available()
        return self._latest

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _ensure_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if self._process is not None:
            self._process.wait()
            self._latest = GroupSnapshot([], None, None, "the group probe stopped; starting another")
        if time.monotonic() - self._started_at < RESTART_BACKOFF_SECONDS:
            self._process = None
            return
        self._started_at = time.monotonic()
        self._buffer = b""
        self._process = subprocess.Popen(
            _command("watch", self._params), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        os.set_blocking(self._process.stdout.fileno(), False)

    def _read_available(self) -> None:
        while True:
            try:
                chunk = os.read(self._process.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in reversed(lines):
            if line.strip():
                self._latest = _snapshot(line)
                break


def _run_once(mode: str, params: dict, *, timeout: float) -> bytes:
    try:
        result = subprocess.run(_command(mode, params), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailable(f"Kafka did not answer about the group within {timeout:.0f}s") from exc
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        raise KafkaUnavailable("Asking Kafka about the group failed (a broker may have just gone down)")
    return lines[-1]


def group_delete_isolated(*, client: dict, group_id: str, timeout: float = 30.0) -> None:
    """Delete a group (and its committed offsets) from a probe process."""
    answer = json.loads(_run_once("delete", {"client": client, "group_id": group_id}, timeout=timeout))
    if answer.get("refused"):
        raise KafkaRefused(answer["refused"], code="NON_EMPTY_GROUP")
    if answer.get("error"):
        raise KafkaUnavailable(answer["error"])
