"""Section `schemas`: the embedded schema registry, what contracts cost OrderService, and poison pills.

On one cluster and daphne of the section's own:
- registry, through confluent-kafka's SchemaRegistryClient (the client any learner's code would
  use): register a new version of a subject (POST /subjects/<s>/versions, which writes it to the
  `_schemas` topic and waits until the registry has read it back); lookup by id, cold (a fresh
  client's first GET /schemas/ids/<id>) and cached (the same client again: a consumer's cost per
  record after the first);
- produce throughput per encoding: a learner's burst of 1,000 through the app, in a lab per
  encoding (switched with the contract's encoding form), the burst form's POST timed; then the
  topic is read back for the records' mean size;
- poison record → dead letter on screen: in Chromium, a lab with a dead-letter NotificationService;
  a foreign client (a plain Producer) writes random bytes to the orders topic; from Kafka's ack to
  the dead letter's box appearing in the page's DLQ lane (a MutationObserver's Date.now(): the
  browser and the bench share this machine's clock);
- crash loop: a crash-policy NotificationService and one poison record; state.json, polled, says
  when each crash was counted and each new process started.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from contextlib import closing
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from bench.report import Figure, percentile, progress
from bench.server import lab_stack
from tests.harness.browser import VIEWPORT, launch_chromium
from tests.harness.http_browser import Browser
from tests.harness.lab_page import INITIAL_PARTITIONS, add_consumer, open_lab
from tests.integration.consumer_groups.support import Lab, wait_for

PORT_BASE = 64092
BROKERS = 3
REGISTRATIONS = 60
LOOKUPS = 200

ENCODINGS = {"json": "plain JSON", "json-schema": "JSON Schema", "avro": "Avro"}
BURST = 1000
BURST_ROUNDS = 8  # timed, after one untimed burst per encoding

DEAD_LETTER_SAMPLES = 15
CRASHES = 5  # and a restart after each: the waits 1, 2, 4, 8 and 10 s
POLL_SECONDS = 0.05
# Bounds on waiting, not expectations of speed.
JOIN_TIMEOUT_MS = 60_000
DEAD_LETTER_TIMEOUT_MS = 30_000
CRASH_LOOP_TIMEOUT_S = 120.0
KAFKA_TIMEOUT_S = 30.0


def run() -> list[Figure]:
    with lab_stack("schemas", port_base=PORT_BASE, brokers=BROKERS) as (cluster, server):
        bootstrap = cluster.bootstrap_servers(BROKERS)
        return [
            *_registry_figures(f"{server.url}/registry"),
            *_throughput_figures(server.url, bootstrap),
            *_dead_letter_figures(server.url, bootstrap),
            *_crash_loop_figures(server.url, bootstrap),
        ]


def _timed(call, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = call(*args)
    return (time.perf_counter() - started) * 1000, result


# --- the registry ---------------------------------------------------------------------------


def _schema(n: int) -> Schema:
    # Each version adds a field with a default: compatible under BACKWARD, so every one registers.
    fields = [{"name": "orderId", "type": "string"}] + [
        {"name": f"extra{i}", "type": "string", "default": ""} for i in range(n)
    ]
    return Schema(json.dumps({"type": "record", "name": "OrderCreated", "fields": fields}), "AVRO")


def _registry_figures(url: str) -> list[Figure]:
    client = SchemaRegistryClient({"url": url})
    subject = f"bench-{int(time.time())}.orders-value"
    register_ms, ids = [], []
    progress(f"register {REGISTRATIONS} versions of {subject}")
    for n in range(REGISTRATIONS):
        elapsed, schema_id = _timed(client.register_schema, subject, _schema(n))
        register_ms.append(elapsed)
        ids.append(schema_id)
    progress(f"look up {LOOKUPS} ids, each by a fresh client and then again by the same one")
    cold_ms, cached_ms = [], []
    for i in range(LOOKUPS):
        schema_id = ids[i % len(ids)]
        fresh = SchemaRegistryClient({"url": url})
        cold_ms.append(_timed(fresh.get_schema, schema_id)[0])
        cached_ms.append(_timed(fresh.get_schema, schema_id)[0])
    first, rest = register_ms[0], register_ms[1:]
    return [
        Figure("register the first version", first, "ms", "opens the registry's Kafka clients"),
        Figure("register a version, p50", percentile(rest, 50), "ms"),
        Figure("register a version, p99", percentile(rest, 99), "ms", f"{len(rest)} more versions"),
        Figure("lookup by id (cold), p50", percentile(cold_ms, 50), "ms"),
        Figure("lookup by id (cold), p99", percentile(cold_ms, 99), "ms", "a fresh client: one HTTP round trip"),
        Figure("lookup by id (cached), p50", percentile(cached_ms, 50) * 1000, "µs"),
        Figure("lookup by id (cached), p99", percentile(cached_ms, 99) * 1000, "µs", "the client's own cache"),
    ]


# --- produce throughput per encoding --------------------------------------------------------


def _throughput_figures(url: str, bootstrap: str) -> list[Figure]:
    labs = {encoding: _lab_writing(url, encoding) for encoding in ENCODINGS}
    try:
        progress(f"bursts of {BURST}: {BURST_ROUNDS} timed per encoding, the encodings taking turns")
        seconds: dict[str, list[float]] = {encoding: [] for encoding in ENCODINGS}
        for round_ in range(BURST_ROUNDS + 1):
            # Taking turns: a noisy moment on the machine hits every encoding alike.
            for encoding, lab in labs.items():
                elapsed = _burst_seconds(lab)
                if round_:  # the first burst of each lab warms its serializer and schema lookup
                    seconds[encoding].append(elapsed)
        plain = statistics.median(seconds["json"])
        return [
            figure
            for encoding, lab in labs.items()
            for figure in _encoding_figures(encoding, seconds[encoding], plain, _read_topic(bootstrap, lab.topic))
        ]
    finally:
        for lab in labs.values():
            lab.reset()


def _lab_writing(url: str, encoding: str) -> Lab:
    """A learner's lab whose OrderService writes `encoding`, switched by the contract's form."""
    lab = Lab.open(Browser(url))
    if encoding != "json":
        response = lab.browser.post(lab.url("contract/encoding/"), {"encoding": encoding})
        if response.status != 200:
            raise RuntimeError(f"switching to {encoding} answered {response.status}: {response.text[:300]}")
    writer = lab.state()["schema_registry"]["writer"]
    if writer["encoding"] != encoding:
        raise RuntimeError(f"lab {lab.lab_id} writes {writer['encoding']}, not {encoding}")
    return lab


def _burst_seconds(lab: Lab) -> float:
    """The burst form's POST, timed: what the learner waits for a burst of BURST orders."""
    while True:
        started = time.perf_counter()
        response = lab.browser.post(lab.url("orders/burst/"), {"count": BURST, "key_strategy": "orderId"})
        elapsed = time.perf_counter() - started
        if "Slow down" in response.text:  # the lab's produce budget refills at 2,000 events/s
            time.sleep(0.5)
            continue
        if f"Kafka acknowledged all {BURST} orders" not in response.text:
            raise RuntimeError(f"a burst of {BURST} failed ({response.status}): {response.text[:300]}")
        return elapsed


def _encoding_figures(
    encoding: str, timed: list[float], plain: float, records: list[tuple[bytes, bytes, int]]
) -> list[Figure]:
    """Orders/s of the burst POST, its cost per order over plain JSON's, and the records' size."""
    label = ENCODINGS[encoding]
    median = statistics.median(timed)
    figures = [
        Figure(
            f"{label}: burst of {BURST:,}",
            BURST / median,
            "orders/s",
            f"the POST timed: median {median * 1000:.0f} ms of {len(timed)} (best {BURST / min(timed):.0f}/s)",
            digits=0,
        )
    ]
    if encoding != "json":
        # The same request but for the serializer: the difference is what the contract costs.
        figures.append(
            Figure(
                f"{label}: cost over plain JSON",
                (median - plain) / BURST * 1e6,
                "µs/order",
                "median POST − plain JSON's, per order",
                digits=0,
            )
        )
    value_bytes = statistics.mean(len(value) for _, value, _ in records)
    other_bytes = statistics.mean(len(key) + headers for key, _, headers in records)
    figures.append(
        Figure(
            f"{label}: mean record value",
            value_bytes,
            "B",
            f"read back from Kafka ({len(records):,} records); key and headers add {other_bytes:.0f} B",
            digits=0,
        )
    )
    return figures


def _read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, int]]:
    """Every record of the topic: (key, value, bytes of its header names and values)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-schemas-sizes",  # never joined: partitions are assigned
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records, unread = [], set(partitions)
        deadline = time.monotonic() + KAFKA_TIMEOUT_S
        while unread and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    headers = sum(len(name) + len(value or b"") for name, value in message.headers() or [])
                    records.append((message.key() or b"", message.value() or b"", headers))
                elif message.error().code() == KafkaError._PARTITION_EOF:
                    unread.discard(message.partition())
        if unread:
            raise RuntimeError(f"{topic}: could not read partitions {sorted(unread)} to their end")
        return records
    finally:
        consumer.close()


# --- poison record → dead letter on screen --------------------------------------------------

# Installed before any page script runs: for each dead letter's box, the first time it is added
# to a DLQ lane, [Date.now(), the dead letter's CreateTime], by the record it came from ("P1@5").
DEAD_LETTER_OBSERVER_JS = """
window.__deadLetters = {};
new MutationObserver((mutations) => {
  const now = Date.now();
  for (const mutation of mutations) {
    for (const node of mutation.addedNodes) {
      if (node.nodeType !== 1) continue;
      const boxes = node.matches('.event--dead-letter') ? [node] : node.querySelectorAll('.event--dead-letter');
      for (const box of boxes) {
        if (!box.closest('.lane[data-dlq-lane]') || box.dataset.origin in window.__deadLetters) continue;
        window.__deadLetters[box.dataset.origin] = [now, Number(box.dataset.ts)];
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


def _dead_letter_figures(url: str, bootstrap: str) -> list[Figure]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(DEAD_LETTER_OBSERVER_JS)
            topic = open_lab(page, url)
            name = add_consumer(page, failure_policy="dead-letter")
            card = page.locator(f'[data-consumer="{name}"]')
            expect(card).to_have_attribute("data-partitions", "0,1,2,3", timeout=JOIN_TIMEOUT_MS)
            progress(
                f"{DEAD_LETTER_SAMPLES} poison records into {topic}, one at a time, each until its dead letter shows"
            )
            with closing(_foreign_producer(bootstrap)) as producer:
                samples = [
                    _poison_to_dead_letter(page, producer, topic, partition=n % INITIAL_PARTITIONS)
                    for n in range(DEAD_LETTER_SAMPLES)
                ]
        finally:
            browser.close()
    on_screen = [shown for shown, _ in samples]
    written = [written for _, written in samples]
    after_written = [shown - written for shown, written in samples]
    return [
        Figure(
            "poison → dead letter on screen, p50",
            percentile(on_screen, 50),
            "ms",
            "Kafka's ack → the box in the DLQ lane",
            digits=0,
        ),
        Figure(
            "poison → dead letter on screen, p99", percentile(on_screen, 99), "ms", f"{len(samples)} samples", digits=0
        ),
        Figure(
            "dead letter written → on screen, p50",
            percentile(after_written, 50),
            "ms",
            f"p99 {percentile(after_written, 99):.0f} ms: from its CreateTime, the runner's and the page's part",
            digits=0,
        ),
        # The consumer fetches the record once it is replicated, while the ack is still on its way
        # back to the writer: this part is near zero, and may be below it.
        Figure(
            "ack → dead letter written, p50",
            percentile(written, 50),
            "ms",
            f"p99 {percentile(written, 99):.0f} ms: the consumer's part (it fetches the record as the ack travels back)",
            digits=0,
        ),
    ]


def _poison_to_dead_letter(page, producer: Producer, topic: str, *, partition: int) -> tuple[float, float]:
    """ms from Kafka's ack of a poison record to its dead letter's box in the page, and to the dead
    letter's CreateTime."""
    offset, acked_ms = _write_poison(producer, topic, partition)
    origin = f"P{partition}@{offset}"
    page.wait_for_function("(origin) => origin in window.__deadLetters", arg=origin, timeout=DEAD_LETTER_TIMEOUT_MS)
    shown_ms, written_ms = page.evaluate("(origin) => window.__deadLetters[origin]", origin)
    return shown_ms - acked_ms, written_ms - acked_ms


def _foreign_producer(bootstrap: str) -> Producer:
    """A plain confluent-kafka Producer, as any client outside the app would write."""
    return Producer({"bootstrap.servers": bootstrap, "acks": "all"})


def _write_poison(producer: Producer, topic: str, partition: int) -> tuple[int, float]:
    """Random bytes, as a foreign client might write them; (offset, when Kafka acknowledged it, ms)."""
    acked: list[tuple[object, object, float]] = []
    # Not 0 first: a magic byte would make it an unknown schema id rather than undecodable bytes.
    value = b"\xff" + os.urandom(63)
    producer.produce(
        topic,
        partition=partition,
        key=b"bench-poison",
        value=value,
        on_delivery=lambda error, message: acked.append((error, message, time.time() * 1000)),
    )
    producer.flush(KAFKA_TIMEOUT_S)
    [(error, message, acked_ms)] = acked
    if error is not None:
        raise RuntimeError(f"Kafka refused the poison record: {error}")
    return message.offset(), acked_ms


# --- crash-loop restart cadence -------------------------------------------------------------


def _crash_loop_figures(url: str, bootstrap: str) -> list[Figure]:
    lab = Lab.open(Browser(url))
    try:
        name = lab.add_consumer(failure_policy="crash")
        wait_for(
            lambda: lab.consumers()[name]["assigned"] == list(range(INITIAL_PARTITIONS)),
            f"{name} owning every partition",
        )
        progress(f"one poison record; following {name} over {CRASHES} crashes in state.json")
        with closing(_foreign_producer(bootstrap)) as producer:
            _write_poison(producer, lab.topic, 0)
        loop = _follow_crash_loop(lab, name)
        lab.act(name, "stop")
    finally:
        lab.reset()
    return _cadence_figures(loop)


@dataclass
class CrashLoop:
    """What state.json showed of a crash loop, as time.monotonic() when first seen: each crash
    counted, with the "restarting in N s" the card then said, and each new process."""

    crashes: list[float] = field(default_factory=list)
    announced_s: list[int | None] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)


def _follow_crash_loop(lab: Lab, name: str) -> CrashLoop:
    """Polls state.json until CRASHES crashes and the restart after the last."""
    loop = CrashLoop()
    pid = lab.consumers()[name]["pid"]
    deadline = time.monotonic() + CRASH_LOOP_TIMEOUT_S
    while len(loop.restarts) < CRASHES:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{name}: {len(loop.crashes)} crashes, {len(loop.restarts)} restarts in {CRASH_LOOP_TIMEOUT_S:.0f} s"
            )
        consumer = lab.consumers()[name]
        now = time.monotonic()
        new_crashes = consumer["failures"]["crashes"] - len(loop.crashes)
        loop.crashes += [now] * new_crashes
        loop.announced_s += [consumer["failures"]["restart_in_s"]] * new_crashes
        if consumer["pid"] not in (None, pid):
            pid = consumer["pid"]
            loop.restarts.append(now)
        time.sleep(POLL_SECONDS)
    return loop


def _cadence_figures(loop: CrashLoop) -> list[Figure]:
    """Per crash, the wait until its restart (what the backoff set) and the time since the restart
    before (that wait plus a process's life); then how long a process lives on the poison record."""
    figures = [Figure("crash loop: crashes", len(loop.crashes), "", "on one poison record, then Stop", digits=0)]
    waits = zip(loop.crashes, loop.announced_s, loop.restarts, strict=False)
    for n, (crash, announced, restart) in enumerate(waits, start=1):
        since = f"; {restart - loop.restarts[n - 2]:.1f} s after the restart before" if n > 1 else ""
        note = f"the card said “restarting in {announced} s”{since}"
        figures.append(Figure(f"crash loop: crash {n} → restart", restart - crash, "s", note))
    lives = [crash - restart for restart, crash in zip(loop.restarts, loop.crashes[1:], strict=False)]
    figures.append(
        Figure(
            "crash loop: a process's life",
            statistics.mean(lives),
            "s",
            f"mean, restart → crash: start, join, fetch, fail, exit (state.json polled every {POLL_SECONDS * 1000:.0f} ms)",
        )
    )
    return figures
