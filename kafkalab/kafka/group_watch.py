"""Group state through kafkalab.kafka.group_probe, a process of its own (see there why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
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


def _snapshot(data: dict) -> GroupSnapshot:
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


class ProbeHub:
    """One probe process for every lab this process watches (see group_probe), and a thread that
    reads its snapshots. Observers register their lab and take its latest snapshot without ever
    blocking; if the probe dies, another starts and is told the labs again."""

    def __init__(self, *, client: dict, interval: float = 0.5) -> None:
        self._params = {"client": client, "interval": interval, "parent_pid": os.getpid()}
        self._lock = threading.Lock()
        self._labs: dict[str, str] = {}  # group id → topic
        # Watchers per group: after a reset, a lab's new observer watches before the old one has
        # unwatched, and the old one's unwatch must not end the new one's watch.
        self._watchers: Counter[str] = Counter()
        self._latest: dict[str, GroupSnapshot] = {}
        self._snapshots_read = 0  # lines of snapshots read so far: fresh() waits on it
        self._new_snapshots = threading.Condition(self._lock)
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def watch(self, *, group_id: str, topic: str) -> None:
        with self._lock:
            self._watchers[group_id] += 1
            self._labs[group_id] = topic
            self._ensure_running()
            self._send_labs()

    def unwatch(self, group_id: str) -> None:
        with self._lock:
            self._watchers[group_id] -= 1
            if self._watchers[group_id] > 0:
                return
            del self._watchers[group_id]
            self._labs.pop(group_id, None)
            self._latest.pop(group_id, None)
            if self._process is not None:
                self._send_labs()

    @property
    def pid(self) -> int | None:
        """The probe process serving every watched lab now, if one runs."""
        with self._lock:
            running = self._process is not None and self._process.poll() is None
            return self._process.pid if running else None

    def latest(self, group_id: str) -> GroupSnapshot | None:
        with self._lock:
            self._ensure_running()
            return self._latest.get(group_id)

    def fresh(self, group_id: str, *, timeout: float) -> GroupSnapshot | None:
        """The first snapshot of the group whose questions were all asked after this call: the
        second one read from now on (the first may have been asked just before). None when the
        probe gave none in time."""
        with self._lock:
            self._ensure_running()
            wanted = self._snapshots_read + 2
            if not self._new_snapshots.wait_for(lambda: self._snapshots_read >= wanted, timeout):
                return None
            return self._latest.get(group_id)

    def close(self) -> None:
        """Stop watching everything and end the probe process."""
        with self._lock:
            self._labs.clear()
            self._watchers.clear()
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait()

    def _ensure_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if self._reader is not None and self._reader.is_alive():
            return  # it just died: the reader restarts it after a pause
        self._process = subprocess.Popen(
            _command("watch", self._params), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, args=(self._process,), name="group-probe", daemon=True)
        self._reader.start()
        self._send_labs()

    def _send_labs(self) -> None:
        try:
            self._process.stdin.write(json.dumps({"labs": self._labs}) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):  # it died; the reader notices and a new one starts
            pass

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            if not line.strip():
                continue
            try:
                found = {group_id: _snapshot(data) for group_id, data in json.loads(line)["snapshots"].items()}
            except (ValueError, KeyError, TypeError):
                continue
            with self._lock:
                self._latest.update({g: snap for g, snap in found.items() if g in self._labs})
                self._snapshots_read += 1
                self._new_snapshots.notify_all()
        process.wait()
        with self._lock:
            stopped = GroupSnapshot([], None, None, "the group probe stopped; starting another")
            self._latest = dict.fromkeys(self._labs, stopped)
        time.sleep(RESTART_BACKOFF_SECONDS)
        with self._lock:
            self._reader = None
            if self._labs:
                self._ensure_running()


_hubs: dict[str, ProbeHub] = {}
_hubs_lock = threading.Lock()


def probe_hub(client: dict) -> ProbeHub:
    """The process's probe for this cluster configuration."""
    key = repr(sorted(client.items()))
    with _hubs_lock:
        if key not in _hubs:
            _hubs[key] = ProbeHub(client=client)
        return _hubs[key]


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
