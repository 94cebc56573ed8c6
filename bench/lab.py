"""Section `lab`: from an event's Kafka timestamp to its box in a real Chromium page.

A 3-broker cluster (ports 63292+) and a daphne of its own; the bench process produces straight
to the lab's topic, as any other client would, at 20 events/s and then at 5,000 events/s. A
MutationObserver in the page records, for each new box, Date.now() minus the record's
CreateTime (browser and producer share this machine's clock).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

import psutil
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from bench.report import Figure, percentile, progress
from bench.server import lab_stack
from tests.harness.browser import VIEWPORT, launch_chromium
from tests.harness.lab_page import open_lab
from tests.harness.server import Server

# The dev cluster uses 9092-9097, the tests 29092-29097 and the cluster section 63092+ (above the ephemeral port range).
PORT_BASE = 63292
BROKERS = 3
# (events per second, seconds of production, producer linger.ms)
RUNS = ((20, 15.0, 0), (1000, 10.0, 5), (5000, 10.0, 5))
WARM_UP_RATE, WARM_UP_SECONDS = 20, 5.0
PACE_STEP = 0.005  # seconds between pacing checks: small batches, not one burst per second
LATENCY_TARGET_MS = 60  # p99 at 20 events/s on a quiet machine
CATCH_UP_TARGET_S = 1.0  # "after a burst ends, the page is current within a second"
CATCH_UP_DEADLINE_S = 60.0
MIB = 2**20

# Installed before any page script runs: one latency per box, the first time it is added.
OBSERVER_JS = """
window.__bench = { seen: new Set(), latencies: [] };
new MutationObserver((mutations) => {
  const now = Date.now();
  for (const mutation of mutations) {
    for (const node of mutation.addedNodes) {
      if (node.nodeType !== 1) continue;
      const boxes = node.matches('.event[data-ts]') ? [node] : node.querySelectorAll('.event[data-ts]');
      for (const box of boxes) {
        const id = box.dataset.partition + ':' + box.dataset.offset;
        if (window.__bench.seen.has(id)) continue;
        window.__bench.seen.add(id);
        window.__bench.latencies.push([Number(box.dataset.ts), now - Number(box.dataset.ts), id]);
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
// What a screen reader would hear (the lab's announcer), and how long the page was too busy to
// answer a key press (long tasks: 50 ms or more on the main thread).
window.__bench.announced = [];
window.__bench.longTasks = [];
document.addEventListener('DOMContentLoaded', () => {
  const region = document.getElementById('lab-announcer');
  if (region) new MutationObserver(() => window.__bench.announced.push(region.textContent))
    .observe(region, { childList: true, characterData: true, subtree: true });
});
new PerformanceObserver((list) => {
  for (const task of list.getEntries()) window.__bench.longTasks.push(task.duration);
}).observe({ type: 'longtask' });
"""

NEWEST_PER_LANE_JS = """() => Object.fromEntries([...document.querySelectorAll('.lane[data-lane]')].map(lane => {
  const boxes = lane.querySelectorAll('.event[data-offset]');
  return [lane.dataset.lane, boxes.length ? Number(boxes[boxes.length - 1].dataset.offset) : null];
}))"""


def run() -> list[Figure]:
    with lab_stack("lab", port_base=PORT_BASE, brokers=BROKERS) as (cluster, server):
        return measure(server, cluster.bootstrap_servers(BROKERS))


# --- the measurement ------------------------------------------------------------------------


@dataclass
class RunResult:
    rate: int
    seconds: float
    produced: int
    failed: int
    latencies_ms: list[float]
    final_second_ms: list[float]
    kafka_ms: list[float]
    added_ms: list[float]  # per record: box in the DOM minus the plain consumer's receipt
    catch_up_s: float | None
    server_cpu: float
    server_rss_mib: float
    browser_cpu: float
    ws_bytes_per_s: float
    ws_frames_per_s: float
    announcements: int
    long_tasks_ms: list[float]


def measure(server: Server, bootstrap: str) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(OBSERVER_JS)
            frames = FrameCounter()
            page.on("websocket", frames.attach)
            topic = open_lab(page, server.url)
            progress(f"lab page open on {topic}; warming up")
            reader = KafkaReader(bootstrap, topic)
            try:
                warm_up(page, bootstrap, topic)
                results = []
                for rate, seconds, linger_ms in RUNS:
                    progress(f"{rate} events/s for {seconds:.0f} s (linger.ms={linger_ms})")
                    results.append(one_run(page, server, reader, rate, seconds, linger_ms, frames))
            finally:
                reader.stop()
        finally:
            browser.close()
    return [figure for result in results for figure in figures_for(result)]


def warm_up(page, bootstrap: str, topic: str) -> None:
    """Records for a few seconds first, so that connections, caches and the brokers' freshly
    started JVMs are not what the first run measures."""
    producer = order_producer(bootstrap, linger_ms=0)
    paced_produce(producer, topic, WARM_UP_RATE, WARM_UP_SECONDS, [])
    producer.flush(30)
    wait_until_current(page, bootstrap, topic)
    page.evaluate("() => { window.__bench.latencies = []; }")


def one_run(page, server: Server, reader: KafkaReader, rate: int, seconds: float, linger_ms: int, frames):
    bootstrap, topic = reader.bootstrap, reader.topic
    producer = order_producer(bootstrap, linger_ms=linger_ms)
    failures = []
    page.evaluate(
        "() => { window.__bench.latencies = []; window.__bench.announced = []; window.__bench.longTasks = []; }"
    )
    frames.reset()
    chromium = chromium_processes()
    for process in [server.ps, *chromium]:
        process.cpu_percent(None)  # the first call only starts the interval
    started_ms = time.time() * 1000

    produced = paced_produce(producer, topic, rate, seconds, failures)
    last_produced_ms = time.time() * 1000
    producer.flush(30)
    server_cpu = server.ps.cpu_percent(None)
    browser_cpu = sum(_cpu(process) for process in chromium)

    current = wait_until_current(page, bootstrap, topic)
    rows = page.evaluate("() => window.__bench.latencies")  # [CreateTime, latency, "p:offset"] per new box
    heard = page.evaluate("() => ({ announced: window.__bench.announced.length, longTasks: window.__bench.longTasks })")
    last_box_ms = max((ts + latency for ts, latency, _ in rows), default=last_produced_ms)
    received = reader.received_ms()
    window_s = max(0.001, (last_box_ms - started_ms) / 1000)
    return RunResult(
        rate=rate,
        seconds=(last_produced_ms - started_ms) / 1000,
        produced=produced,
        failed=len(failures),
        latencies_ms=[latency for _, latency, _ in rows],
        final_second_ms=[latency for ts, latency, _ in rows if ts >= last_produced_ms - 1000],
        kafka_ms=reader.latencies_between(started_ms, last_produced_ms),
        added_ms=[ts + latency - received[box] for ts, latency, box in rows if box in received],
        # Production stopped at the last produce(); the page is current once its last box is in.
        catch_up_s=(last_box_ms - last_produced_ms) / 1000 if current else None,
        server_cpu=server_cpu,
        server_rss_mib=server.ps.memory_info().rss / MIB,
        browser_cpu=browser_cpu,
        ws_bytes_per_s=frames.bytes / window_s,
        ws_frames_per_s=frames.count / window_s,
        announcements=heard["announced"],
        long_tasks_ms=heard["longTasks"],
    )


class FrameCounter:
    """Frames the page's lab websocket received, and their payload bytes."""

    def __init__(self) -> None:
        self.bytes = self.count = 0

    def attach(self, ws) -> None:
        if "/ws/labs/" in ws.url:
            ws.on("framereceived", self._received)

    def _received(self, payload: str | bytes) -> None:
        self.bytes += len(payload.encode() if isinstance(payload, str) else payload)
        self.count += 1

    def reset(self) -> None:
        self.bytes = self.count = 0


class KafkaReader:
    """A plain consumer in the bench: how long Kafka alone takes to make a record readable,
    the floor under the page's latency (acks=all, so after replication)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._rows: list[tuple[int, float]] = []
        self._received: dict[str, float] = {}  # "partition:offset" → when this reader got it (ms)
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench-lab-reader", "fetch.wait.max.ms": 20}
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
        self._thread = threading.Thread(target=self._run, name="bench-kafka-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # poll() hands over each record as it arrives; consume() may wait out its timeout.
            message = self._consumer.poll(0.05)
            if message is not None and message.error() is None:
                now, created = time.time() * 1000, message.timestamp()[1]
                self._rows.append((created, now - created))
                self._received[f"{message.partition()}:{message.offset()}"] = now

    def received_ms(self) -> dict[str, float]:
        return dict(self._received)

    def latencies_between(self, first_ms: float, last_ms: float) -> list[float]:
        return [latency for created, latency in list(self._rows) if first_ms <= created <= last_ms]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def paced_produce(producer: Producer, topic: str, rate: int, seconds: float, failures: list) -> int:
    """`rate` records a second for `seconds`, each produced when it falls due (CreateTime = now)."""
    total = int(rate * seconds)
    sent = 0
    started = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            produce_order(producer, topic, failures)
            sent += 1
        producer.poll(0)
        next_due = started + sent / rate
        time.sleep(max(0.0, min(PACE_STEP, next_due - time.perf_counter())))
    return sent


def order_producer(bootstrap: str, *, linger_ms: int) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": linger_ms,
        }
    )


_sequence = iter(range(10**9))


def produce_order(producer: Producer, topic: str, failures: list | None) -> None:
    order_id = f"bench-{os.getpid()}-{next(_sequence):07d}"
    value = {
        "orderId": order_id,
        "customerId": "c0ffee00-1234-4abc-9def-0123456789ab",
        "items": [{"productId": "kbd-00042", "quantity": 1, "price": 49.0}],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    def on_delivery(error, _message) -> None:
        if error is not None and failures is not None:
            failures.append(error)

    while True:
        try:
            producer.produce(
                topic,
                key=order_id.encode(),
                value=json.dumps(value, separators=(",", ":")).encode(),
                headers=[("event-type", b"OrderCreated"), ("content-type", b"application/json")],
                on_delivery=on_delivery,
            )
            return
        except BufferError:
            producer.poll(0.01)


def wait_until_current(page, bootstrap: str, topic: str) -> bool:
    """Whether, within the deadline, every lane's newest box is its partition's last record."""
    ends = log_ends(bootstrap, topic)
    wanted = {str(p): (end - 1 if end else None) for p, end in ends.items()}
    deadline = time.perf_counter() + CATCH_UP_DEADLINE_S
    while time.perf_counter() < deadline:
        if page.evaluate(NEWEST_PER_LANE_JS) == wanted:
            return True
        page.wait_for_timeout(20)
    return False


def log_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-lab-watermarks"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in sorted(partitions)
        }
    finally:
        consumer.close()


def chromium_processes() -> list[psutil.Process]:
    """This bench's Chromium: browser, renderer, GPU and utility processes."""
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def _cpu(process: psutil.Process) -> float:
    try:
        return process.cpu_percent(None)
    except psutil.NoSuchProcess:
        return 0.0


# --- figures --------------------------------------------------------------------------------


def figures_for(r: RunResult) -> list[Figure]:
    label = f"{r.rate}/s"
    achieved = r.produced / r.seconds if r.seconds else 0.0
    p99 = percentile(r.latencies_ms, 99)
    figures = [
        Figure(f"{label}: produced", r.produced, "events", f"{achieved:.0f}/s achieved, {r.failed} failed", digits=0),
        Figure(
            f"{label}: boxes seen",
            len(r.latencies_ms),
            "boxes",
            f"{len(r.latencies_ms) / r.produced:.0%} of produced" if r.produced else "",
            digits=0,
        ),
        Figure(f"{label}: latency p50", percentile(r.latencies_ms, 50), "ms", "CreateTime → box in the DOM", digits=0),
        Figure(f"{label}: latency p95", percentile(r.latencies_ms, 95), "ms", digits=0),
        Figure(f"{label}: latency p99", p99, "ms", _p99_note(r.rate, p99, percentile(r.kafka_ms, 99)), digits=0),
        Figure(f"{label}: latency max", max(r.latencies_ms, default=float("nan")), "ms", digits=0),
        Figure(
            f"{label}: latency p99, final second",
            percentile(r.final_second_ms, 99),
            "ms",
            _trend_note(percentile(r.final_second_ms, 99), p99),
            digits=0,
        ),
        Figure(
            f"{label}: Kafka alone p50 / p99",
            percentile(r.kafka_ms, 50),
            "ms",
            f"p99 {percentile(r.kafka_ms, 99):.0f} ms: CreateTime → a plain consumer in the bench",
            digits=0,
        ),
        Figure(
            f"{label}: added by kafkalab p50 / p99",
            percentile(r.added_ms, 50),
            "ms",
            f"p99 {percentile(r.added_ms, 99):.0f} ms: box in the DOM − the plain consumer's receipt, per record",
            digits=0,
        ),
        Figure(f"{label}: caught up after stop", _ms(r.catch_up_s), "ms", _catch_up_note(r.catch_up_s), digits=0),
        Figure(f"{label}: server CPU", r.server_cpu, "%", "daphne, of one core, while producing", digits=0),
        Figure(f"{label}: server RSS", r.server_rss_mib, "MiB", digits=0),
        Figure(f"{label}: browser CPU", r.browser_cpu, "%", "all Chromium processes, of one core", digits=0),
        Figure(
            f"{label}: websocket", r.ws_bytes_per_s / 1024, "KiB/s", f"lab socket: {r.ws_frames_per_s:.1f} frames/s"
        ),
        Figure(
            f"{label}: screen-reader announcements",
            r.announcements,
            "",
            f"of {len(r.latencies_ms)} new boxes in {r.seconds:.0f} s: the lanes are said in summary, at most every 5 s",
            digits=0,
        ),
        Figure(
            f"{label}: main thread busy (long tasks)",
            sum(r.long_tasks_ms),
            "ms",
            f"{len(r.long_tasks_ms)} tasks of 50 ms or more, the longest {max(r.long_tasks_ms, default=0):.0f} ms",
            digits=0,
        ),
    ]
    return figures


def _p99_note(rate: int, p99: float, kafka_p99: float) -> str:
    if rate > 20:
        return ""
    verdict = "met" if p99 <= LATENCY_TARGET_MS else "NOT met"
    # The target is for a quiet machine: when Kafka alone is slower than it, the run can't tell.
    quiet = "" if kafka_p99 <= LATENCY_TARGET_MS else f" (not a quiet machine: Kafka alone p99 {kafka_p99:.0f} ms)"
    return f"target ≤ {LATENCY_TARGET_MS} ms: {verdict}{quiet}"


def _trend_note(final_p99: float, run_p99: float) -> str:
    if final_p99 <= run_p99:
        return "not above the run's p99: the backlog did not grow"
    return "above the run's p99: the backlog was still growing"


def _catch_up_note(catch_up_s: float | None) -> str:
    if catch_up_s is None:
        return f"NOT caught up within {CATCH_UP_DEADLINE_S:.0f} s: the page does not keep up"
    verdict = "keeps up" if catch_up_s <= CATCH_UP_TARGET_S else "slow to catch up"
    return f"every lane's newest box = Kafka's log end − 1; {verdict} (target ≤ {CATCH_UP_TARGET_S:.0f} s)"


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds * 1000
