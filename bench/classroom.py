"""Section `classroom`: the classroom stack under a class of learners, on this machine.

The stack as the classroom runs it, on loopback and without Docker, by the suite's own harness
(tests/harness): a 3-broker cluster (ports 64792+), PostgreSQL, Redis, the lab runner as its own
process (`runworker lab-runner`) and two daphnes (LAB_RUNNER_EMBEDDED=0, debug off as in compose).
An instructor logs in and creates a classroom; BENCH_CLASSROOM_LEARNERS learners (30) join in
batches, each adds 3 consumers (real NotificationService processes, the runner's children) and
keeps the lab page open: most as a websocket client that answers every push with "drawn" as the
page does, BENCH_CLASSROOM_CHROMIUM (3) in real Chromium pages. Learners alternate between the
two daphnes; the instructor's dashboard is open on the second.

The bench produces straight to every lab's topic, 5 OrderCreated a second each (acks=all, evenly
spread), as any other client may. Over a window of BENCH_CLASSROOM_SECONDS (60) it measures:

- Kafka → learner screen: a box's arrival on the learner's socket (or in the Chromium page's DOM)
  minus the record's CreateTime (the bench and the pages share this machine's clock);
- learner action → dashboard: a learner begins a lesson (the form post), until the instructor's
  roster row, read from the dashboard's socket, names it;
- memory (RSS sampled every 10 s; PSS, which counts shared pages once, after the window) and
  CPU-seconds of each kind of process of the stack, Chromium and the bench's own process apart,
  and how many of their threads were ready to run (sampled every 5 s).

After the window production stops, and the section waits (up to DRAIN_TIMEOUT_S) until every
screen shows every record its lab got in the window: the slowest boxes are counted too, and the
ones that never come are reported. Nothing is asserted about durations.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from bench.cluster import REPO_LIBS, stop_and_verify
from bench.lab import OBSERVER_JS, chromium_processes
from bench.report import Figure, load_average, percentile, progress
from kafkalab.kafka.local_cluster import LocalCluster, kafka_version
from kafkalab.labs import events
from tests.harness.browser import VIEWPORT, launch_chromium
from tests.harness.postgres import PostgresServer
from tests.harness.redis import RedisServer
from tests.harness.server import LabRunnerWorker, Server
from tests.harness.websocket import Websocket
from tests.integration.consumer_groups.classroom_support import (
    DashboardSocket,
    Instructor,
    create_staff,
    joined_lab,
    row_says,
)
from tests.integration.consumer_groups.support import Browser, Lab

# The dev cluster 9092+, the tests 29092+, the other sections 63092-64692+ (above the ephemeral range).
PORT_BASE = 64792
BROKERS = 3
LEARNERS = int(os.environ.get("BENCH_CLASSROOM_LEARNERS", "30"))
CHROMIUM_LEARNERS = min(LEARNERS, int(os.environ.get("BENCH_CLASSROOM_CHROMIUM", "3")))
WINDOW_SECONDS = float(os.environ.get("BENCH_CLASSROOM_SECONDS", "60"))
CONSUMERS_PER_LAB = 3
EVENTS_PER_SECOND = 5  # per learner's lab
JOIN_BATCH = 5  # learners joining at once
WARM_UP_SECONDS = 30.0  # production before the window: connections, group joins, the first pushes
DASHBOARD_SAMPLES = int(os.environ.get("BENCH_CLASSROOM_SAMPLES", "30"))
LESSONS = (("the-log", "1. The log"), ("keys-and-ordering", "2. Keys and ordering"))
SCREEN_GOAL_MS = 250  # p99, Kafka → learner screen
MEMORY_GOAL_GB = 8
# Bounds on waiting, not expectations of speed.
RUNNING_TIMEOUT_S = 180.0
ROW_TIMEOUT_S = 30.0
LANES_TIMEOUT_MS = 60_000
DRAIN_TIMEOUT_S = 90.0
MIB, GB = 2**20, 10**9
# The classroom as compose runs it: debug off; plain HTTP on loopback, so cookies not HTTPS-only.
WEB_ENV = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench-classroom-" + "x" * 40, "DJANGO_SECURE_COOKIES": "0"}
# An event box in a pushed fragment (a dead letter's box has its own lanes).
BOX = re.compile(
    r'<a class="event (?![^"]*event--dead-letter)[^>]*?data-partition="(\d+)" data-offset="(\d+)"[^>]*?data-ts="(\d+)"'
)
APPLICATION_FAILED = "Exception inside application"


def run() -> list[Figure]:
    if not kafka_version(REPO_LIBS):
        raise RuntimeError(f"No Kafka jars in {REPO_LIBS}: run `make setup` first.")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kafkalab-bench-classroom-") as tmp, contextlib.ExitStack() as stack:
        stack_ = start_stack(Path(tmp), stack)
        playwright = stack.enter_context(sync_playwright())
        chromium = launch_chromium(playwright)
        stack.callback(chromium.close)
        return measure(stack_, chromium)


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    cluster: LocalCluster
    postgres: PostgresServer
    redis: RedisServer
    webs: list[Server]
    runner: LabRunnerWorker

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers(BROKERS)

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Every live process of the stack, by kind."""
        kinds: dict[str, list[psutil.Process]] = {
            "brokers": [psutil.Process(b.pid) for b in self.cluster.status().brokers if b.pid],
            "postgres": _with_children(_postmaster_pid(self.postgres)),
            "redis": [psutil.Process(self.redis.pid)],
            # Apart: the second also serves the instructor's dashboard.
            "daphne 1": [self.webs[0].ps],
            "daphne 2 (+ dashboard)": [self.webs[1].ps],
            "runner": [psutil.Process(self.runner.pid)],
        }
        for child in kinds["runner"][0].children(recursive=True):
            kinds.setdefault(_runner_child_kind(child), []).append(child)
        return kinds


def start_stack(root: Path, stack: contextlib.ExitStack) -> Stack:
    """Everything started in order, each stopped (by its own pid) when the stack unwinds."""
    cluster = LocalCluster(root / "kafka", port_base=PORT_BASE, libs_dir=REPO_LIBS)
    progress(f"kafka up --brokers {BROKERS} on ports {PORT_BASE}+, PostgreSQL, Redis")
    stack.callback(stop_and_verify, cluster)
    cluster.up(BROKERS)
    postgres = stack.enter_context(PostgresServer())
    redis = stack.enter_context(RedisServer())
    web = {"database_url": postgres.url, "REDIS_URL": redis.url, "LAB_RUNNER_EMBEDDED": "0", **WEB_ENV}
    progress("two daphnes (migrating once) and the lab runner")
    web_a = stack.enter_context(Server(root / "web-a", cluster, **web))
    web_b = stack.enter_context(Server(root / "web-b", cluster, migrated=True, **web))
    runner = LabRunnerWorker(
        root / "runner", cluster, database_url=postgres.url, redis_url=redis.url, KAFKALAB_SITE_URL=web_a.url, **WEB_ENV
    )
    stack.enter_context(runner)
    return Stack(cluster=cluster, postgres=postgres, redis=redis, webs=[web_a, web_b], runner=runner)


def _postmaster_pid(postgres: PostgresServer) -> int:
    return int((postgres.data / "postmaster.pid").read_text().split()[0])


def _with_children(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def _runner_child_kind(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        cmdline = " ".join(process.cmdline())
        for module, kind in (
            ("kafkalab.kafka.notification_service", "consumers"),
            ("kafkalab.kafka.group_probe", "group probes"),
        ):
            if module in cmdline:
                return kind
    return "runner's other children"


# --- learners -------------------------------------------------------------------------------


@dataclass
class Learner:
    number: int
    web: Server
    lab: Lab
    screen: ScreenSocket | None = None  # a websocket learner's page
    page: object | None = None  # a Chromium learner's page


class ScreenSocket:
    """A learner's lab page as a websocket client: each new box's arrival minus its CreateTime.
    It answers every push with "drawn" at once, as the page does once it has drawn it."""

    def __init__(self, server_url: str, lab: Lab) -> None:
        self.latencies: list[tuple[int, float]] = []  # (CreateTime, ms from it to arrival)
        self.seen: set[tuple[int, int]] = set()
        self.pushes = self.bytes = self.with_boxes = 0
        self.closed = False
        self._ready = threading.Event()
        self._socket = Websocket(
            server_url,
            f"/ws/labs/{lab.lab_id}/",
            session=lab.browser.cookie("sessionid"),
            on_text=self._on_text,
            on_close=self._on_close,
        )
        self._ready.set()

    def _on_text(self, text: str) -> None:
        now = time.time() * 1000
        boxes = BOX.findall(text)
        for partition, offset, created in boxes:
            where = int(partition), int(offset)
            if where not in self.seen:
                self.seen.add(where)
                self.latencies.append((int(created), now - int(created)))
        self.pushes, self.bytes, self.with_boxes = (
            self.pushes + 1,
            self.bytes + len(text),
            self.with_boxes + bool(boxes),
        )
        self._ready.wait(10)
        with contextlib.suppress(OSError):
            self._socket.send_frame(0x1, b"drawn")

    def _on_close(self, code: int | None) -> None:
        self.closed = True

    def close(self) -> None:
        self._socket.close()


def join_learners(stack: Stack, code: str, dashboard: DashboardSocket, chromium) -> tuple[list[Learner], list[float]]:
    """In batches: join, open the page, add the consumers; each batch waits until the dashboard
    shows every consumer of it running. Returns the learners, and each batch's seconds."""
    learners: list[Learner] = []
    batches: list[float] = []
    with ThreadPoolExecutor(max_workers=JOIN_BATCH) as pool:
        for first in range(0, LEARNERS, JOIN_BATCH):
            numbers = range(first + 1, min(LEARNERS, first + JOIN_BATCH) + 1)
            progress(f"learners {numbers[0]}–{numbers[-1]} of {LEARNERS} join and add {CONSUMERS_PER_LAB} consumers")
            started = time.perf_counter()
            joined = list(pool.map(lambda n: join_one(stack, code, n), numbers))
            for learner in joined:
                if learner.number <= CHROMIUM_LEARNERS:
                    learner.page = open_page(chromium, learner)  # Playwright: this thread only
            list(pool.map(add_consumers, joined))
            for learner in joined:
                dashboard.wait(
                    row_says(learner.lab, f"{CONSUMERS_PER_LAB} running"),
                    f"learner {learner.number}'s consumers running",
                    timeout=RUNNING_TIMEOUT_S,
                )
            batches.append(time.perf_counter() - started)
            learners += joined
    return learners, batches


def join_one(stack: Stack, code: str, number: int) -> Learner:
    web = stack.webs[(number - 1) % len(stack.webs)]
    lab = joined_lab(Browser(web.url), code, f"Learner {number:02d}")
    learner = Learner(number=number, web=web, lab=lab)
    if number > CHROMIUM_LEARNERS:
        learner.screen = ScreenSocket(web.url, lab)
    return learner


def add_consumers(learner: Learner) -> None:
    for _ in range(CONSUMERS_PER_LAB):
        learner.lab.add_consumer()


def open_page(chromium, learner: Learner):
    """The learner's lab page in a Chromium context of its own, with the learner's session."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEWPORT)
    cookies = [c for c in learner.lab.browser.cookies if c.name in ("sessionid", "csrftoken")]
    context.add_cookies([{"name": c.name, "value": c.value, "url": learner.web.url} for c in cookies])
    page = context.new_page()
    page.add_init_script(OBSERVER_JS)
    page.goto(learner.web.url + learner.lab.url())
    expect(page.locator(".lane[data-lane]")).not_to_have_count(0, timeout=LANES_TIMEOUT_MS)
    return page


# --- Kafka: the learners' events, and Kafka's own latency -----------------------------------


class Pacer:
    """EVENTS_PER_SECOND orders a second to every lab's topic, evenly spread, until stopped."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.topics = topics
        self.produced = self.failed = 0
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0}
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-classroom-pacer", daemon=True)
        self._thread.start()

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self.failed += 1

    def _run(self) -> None:
        rate = EVENTS_PER_SECOND * len(self.topics)
        started = time.perf_counter()
        n = 0
        while not self._stop.is_set():
            time.sleep(max(0.0, started + n / rate - time.perf_counter()))
            order = events.sample_order()
            self.producer.produce(
                self.topics[n % len(self.topics)],
                key=order["orderId"].encode(),
                value=events.encode(order),
                headers=events.headers_for("OrderCreated"),
                on_delivery=self._delivered,
            )
            self.producer.poll(0)
            n += 1
            self.produced = n

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.producer.flush(30)
        self.producer = None  # gone now, not once the brokers it would keep dialling have stopped


class KafkaReader:
    """A plain consumer of every lab's topic in the bench: the floor under the screen latency."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.rows: list[tuple[str, int, float]] = []  # (topic, CreateTime, ms from it to receipt)
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench-classroom-reader", "fetch.wait.max.ms": 20}
        )
        metadata = self._consumer.list_topics(timeout=10).topics
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_END) for topic in topics for p in metadata[topic].partitions]
        )
        self._thread = threading.Thread(target=self._run, name="bench-classroom-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.05)
            if message is not None and message.error() is None:
                created = message.timestamp()[1]
                self.rows.append((message.topic(), created, time.time() * 1000 - created))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


# --- the measurement ------------------------------------------------------------------------


@dataclass
class Usage:
    """CPU-seconds per kind of process between two moments, and the largest memory seen."""

    cpu_at_start: dict[int, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)  # bytes, at the sample with the largest total
    pss: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def cpu_of(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def rss_of(processes: list[psutil.Process]) -> int:
    rss = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            rss += process.memory_info().rss
    return rss


def pss_of(processes: list[psutil.Process]) -> int:
    """PSS reads smaps_rollup, which walks the page tables under the process's mmap lock and
    stalls a big JVM for a moment: taken once, after the window, never during it."""
    pss = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            pss += process.memory_full_info().pss
    return pss


def kinds_with_chromium(stack: Stack) -> dict[str, list[psutil.Process]]:
    return {
        **stack.processes(),
        "Chromium": chromium_processes(),
        "bench driver": [psutil.Process()],
    }


def sample_memory(stack: Stack, usage: Usage) -> None:
    kinds = kinds_with_chromium(stack)
    rss = {kind: rss_of(processes) for kind, processes in kinds.items()}
    total = sum(value for kind, value in rss.items() if kind not in NOT_THE_STACK)
    if total > sum(value for kind, value in usage.rss.items() if kind not in NOT_THE_STACK):
        usage.rss = rss
        usage.counts = {kind: len(processes) for kind, processes in kinds.items()}


def measure(stack: Stack, chromium) -> list[Figure]:
    web_a, web_b = stack.webs
    create_staff(web_b, "teacher")
    instructor = Instructor(web_b, "teacher")
    classroom = instructor.create_classroom("bench", learners=LEARNERS, consumers=CONSUMERS_PER_LAB)
    dashboard = DashboardSocket(web_b, classroom.classroom_id, session=instructor.browser.cookie("sessionid"))
    learners: list[Learner] = []
    try:
        ramp_started = time.perf_counter()
        learners, batches = join_learners(stack, classroom.code, dashboard, chromium)
        ramp_s = time.perf_counter() - ramp_started
        topics = [learner.lab.topic for learner in learners]
        progress(f"{EVENTS_PER_SECOND} events/s to each of {len(topics)} labs; warming up {WARM_UP_SECONDS:.0f} s")
        reader = KafkaReader(stack.bootstrap, topics)
        pacer = Pacer(stack.bootstrap, topics)
        try:
            try:
                time.sleep(WARM_UP_SECONDS)
                result = measure_window(stack, learners, dashboard)
            finally:
                pacer.stop()
            progress(
                f"production stopped; waiting up to {DRAIN_TIMEOUT_S:.0f} s for the window's boxes to reach every screen"
            )
            result.update(drain(learners, reader, result, produced=pacer.produced))
        finally:
            reader.stop()
        result.update(produced=pacer.produced, failed=pacer.failed)
        return figures_for(stack, learners, dashboard, result, ramp_s=ramp_s, batches=batches)
    finally:
        tear_down(stack, classroom, dashboard, learners)


def measure_window(stack: Stack, learners: list[Learner], dashboard: DashboardSocket) -> dict:
    """The window: CPU and memory of every process, and the dashboard samples meanwhile."""
    usage = Usage()
    kinds = kinds_with_chromium(stack)
    for processes in kinds.values():
        for process in processes:
            usage.cpu_at_start[process.pid] = cpu_of(process) or 0.0
    runner_children_at_start = psutil.Process(stack.runner.pid).cpu_times()
    system_at_start = psutil.cpu_times()
    pushes_at_start = dashboard.pushes
    traffic_at_start = socket_traffic(learners)
    busy_threads: dict[str, list[int]] = {}
    started_ms = time.time() * 1000
    started = time.perf_counter()
    progress(f"measuring for {WINDOW_SECONDS:.0f} s: {DASHBOARD_SAMPLES} lesson begins timed to the dashboard")
    sampler = threading.Event()
    memory_thread = threading.Thread(
        target=_sample_until, args=(stack, usage, busy_threads, sampler), name="bench-classroom-sampler", daemon=True
    )
    memory_thread.start()
    try:
        actions, frozen_at = time_actions(learners, dashboard, started)
    except BaseException:
        sampler.set()  # the stack is about to go: stop looking at its processes
        raise
    if (late := started + WINDOW_SECONDS - time.perf_counter()) < 0:
        progress(f"the dashboard samples ran {-late:.0f} s past the window")
    time.sleep(max(0.0, started + WINDOW_SECONDS - time.perf_counter()))
    window_s = time.perf_counter() - started
    ended_ms = time.time() * 1000
    traffic = [now - then for now, then in zip(socket_traffic(learners), traffic_at_start, strict=True)]
    for kind, processes in kinds.items():
        usage.cpu_seconds[kind] = sum(
            (now - usage.cpu_at_start[p.pid]) for p in processes if (now := cpu_of(p)) is not None
        )
    runner_children = psutil.Process(stack.runner.pid).cpu_times()
    usage.cpu_seconds["reaped children of the runner"] = (
        runner_children.children_user + runner_children.children_system
    ) - (runner_children_at_start.children_user + runner_children_at_start.children_system)
    system = psutil.cpu_times()
    busy = (sum(system) - system.idle - system.iowait) - (
        sum(system_at_start) - system_at_start.idle - system_at_start.iowait
    )
    sampler.set()
    memory_thread.join(timeout=60)
    usage.pss = {kind: pss_of(processes) for kind, processes in kinds_with_chromium(stack).items()}
    return {
        "window_s": window_s,
        "usage": usage,
        "system_busy_s": busy,
        "load": load_average(),
        "busy_threads": busy_threads,
        "actions": actions,
        "dashboard_pushes": dashboard.pushes - pushes_at_start,
        "dashboard_frozen_at": frozen_at,
        "traffic": traffic,
        "started_ms": started_ms,
        "ended_ms": ended_ms,
    }


def socket_traffic(learners: list[Learner]) -> tuple[int, int, int]:
    """Pushes, bytes and pushes carrying boxes, over every websocket learner's page."""
    screens = [learner.screen for learner in learners if learner.screen]
    return sum(s.pushes for s in screens), sum(s.bytes for s in screens), sum(s.with_boxes for s in screens)


def _sample_until(stack: Stack, usage: Usage, busy_threads: dict[str, list[int]], done: threading.Event) -> None:
    """Memory every 10 s; every 5 s, the threads ready to run (state R), per kind and in all."""
    for n in itertools.count():
        if n % 2 == 0:
            sample_memory(stack, usage)
        for kind, processes in kinds_with_chromium(stack).items():
            busy_threads.setdefault(kind, []).append(sum(runnable_threads(p.pid) for p in processes))
        busy_threads.setdefault("machine", []).append(procs_running())
        if done.wait(5):
            return


def runnable_threads(pid: int) -> int:
    running = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/stat") as stat:
                running += stat.read().rpartition(")")[2].split()[0] == "R"
    return running


def procs_running() -> int:
    """Threads ready to run on the whole machine, now (the load average is its moving mean)."""
    with open("/proc/stat") as stat:
        return next(int(line.split()[1]) for line in stat if line.startswith("procs_running"))


def drain(learners: list[Learner], reader: KafkaReader, window: dict, *, produced: int) -> dict:
    """Once production stopped: wait until every screen shows every record its lab got in the
    window (as Kafka holds them, read by the bench's reader), then take the latencies."""
    started_ms, ended_ms = window["started_ms"], window["ended_ms"]
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while len(reader.rows) < produced and time.monotonic() < deadline:
        time.sleep(0.5)
    expected = Counter(topic for topic, ts, _ in list(reader.rows) if started_ms <= ts <= ended_ms)

    def shown() -> dict[int, list[tuple[int, float]]]:
        return {
            learner.number: [(ts, ms) for ts, ms in screen_rows(learner) if started_ms <= ts <= ended_ms]
            for learner in learners
        }

    stopped = time.monotonic()
    rows = shown()
    while time.monotonic() < deadline and any(len(rows[n.number]) < expected[n.lab.topic] for n in learners):
        time.sleep(1)
        rows = shown()
    short = sum(max(0, expected[n.lab.topic] - len(rows[n.number])) for n in learners)
    kafka = [(ts, ms) for _, ts, ms in reader.rows if started_ms <= ts <= ended_ms]
    return {
        "screens": [row for n in learners if n.screen for row in rows[n.number]],
        "pages": [row for n in learners if n.page for row in rows[n.number]],
        "kafka": kafka,
        "expected": expected,
        "never_shown": short,
        "drained_s": time.monotonic() - stopped,
    }


def screen_rows(learner: Learner) -> list[tuple[int, float]]:
    if learner.screen is not None:
        return list(learner.screen.latencies)
    return [(ts, ms) for ts, ms, _ in learner.page.evaluate("() => window.__bench.latencies")]


def time_actions(
    learners: list[Learner], dashboard: DashboardSocket, started: float
) -> tuple[list[tuple[float, float]], float | None]:
    """Lesson begins spread over the window, each timed to the dashboard; and, if the dashboard
    stopped redrawing, how far into the window (the remaining samples are not taken)."""
    actions = []
    for n in range(DASHBOARD_SAMPLES):
        time.sleep(max(0.0, started + n * WINDOW_SECONDS / DASHBOARD_SAMPLES - time.perf_counter()))
        learner = learners[n % len(learners)]
        pushes_before = dashboard.pushes
        actions.append(time_lesson_begin(learner, dashboard, LESSONS[(n // len(learners)) % len(LESSONS)]))
        if actions[-1][1] == float("inf") and dashboard.pushes == pushes_before:
            # Not one redraw in ROW_TIMEOUT_S while every lab changes: more samples would only wait.
            frozen_at = time.perf_counter() - started - ROW_TIMEOUT_S
            progress(f"the dashboard stopped redrawing {frozen_at:.0f} s into the window; no more samples")
            return actions, frozen_at
    return actions, None


def time_lesson_begin(learner: Learner, dashboard: DashboardSocket, lesson: tuple[str, str]) -> tuple[float, float]:
    """A learner begins a lesson (the form post); ms until the response, and until the
    instructor's roster row names the lesson."""
    slug, shown = lesson
    started = time.perf_counter()
    response = learner.lab.browser.post(learner.lab.url(f"lessons/{slug}/begin/"), htmx=False)
    answered = time.perf_counter()
    if response.status != 200:
        raise RuntimeError(f"beginning {slug} answered {response.status}: {response.text[:300]}")
    try:
        dashboard.wait(row_says(learner.lab, shown), f"learner {learner.number} on {shown}", timeout=ROW_TIMEOUT_S)
    except AssertionError:
        return (answered - started) * 1000, float("inf")  # never shown: counted, not timed
    return (answered - started) * 1000, (time.perf_counter() - started) * 1000


def tear_down(stack: Stack, classroom, dashboard: DashboardSocket, learners: list[Learner]) -> None:
    """Pages and sockets closed, the classroom closed (the runner deletes its labs and stops their
    consumers); the servers themselves stop as the caller's stack unwinds."""
    progress("closing the classroom: its labs deleted, their consumers stopped")
    for learner in learners:
        if learner.screen is not None:
            learner.screen.close()
        if learner.page is not None:
            with contextlib.suppress(Exception):
                learner.page.context.close()
    dashboard.close()
    with contextlib.suppress(Exception):
        classroom.close()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while stack.processes().get("consumers") and time.monotonic() < deadline:
        time.sleep(1)
    left = stack.processes().get("consumers", [])
    if left:
        progress(f"{len(left)} consumer process(es) still running {DRAIN_TIMEOUT_S:.0f} s after close; killing them")
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()


# --- figures --------------------------------------------------------------------------------


def figures_for(
    stack: Stack, learners: list[Learner], dashboard, result: dict, *, ramp_s: float, batches
) -> list[Figure]:
    usage: Usage = result["usage"]
    window_s = result["window_s"]
    rows = {"websocket": result["screens"], "Chromium": result["pages"]}
    kafka = [ms for _, ms in result["kafka"]]
    expected = result["expected"]
    sockets = len([learner for learner in learners if learner.screen])
    stack_kinds = [kind for kind in usage.rss if kind not in NOT_THE_STACK]
    stack_rss = sum(usage.rss[kind] for kind in stack_kinds)
    stack_pss = sum(usage.pss[kind] for kind in stack_kinds)
    posts = [post for post, _ in result["actions"]]
    shown = [total for _, total in result["actions"] if total != float("inf")]
    cpu = usage.cpu_seconds
    stack_cpu = sum(seconds for kind, seconds in cpu.items() if kind not in NOT_THE_STACK)
    busy = {kind: sum(counts) / len(counts) for kind, counts in result["busy_threads"].items() if counts}
    never_shown = len(result["actions"]) - len(shown)
    pushes, pushed_bytes, with_boxes = result["traffic"]
    if keep := os.environ.get("BENCH_CLASSROOM_LOGS"):  # the raw samples, to look into afterwards
        Path(keep).mkdir(parents=True, exist_ok=True)
        raw = {k: result[k] for k in ("screens", "pages", "kafka", "actions", "started_ms", "ended_ms")}
        (Path(keep) / "samples.json").write_text(json.dumps(raw))
    drained = "every screen had them" if not result["never_shown"] else f"{result['never_shown']:,} boxes never shown"
    return [
        Figure(
            "learners joined",
            len(learners),
            "learners",
            f"{sockets} websocket clients, {len(learners) - sockets} Chromium pages; on 2 daphnes; dashboard open",
            digits=0,
        ),
        Figure(
            "consumer processes running",
            usage.counts.get("consumers", 0),
            "processes",
            f"{CONSUMERS_PER_LAB} per lab: NotificationService, children of the runner",
            digits=0,
        ),
        Figure(
            "ramp: all joined, consumers running",
            ramp_s,
            "s",
            f"batches of {JOIN_BATCH}: slowest {max(batches):.0f} s, last {batches[-1]:.0f} s",
        ),
        Figure(
            "events produced in the window",
            sum(expected.values()),
            "events",
            f"{EVENTS_PER_SECOND}/s per lab for {window_s:.0f} s after {WARM_UP_SECONDS:.0f} s warm-up; "
            f"{result['failed']} failed; {drained} {result['drained_s']:.0f} s after production stopped",
            digits=0,
        ),
        *(
            figure
            for kind, latencies in rows.items()
            for figure in latency_figures(f"Kafka → learner screen ({kind})", latencies, result)
        ),
        Figure(
            "Kafka alone p50",
            percentile(kafka, 50),
            "ms",
            f"p99 {percentile(kafka, 99):.0f} ms; first/last 10 s p50 {trend(result['kafka'], result)}: "
            "CreateTime → a plain consumer of every lab topic in the bench",
            digits=0,
        ),
        Figure("learner action → dashboard p50", percentile(shown, 50), "ms", digits=0),
        Figure(
            "learner action → dashboard p99",
            percentile(shown, 99),
            "ms",
            f"{len(result['actions'])} lesson begins ({never_shown} not shown within {ROW_TIMEOUT_S:.0f} s): "
            f"form post → roster row names it; the post alone p50 {percentile(posts, 50):.0f} / "
            f"p99 {percentile(posts, 99):.0f} ms",
            digits=0,
        ),
        Figure(
            "lab page pushes, per learner",
            pushes / max(1, sockets) / window_s,
            "pushes/s",
            f"{with_boxes / max(1, sockets) / window_s:.1f}/s with new boxes, the rest panels and lessons; "
            f"{pushed_bytes / max(1, sockets) / window_s / 1024:.1f} KiB/s (websocket learners)",
            digits=1,
        ),
        Figure(
            "dashboard pushes",
            result["dashboard_pushes"] / window_s,
            "pushes/s",
            "roster redrawn at most every CLASSROOM_ROSTER_INTERVAL"
            if result["dashboard_frozen_at"] is None
            else f"STOPPED redrawing {result['dashboard_frozen_at']:.0f} s into the window: no push for "
            f"{ROW_TIMEOUT_S:.0f} s after a learner's action, socket still open",
            digits=2,
        ),
        Figure(
            "stack RSS, total",
            stack_rss / GB,
            "GB",
            f"goal ≤ {MEMORY_GOAL_GB} GB: {'met' if stack_rss / GB <= MEMORY_GOAL_GB else 'NOT met'}; "
            f"PSS {stack_pss / GB:.2f} GB (shared pages counted once); RSS: the largest of samples every 10 s",
            digits=2,
        ),
        *(
            Figure(
                f"  RSS {kind}",
                usage.rss[kind] / MIB,
                "MiB",
                f"{usage.counts[kind]} process{'es' if usage.counts[kind] != 1 else ''}, PSS {usage.pss[kind] / MIB:.0f} MiB",
                digits=0,
            )
            for kind in sorted(stack_kinds, key=lambda k: -usage.rss[k])
        ),
        *(
            Figure(
                f"RSS {kind} (not the stack)",
                usage.rss[kind] / MIB,
                "MiB",
                f"{usage.counts[kind]} processes, PSS {usage.pss[kind] / MIB:.0f} MiB",
                digits=0,
            )
            for kind in NOT_THE_STACK
        ),
        Figure(
            "stack CPU",
            stack_cpu / window_s,
            "cores",
            f"CPU-s per s over the window, of {psutil.cpu_count(logical=True)}; the machine was busy "
            f"{result['system_busy_s'] / window_s:.2f} cores (everything: Chromium, the bench, short-lived processes)",
            digits=2,
        ),
        *(
            Figure(f"  CPU {kind}", cpu[kind] / window_s, "cores", _busy_note(busy, kind), digits=2)
            for kind in sorted(cpu, key=lambda k: -cpu[k])
            if kind not in NOT_THE_STACK
        ),
        *(
            Figure(f"CPU {kind} (not the stack)", cpu[kind] / window_s, "cores", _busy_note(busy, kind), digits=2)
            for kind in NOT_THE_STACK
        ),
        Figure(
            "threads ready to run",
            busy.get("machine", float("nan")),
            "threads",
            f"mean of samples every 5 s, whole machine (2 cores run 2 at once); {result['load']} at the window's end",
            digits=1,
        ),
        *log_figures(stack),
    ]


NOT_THE_STACK = ("Chromium", "bench driver")


def _busy_note(busy: dict[str, float], kind: str) -> str:
    return f"{busy[kind]:.1f} threads ready to run, on average" if kind in busy else ""


def trend(rows: list[tuple[int, float]], window: dict) -> str:
    """p50 of the records created in the window's first 10 s, and of those in its last 10 s."""
    first = [ms for ts, ms in rows if ts < window["started_ms"] + 10_000]
    last = [ms for ts, ms in rows if ts > window["ended_ms"] - 10_000]
    return f"{percentile(first, 50):.0f} → {percentile(last, 50):.0f} ms"


def latency_figures(label: str, rows: list[tuple[int, float]], result: dict) -> list[Figure]:
    if not rows:
        return []
    latencies = [ms for _, ms in rows]
    p99 = percentile(latencies, 99)
    verdict = "met" if p99 <= SCREEN_GOAL_MS else f"NOT met, by {p99 - SCREEN_GOAL_MS:.0f} ms"
    return [
        Figure(
            f"{label} p50",
            percentile(latencies, 50),
            "ms",
            f"{len(latencies):,} boxes; first/last 10 s of the window p50 {trend(rows, result)}",
            digits=0,
        ),
        Figure(
            f"{label} p99",
            p99,
            "ms",
            f"goal ≤ {SCREEN_GOAL_MS} ms: {verdict}; p95 {percentile(latencies, 95):.0f}, max {max(latencies):.0f} ms",
            digits=0,
        ),
    ]


def log_figures(stack: Stack) -> list[Figure]:
    logs = {"runner": stack.runner.log_path, **{f"web {i + 1}": w.log_path for i, w in enumerate(stack.webs)}}
    figures = []
    for name, path in logs.items():
        text = path.read_text(errors="replace") if path.exists() else ""
        failed, tracebacks = text.count(APPLICATION_FAILED), text.count("Traceback")
        warnings = sum(1 for line in text.splitlines() if " WARNING " in line or " ERROR " in line)
        # channels_redis drops a group message to a channel holding `capacity` unread ones, and says so at INFO.
        dropped, full = text.count("over capacity in group"), text.count("ChannelFull")
        note = (
            f"{failed} '{APPLICATION_FAILED}', {warnings} WARNING/ERROR lines; "
            f"{dropped} 'over capacity' (group messages dropped), {full} ChannelFull"
        )
        figures.append(Figure(f"log of {name}: tracebacks", tracebacks, "", note, digits=0))
        if keep := os.environ.get("BENCH_CLASSROOM_LOGS"):
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"{name.replace(' ', '-')}.log").write_text(text)
    return figures
