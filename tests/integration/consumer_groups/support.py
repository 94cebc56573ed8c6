"""Driving a real kafkalab server as a learner's browser does, and watching what it starts.

- `Server` (the harness's daphne) and `Browser` (HTTP with the session and CSRF cookies a
  browser keeps) come from tests/harness; `Lab`: one learner's lab.
- `LabSocket`: the lab's websocket (tests/harness/websocket.py), read as the page reads it
  (consumer cards, outbox, lanes).
- `service_processes`: the consumer processes on this machine that this test run started.

Everything here only observes or drives the app from outside: Kafka's own view comes from an
AdminClient in the test, not from the app's state.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import psutil
from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafkalab.kafka.consumer_config import ConsumerConfig
from kafkalab.kafka.group_watch import GroupSnapshot, ProbeHub
from kafkalab.kafka.groups import GroupDescription
from tests.harness.http_browser import Browser as Browser  # re-exported: the tests import it from here
from tests.harness.http_browser import Response
from tests.harness.server import SERVER_PIDS
from tests.harness.server import Server as Server  # re-exported: the tests import it from here
from tests.harness.websocket import Websocket

T = TypeVar("T")

# Bounds on waiting, not expectations of speed: the machine may be busy with other test runs.
WAIT = 60.0
SERVICE_MODULE = "kafkalab.kafka.notification_service"
PARTITIONS = 4
# The test's own group probe asks this often, so a fresh answer takes well under a second (each
# round is a dozen requests to the brokers the whole suite shares: not much more often).
PROBE_INTERVAL = 0.4
GROUP_ANSWER_TIMEOUT = 30.0


def wait_for(probe: Callable[[], T], what: str, *, timeout: float = WAIT, every: float = 0.2) -> T:
    """The first truthy value `probe` returns; fails when none comes within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f}s (last seen: {value!r})"
        time.sleep(every)


STARTING = re.compile(r"Starting (c\d+)…")
STARTING_BILLING = re.compile(r"Starting (b\d+)")
ONE_ORDER = re.compile(r"partition <strong>(\d+)</strong>, offset <strong>(\d+)</strong>")


def consumer_form(**config: object) -> dict[str, str]:
    """The "Add consumer" form as the page posts it: the lab defaults, a short session timeout."""
    fields: dict[str, object] = {**ConsumerConfig().as_dict(), "session_timeout_ms": 6000, **config}
    # An unticked checkbox is simply absent from a form post.
    return {name: "on" if value is True else str(value) for name, value in fields.items() if value is not False}


@dataclass
class Lab:
    """A learner's lab on a server, driven through the page's own URLs."""

    browser: Browser
    lab_id: int

    @classmethod
    def open(cls, browser: Browser) -> Lab:
        """The learner's first visit: a new lab of their own (and the CSRF cookie)."""
        return cls(browser=browser, lab_id=browser.start_lab())

    @property
    def topic(self) -> str:
        return f"lab-{self.lab_id}.orders"

    @property
    def group_id(self) -> str:
        return f"lab-{self.lab_id}.order-notifications"

    def url(self, path: str = "") -> str:
        return f"/labs/{self.lab_id}/{path}"

    def state(self) -> dict:
        response = self.browser.get(self.url("state.json"))
        assert response.status == 200, response.text[:500]
        return json.loads(response.text)

    def consumers(self) -> dict[str, dict]:
        return {c["name"]: c for c in self.state()["consumers"]}

    def add_consumer(self, **config: object) -> str:
        response = self.browser.post(self.url("consumers/"), consumer_form(**config))
        assert response.status == 200, response.text[:1000]
        match = STARTING.search(response.text)
        assert match, response.text[:1000]
        return match.group(1)

    def act(self, name: str, action: str) -> Response:
        """Stop, Kill or Restart, as the buttons on a consumer card post them."""
        return self.browser.post(self.url(f"consumers/{name}/{action}/"))

    def start_billing(self, **form: object) -> str:
        """Start BillingService as its panel's form posts it; the new instance's name."""
        response = self.browser.post(self.url("billing/"), {k: str(v) for k, v in form.items()})
        assert response.status == 200, response.text[:1000]
        match = STARTING_BILLING.search(response.text)
        assert match, response.text[:1000]
        return match.group(1)

    def billing_act(self, name: str, action: str) -> str:
        """Stop, Kill, Restart or Start a twin, as the buttons on a BillingService card post them."""
        response = self.browser.post(self.url(f"billing/{name}/{action}/"))
        assert response.status == 200, response.text[:1000]
        return response.text

    def billing_instances(self) -> dict[str, dict]:
        return {b["name"]: b for b in self.state()["billing"]["instances"]}

    def burst(self, count: int) -> Response:
        response = self.browser.post(self.url("orders/burst/"), {"count": count, "key_strategy": "orderId"})
        assert response.status == 200, response.text[:1000]
        return response

    def order(self) -> tuple[int, int]:
        """One random order; (partition, offset) where Kafka acknowledged it."""
        match = ONE_ORDER.search(self.burst(1).text)
        assert match, "the outcome names the partition and offset"
        return int(match.group(1)), int(match.group(2))

    def reset(self) -> str | None:
        """Reset lab: its consumers are reaped, its topic and group made afresh. None when done,
        else the reason the page gives (a killed member keeps the group until its timeout)."""
        response = self.browser.post(self.url("reset/"))  # redirected back to the lab page
        assert response.status == 200, response.text[:500]
        return None if "Lab reset" in response.text else _alert(response.text)

    def rebalances_since(self, since: float) -> list[dict]:
        """Rebalances on the timeline that began after `since` (a time.time()), oldest first."""
        found = [r for r in self.state()["rebalances"] if datetime.fromisoformat(r["started_at"]).timestamp() >= since]
        return sorted(found, key=lambda r: r["started_at"])

    def changes_since(self, since: float) -> dict[str, dict[str, list[int]]]:
        """Per consumer, every partition it revoked, was assigned or lost in those rebalances."""
        merged: dict[str, dict[str, set[int]]] = {}
        for rebalance in self.rebalances_since(since):
            for change in rebalance["changes"]:
                entry = merged.setdefault(change["consumer"], {"revoked": set(), "assigned": set(), "lost": set()})
                for kind, partitions in entry.items():
                    partitions.update(change[kind])
        return {name: {kind: sorted(parts) for kind, parts in kinds.items()} for name, kinds in merged.items()}

    def wait_rebalance(self, trigger: str) -> dict:
        """The newest finished rebalance whose trigger mentions `trigger`."""
        return wait_for(
            lambda: next((r for r in self.state()["rebalances"] if trigger in r["trigger"]), None),
            f"a rebalance triggered by {trigger!r} on the timeline",
        )

    def wait_status(self, name: str, status: str) -> dict:
        return wait_for(
            lambda: (c := self.consumers().get(name)) and c["status"] == status and c,
            f"{name} becoming {status}",
        )


def _alert(page: str) -> str:
    match = re.search(r'class="alert">(.*?)<', page, re.S)
    return match.group(1).strip() if match else page[:300]


# --- Kafka's own view of the group ------------------------------------------------------------


class GroupView:
    """The lab's group as Kafka's coordinator describes it, asked by the test itself.

    Through a group probe process of the test's own, as the app asks: librdkafka's coordinator
    code can crash the process that makes group calls, and that must not be a pytest worker."""

    def __init__(self, bootstrap: str, lab: Lab) -> None:
        self.bootstrap = bootstrap
        self.lab = lab
        self.probe = ProbeHub(client={"bootstrap.servers": bootstrap}, interval=PROBE_INTERVAL)
        self.probe.watch(group_id=lab.group_id, topic=lab.topic)

    def close(self) -> None:
        self.probe.close()

    def _snapshot(self) -> GroupSnapshot | None:
        snapshot = self.probe.fresh(self.lab.group_id, timeout=GROUP_ANSWER_TIMEOUT)
        return None if snapshot is None or snapshot.error else snapshot

    def describe(self) -> GroupDescription | None:
        snapshot = self._snapshot()
        return snapshot.group if snapshot else None

    def committed(self) -> dict[int, int]:
        snapshot = self._snapshot()
        return dict(snapshot.committed or {}) if snapshot else {}

    def log_ends(self) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "kafkalab-tests-unused"})
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(self.lab.topic, p), timeout=10, cached=False)[1]
                for p in range(PARTITIONS)
            }
        finally:
            consumer.close()

    def assignment(self) -> dict[str, list[int]] | None:
        """consumer name → partitions, once the group is Stable; None while it rebalances."""
        group = self.describe()
        if group is None or group.state != "STABLE":
            return None
        return {m.client_id: m.partitions for m in group.members}

    def wait_assignment(self, check: Callable[[dict[str, list[int]]], bool], what: str, **kw) -> dict[str, list[int]]:
        return wait_for(lambda: (a := self.assignment()) is not None and check(a) and a, what, **kw)


def split_evenly(names: set[str], per_member: int = 2) -> Callable[[dict[str, list[int]]], bool]:
    def check(assignment: dict[str, list[int]]) -> bool:
        owned = sorted(p for parts in assignment.values() for p in parts)
        return (
            set(assignment) == names
            and all(len(parts) == per_member for parts in assignment.values())
            and owned == list(range(PARTITIONS))
        )

    return check


# --- The lab's websocket ----------------------------------------------------------------------

CARD = re.compile(r'data-consumer="([^"]+)" data-partitions="([^"]*)" data-status="([^"]+)"')
LANE_META = re.compile(r'id="lane-(\d+)-meta" data-committed="(\d*)" data-position="(\d*)"')
STEP = re.compile(r'data-step="([^"]+)" data-step-status="([^"]+)"')
OUTBOX = re.compile(r'data-sent="(\d+)".*?data-duplicates="(\d+)".*?data-missed="(\d+)"', re.S)
MISSED_REASON = re.compile(r'data-missed-reason="([^"]*)"')
# An event box's opening tag, its transaction mark, a COMMIT/ABORT marker, an orders lane's offsets.
BOX = re.compile(r'<a class="event [^>]*?data-partition="(\d+)" data-offset="(\d+)"[^>]*>')
TXN = re.compile(r'data-txn="([a-z]+)"')
MARKER = re.compile(r'data-control="([a-z]+)" data-partition="(\d+)" data-offset="(\d+)"')
LANE_ENDS = re.compile(r'id="lane-(\d+)-meta"[^>]*?data-log-end="(\d*)" data-lso="(\d*)"')


@dataclass(frozen=True)
class Card:
    name: str
    partitions: list[int]
    status: str
    html: str


@dataclass
class PageState:
    """What the lab page shows, rebuilt from the fragments the server pushed."""

    cards: dict[str, Card] = field(default_factory=dict)
    positions: dict[int, int | None] = field(default_factory=dict)
    outbox: tuple[int, int, int] | None = None  # sent, duplicates, missed
    missed_reasons: list[str] = field(default_factory=list)  # of the skipped records the outbox lists
    steps: dict[str, str] = field(default_factory=dict)  # lesson step → its status
    # Orders boxes by (partition, offset) → their data-txn ("open", "aborted", or None).
    boxes: dict[tuple[int, int], str | None] = field(default_factory=dict)
    markers: dict[tuple[int, int], str] = field(default_factory=dict)  # (partition, offset) → commit/abort
    ends: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # partition → (log end, LSO)
    notice: str = ""  # a classroom's banner and "Follow me" link, as last pushed
    closed_reason: str = ""  # why the server closed the page, when it said so

    def apply(self, fragment: str) -> None:
        self._apply_lanes(fragment)
        if 'id="classroom-notice"' in fragment:
            self.notice = fragment
        if 'id="lab-closed"' in fragment:
            self.closed_reason = fragment
        if 'id="group-live"' in fragment:
            live = fragment.split('id="rebalances"')[0]
            chunks = live.split('<article class="consumer-card')[1:]
            self.cards = {}
            for chunk in chunks:
                if (found := CARD.search(chunk)) is None:  # a BillingService card pushed alongside
                    continue
                name, parts, status = found.groups()
                html = chunk.split("</article>")[0]
                self.cards[name] = Card(name, [int(p) for p in parts.split(",") if p], status, html)
        for partition, _, position in LANE_META.findall(fragment):
            self.positions[int(partition)] = int(position) if position else None
        if 'id="lesson-panel"' in fragment:
            self.steps = dict(STEP.findall(fragment))
        if (outbox := OUTBOX.search(fragment)) is not None:
            self.outbox = tuple(int(n) for n in outbox.groups())
            self.missed_reasons = MISSED_REASON.findall(fragment)

    def _apply_lanes(self, fragment: str) -> None:
        if 'id="lanes"' in fragment:  # the whole lanes, afresh
            self.boxes, self.markers = {}, {}
        for tag in BOX.finditer(fragment):
            if "event--dead-letter" not in tag.group(0):  # the dead-letter topic's lanes have their own
                txn = TXN.search(tag.group(0))
                self.boxes[int(tag.group(1)), int(tag.group(2))] = txn.group(1) if txn else None
        for control, partition, offset in MARKER.findall(fragment):
            self.markers[int(partition), int(offset)] = control
        for partition, log_end, lso in LANE_ENDS.findall(fragment):
            self.ends[int(partition)] = (int(log_end) if log_end else None, int(lso) if lso else None)


class LabSocket:
    """The lab's websocket, as the page opens it, read into a PageState."""

    def __init__(self, server_url: str, lab: Lab, *, share: str | None = None) -> None:
        """The owner's socket; with `share`, the socket of a page opened from the share link."""
        self.page = PageState()
        self._changed = threading.Condition()
        self._closed = False
        self.close_code: int | None = None
        query = f"?share={share}" if share else ""
        self._socket = Websocket(
            server_url,
            f"/ws/labs/{lab.lab_id}/{query}",
            session=lab.browser.cookie("sessionid"),
            on_text=self._apply,
            on_close=self._closing,
        )

    def wait(self, probe: Callable[[PageState], T], what: str, *, timeout: float = WAIT) -> T:
        """The first truthy value `probe` returns for the page as pushed so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = probe(self.page)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                assert remaining > 0 and not self._closed, f"the page never showed {what} (cards: {self.page.cards})"
                self._changed.wait(min(remaining, 0.5))

    def wait_closed(self, *, timeout: float = WAIT) -> int | None:
        """The close code, once the server closed the socket."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._closed:
                remaining = deadline - time.monotonic()
                assert remaining > 0, "the server did not close the socket"
                self._changed.wait(min(remaining, 0.5))
        return self.close_code

    def __enter__(self) -> LabSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close()

    def _apply(self, text: str) -> None:
        with self._changed:
            self.page.apply(text)
            self._changed.notify_all()

    def _closing(self, code: int | None) -> None:
        with self._changed:
            self._closed, self.close_code = True, code
            self._changed.notify_all()


# --- Consumer processes -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceProcess:
    pid: int
    name: str | None
    group_id: str | None
    parent_pid: int | None


def service_processes() -> list[ServiceProcess]:
    """Live NotificationService processes that this test run started: children of this process
    or of its children, or started by one of our daphnes (even after that daphne died)."""
    me = psutil.Process()
    ours = {me.pid, *SERVER_PIDS, *(child.pid for child in me.children(recursive=True))}
    found = []
    for process in psutil.process_iter(["pid", "ppid", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if SERVICE_MODULE not in cmdline or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            settings = json.loads(cmdline[-1])
        except ValueError:
            settings = {}
        if process.info["ppid"] in ours or settings.get("parent_pid") in ours:
            found.append(
                ServiceProcess(
                    process.info["pid"], settings.get("name"), settings.get("group_id"), settings.get("parent_pid")
                )
            )
    return found


def processes_of(lab: Lab) -> list[ServiceProcess]:
    return [p for p in service_processes() if p.group_id == lab.group_id]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def end_processes(processes: list[ServiceProcess]) -> None:
    """Last resort after a failed check: never leave a consumer of ours running."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(process.pid).kill()


def listed_offsets(admin: AdminClient, topic: str, spec: OffsetSpec, level: IsolationLevel) -> dict[int, int]:
    """Per partition of `topic`, the offset Kafka lists for `spec` at `level`."""
    partitions = [TopicPartition(topic, p) for p in admin.list_topics(topic, timeout=10).topics[topic].partitions]
    found = admin.list_offsets(dict.fromkeys(partitions, spec), isolation_level=level)
    return {tp.partition: future.result(timeout=30).offset for tp, future in found.items()}


def open_transaction_in(admin: AdminClient, topic: str) -> bool:
    """Kafka holds records of a transaction not decided yet: a partition's LSO is behind its log end."""
    ends = listed_offsets(admin, topic, OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED)
    last_stable = listed_offsets(admin, topic, OffsetSpec.latest(), IsolationLevel.READ_COMMITTED)
    return any(last_stable[p] < end for p, end in ends.items())
