"""BillingService on the real cluster: exactly-once against at-least-once after a SIGKILL
mid-batch, and fencing. The invoices are counted from the invoices topic, read read_committed by
a consumer of the test's own, never from the app's memory."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser

import psutil
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from kafkalab.kafka.billing_service import FENCED_EXIT_CODE
from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.billing_process import BillingProcess
from tests.harness.server import SERVER_PIDS
from tests.integration.consumer_groups.support import (
    Lab,
    LabSocket,
    Server,
    listed_offsets,
    open_transaction_in,
    wait_for,
)

ORDERS = 30
PARTITIONS = 4


class Pipeline:
    """A fresh orders topic, invoices topic and group on the suite's cluster."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        name = f"billing-test-{uuid.uuid4().hex[:8]}"
        self.orders, self.invoices, self.group = f"{name}.orders", f"{name}.invoices", f"{name}.billing"
        self.transactional_id = f"{name}.billing-service"
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = self.admin.create_topics(
            [NewTopic(t, num_partitions=PARTITIONS, replication_factor=3) for t in (self.orders, self.invoices)]
        )
        for future in futures.values():
            future.result(timeout=30)
        self.processes: list[BillingProcess] = []
        self.order_ids: list[str] = []

    def start(self, name: str, config: BillingConfig) -> BillingProcess:
        settings = {
            "name": name,
            "topic": self.orders,
            "invoices_topic": self.invoices,
            "group_id": self.group,
            "transactional_id": self.transactional_id,
            "client": {"bootstrap.servers": self.bootstrap},
            "config": config.as_dict(),
        }
        self.processes.append(BillingProcess(settings))
        return self.processes[-1]

    def write_orders(self, count: int, *, poison: bool = False) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random"})
        if poison:  # records it must skip
            producer.produce(self.orders, key=b"x", value=b"not json")
            producer.produce(self.orders, key=b"y", value=b"{}", headers=[("event-type", b"OrderPaid")])
        for _ in range(count):
            order_id = str(uuid.uuid4())
            self.order_ids.append(order_id)
            order = {
                "orderId": order_id,
                "customerId": "c-1",
                "items": [{"productId": "p", "quantity": 2, "price": 1.25}],
            }
            producer.produce(
                self.orders,
                key=order_id.encode(),
                value=json.dumps(order).encode(),
                headers=[("event-type", b"OrderCreated")],
            )
        assert producer.flush(30) == 0

    def invoices_committed(self, *, total: float | None = 2.5) -> Counter:
        """Invoices per orderId, as a read_committed consumer reads the whole topic."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.group}.test-reader.{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        consumer.subscribe([self.invoices])
        counts: Counter = Counter()
        at_eof: set[int] = set()
        deadline = time.monotonic() + 30
        try:
            while len(at_eof) < PARTITIONS and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    at_eof.add(message.partition())
                    continue
                at_eof.discard(message.partition())
                invoice = json.loads(message.value())
                assert dict(message.headers())["event-type"] == b"InvoiceIssued"
                assert message.key().decode() == invoice["invoiceFor"]
                assert total is None or invoice["total"] == total
                counts[invoice["invoiceFor"]] += 1
        finally:
            consumer.close()
        assert len(at_eof) == PARTITIONS, "the invoices topic was not read to its end"
        return counts

    def close(self) -> None:
        for process in self.processes:
            process.end(kill=True)
        for future in self.admin.delete_topics([self.orders, self.invoices]).values():
            with contextlib.suppress(Exception):  # a leftover test topic is harmless
                future.result(timeout=30)


@pytest.fixture
def pipeline(kafka_cluster: LocalCluster) -> Iterator[Pipeline]:
    made = Pipeline(kafka_cluster.bootstrap_servers())
    try:
        yield made
    finally:
        made.close()


def kill_mid_batch(pipeline: Pipeline, mode: BillingMode) -> Counter:
    """30 orders, billed 10 at a time at 150 ms each; SIGKILL 4 invoices into the second batch,
    then a new instance bills what is left. Invoices per orderId, read read_committed."""
    config = BillingConfig(mode=mode, processing_delay_ms=150, batch_size=10)
    pipeline.write_orders(ORDERS, poison=True)
    first = pipeline.start("b1", config)
    wait_for(lambda: first.events("committed"), "the first batch committed")
    done = len(first.events("invoiced"))
    wait_for(lambda: len(first.events("invoiced")) >= done + 4, "invoices of the second batch")
    first.process.kill()
    first.process.wait(timeout=10)
    assert first.events("invoiced")[-1] and len(first.events("committed")) == 1, "killed after one batch only"
    second = pipeline.start("b2", config)
    wait_for(
        lambda: (
            {r["order_id"] for r in first.events("invoiced") + second.events("invoiced")} >= set(pipeline.order_ids)
        ),
        "every order invoiced",
    )
    wait_for(lambda: second.events("committed") and second.events("committed")[-1]["invoices"], "the last commit")
    time.sleep(1)  # the last batch's commit reaches the log
    skipped = {(r["partition"], r["offset"]) for r in first.events("skipped") + second.events("skipped")}
    assert len(skipped) == 2  # not JSON, and an OrderPaid
    return pipeline.invoices_committed()


def test_exactly_once_survives_a_kill_mid_batch(pipeline: Pipeline) -> None:
    counts = kill_mid_batch(pipeline, BillingMode.EXACTLY_ONCE)
    assert set(counts) == set(pipeline.order_ids)
    assert set(counts.values()) == {1}, f"duplicates: {[k for k, n in counts.items() if n > 1]}"


def test_at_least_once_duplicates_after_a_kill_mid_batch(pipeline: Pipeline) -> None:
    counts = kill_mid_batch(pipeline, BillingMode.AT_LEAST_ONCE)
    assert set(counts) == set(pipeline.order_ids)
    assert max(counts.values()) == 2
    assert sum(1 for n in counts.values() if n > 1) >= 4  # the killed batch's invoices, written twice


# With a delay, the twin's fencing reaches the older instance while it produces a batch's invoices
# (librdkafka then refuses its produce calls with "Local: Fatal error"); without, at its commit.
@pytest.mark.parametrize("delay_ms", [0, 200], ids=["fenced-at-commit", "fenced-mid-batch"])
def test_a_twin_fences_the_older_instance(pipeline: Pipeline, delay_ms: int) -> None:
    config = BillingConfig(mode=BillingMode.EXACTLY_ONCE, processing_delay_ms=delay_ms, batch_size=10)
    older = pipeline.start("b1", config)
    wait_for(lambda: older.events("assigned"), "the older instance joined")
    pipeline.write_orders(8)
    wait_for(lambda: older.events("committed"), "the older instance billed")
    twin = pipeline.start("b1-twin", config)
    wait_for(lambda: twin.events("started"), "the twin's init_transactions")

    # Orders on every partition: whichever the older still reads, its next transaction fails.
    def older_fenced() -> bool:
        pipeline.write_orders(4)
        return bool(older.events("fenced")) or older.process.poll() is not None

    wait_for(older_fenced, "the older instance fenced", every=1.0)
    assert older.process.wait(timeout=20) == FENCED_EXIT_CODE
    assert "can no longer write" in older.events("fenced")[0]["message"]
    wait_for(
        lambda: {r["order_id"] for r in older.events("invoiced") + twin.events("invoiced")} >= set(pipeline.order_ids),
        "every order invoiced",
    )
    wait_for(lambda: twin.events("committed"), "the twin committed")
    time.sleep(1)
    counts = pipeline.invoices_committed()
    assert set(counts) == set(pipeline.order_ids)
    assert set(counts.values()) == {1}


# --- Through the lab: the page's buttons, the runner's processes, the live model -------------------

BILLING_MODULE = "kafkalab.kafka.billing_service"
BILLING_COUNTS = re.compile(
    r'data-invoices="(\d+)".*?data-orders-invoiced="(\d+)".*?data-invoice-duplicates="(\d+)"', re.S
)
BILLING_CARD = re.compile(
    r'<article class="consumer-card billing-card[^"]*" data-billing="(b\d+)"[^>]*data-fenced="(\w+)"'
)


def billing_processes() -> list[int]:
    """Live BillingService processes started by this run's servers (or by this test)."""
    me = psutil.Process()
    ours = {me.pid, *SERVER_PIDS, *(child.pid for child in me.children(recursive=True))}
    found = []
    for process in psutil.process_iter(["pid", "ppid", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        live = process.info["status"] != psutil.STATUS_ZOMBIE
        if BILLING_MODULE in cmdline and live and process.info["ppid"] in ours:
            found.append(process.info["pid"])
    return found


@pytest.fixture(autouse=True)
def no_billing_left() -> Iterator[None]:
    """After each test and its fixtures' teardown (the lab's reset reaps them): none is left."""
    yield
    deadline = time.monotonic() + 30
    while (left := billing_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # last resort: never leave one of ours running
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    assert left == [], f"BillingService processes were left running: {left}"


class BillingPage:
    """The billing panel as the page's websocket pushes it: counts and cards."""

    def __init__(self, socket: LabSocket) -> None:
        self.counts: tuple[int, int, int] | None = None  # invoices, orders invoiced, duplicates
        self.fenced: dict[str, bool] = {}
        self.socket = socket
        apply = socket.page.apply

        def also_billing(fragment: str) -> None:
            apply(fragment)
            if 'id="billing"' in fragment:
                part = fragment.split('id="billing"', 1)[1]
                if (found := BILLING_COUNTS.search(part)) is not None:
                    self.counts = tuple(int(n) for n in found.groups())
                self.fenced = {name: fenced == "true" for name, fenced in BILLING_CARD.findall(part)}

        socket.page.apply = also_billing

    def wait(self, probe, what: str):
        return self.socket.wait(lambda _: probe(self), what)


class InvoicesLanes(HTMLParser):
    """The invoices topic's lanes as the pushes draw them: what is inside the element carrying its
    `data-topic`, or in a push aimed at one of its lanes (`invoices-lane-<p>-…`)."""

    VOID = {"br", "hr", "img", "input", "link", "meta", "source", "wbr"}

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = topic
        self.boxes: dict[tuple[int, int], str | None] = {}  # (partition, offset) → data-txn
        self.markers: dict[tuple[int, int], str] = {}  # (partition, offset) → commit/abort
        self.ends: dict[int, tuple[str, str]] = {}  # partition → (data-log-end, data-lso)
        self.first: tuple[dict, dict] | None = None  # (boxes, markers) as the first whole lanes had them
        self._inside: list[bool] = []  # per open element: in the invoices lanes

    def apply(self, fragment: str) -> None:
        whole = f'data-topic="{self.topic}"' in fragment
        if whole:
            self.boxes, self.markers = {}, {}
        self.reset()
        self._inside = []
        self.feed(fragment)
        self.close()
        if whole and self.first is None:
            self.first = (dict(self.boxes), dict(self.markers))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        inside = (
            (bool(self._inside) and self._inside[-1])
            or found.get("data-topic") == self.topic
            or found.get("id", "").startswith("invoices-lane-")
            or "#invoices-lane-" in found.get("hx-swap-oob", "")
        )
        if inside and "data-offset" in found and "data-partition" in found:
            where = (int(found["data-partition"]), int(found["data-offset"]))
            if "data-control" in found:
                self.markers[where] = found["data-control"]
            elif tag == "a":
                self.boxes[where] = found.get("data-txn")
        if (meta := re.fullmatch(r"invoices-lane-(\d+)-meta", found.get("id", ""))) is not None:
            self.ends[int(meta.group(1))] = (found.get("data-log-end", ""), found.get("data-lso", ""))
        if tag not in self.VOID:
            self._inside.append(inside)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._inside:
            self._inside.pop()


class InvoicesSocket(LabSocket):
    """The lab's websocket, its pushes also drawn into InvoicesLanes from the very first one."""

    def __init__(self, server_url: str, lab: Lab) -> None:
        self.invoices = InvoicesLanes(f"lab-{lab.lab_id}.invoices")
        super().__init__(server_url, lab)

    @property
    def page(self):
        return self._page

    @page.setter
    def page(self, state) -> None:  # LabSocket sets it before its reader starts: no push is missed
        apply = state.apply

        def also_invoices(fragment: str) -> None:
            apply(fragment)
            self.invoices.apply(fragment)

        state.apply = also_invoices
        self._page = state


def invoices_as_kafka_holds(bootstrap: str, topic: str) -> dict[int, dict]:
    """Per partition of the invoices topic, read to its end by the test's own consumers: the
    offsets a read_uncommitted reader gets and a read_committed one skips (aborted), the offsets
    neither gets (control markers), and the log end and last stable offset as Kafka lists them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = [TopicPartition(topic, p) for p in admin.list_topics(topic, timeout=10).topics[topic].partitions]
    starts = listed_offsets(admin, topic, OffsetSpec.earliest(), IsolationLevel.READ_UNCOMMITTED)
    ends = listed_offsets(admin, topic, OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED)
    last_stable = listed_offsets(admin, topic, OffsetSpec.latest(), IsolationLevel.READ_COMMITTED)
    got = {level: offsets_read(bootstrap, partitions, level) for level in ("read_uncommitted", "read_committed")}
    held = {}
    for tp in partitions:
        p = tp.partition
        uncommitted, committed = got["read_uncommitted"][p], got["read_committed"][p]
        held[p] = {
            "aborted": sorted(uncommitted - committed),
            "markers": sorted(set(range(starts[p], ends[p])) - uncommitted),
            "log_end": ends[p],
            "last_stable": last_stable[p],
        }
    return held


def offsets_read(bootstrap: str, partitions: list[TopicPartition], isolation: str) -> dict[int, set[int]]:
    """The offsets a consumer with `isolation` is handed, each partition read to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"billing-test-reader.{uuid.uuid4().hex[:6]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
    read: dict[int, set[int]] = {tp.partition: set() for tp in partitions}
    at_eof: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(at_eof) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                at_eof.add(message.partition())
                continue
            at_eof.discard(message.partition())
            read[message.partition()].add(message.offset())
    finally:
        consumer.close()
    assert len(at_eof) == len(partitions), f"the invoices topic was not read to its end {isolation}"
    return read


def lab_invoices_marks(lab: Lab) -> dict[int, dict]:
    """The lab's invoices topic partitions as state.json has them, shaped as invoices_as_kafka_holds."""
    [topic] = [t for t in lab.state()["topics"] if t["role"] == "invoices"]
    return {
        p["partition"]: {
            "aborted": p["aborted"],
            "markers": [m["offset"] for m in p["markers"]],
            "log_end": p["log_end"],
            "last_stable": p["last_stable"],
        }
        for p in topic["partitions"]
    }


def billing_start(lab: Lab, **form: object) -> str:
    response = lab.browser.post(lab.url("billing/"), {k: str(v) for k, v in form.items()})
    assert response.status == 200, response.text[:1000]
    found = re.search(r"Starting (b\d+)", response.text)
    assert found, response.text[:1000]
    return found.group(1)


def billing_act(lab: Lab, name: str, action: str) -> str:
    response = lab.browser.post(lab.url(f"billing/{name}/{action}/"))
    assert response.status == 200, response.text[:1000]
    return response.text


def instances(lab: Lab) -> dict[str, dict]:
    return {b["name"]: b for b in lab.state()["billing"]["instances"]}


def lab_invoices(lab: Lab, bootstrap: str) -> Counter:
    """The lab's invoices topic, read to its end read_committed by the test's own consumer."""
    reader = Pipeline.__new__(Pipeline)
    reader.bootstrap, reader.invoices, reader.group = bootstrap, f"lab-{lab.lab_id}.invoices", f"lab-{lab.lab_id}.test"
    return reader.invoices_committed(total=None)


def orders_of(lab: Lab) -> int:
    return sum(p["log_end"] for p in lab.state()["topics"][0]["partitions"])


@pytest.mark.parametrize("mode", [BillingMode.EXACTLY_ONCE, BillingMode.AT_LEAST_ONCE])
def test_a_kill_mid_batch_then_restart_in_the_lab(
    lab: Lab, lab_server: Server, kafka_cluster: LocalCluster, mode
) -> None:
    page = InvoicesSocket(lab_server.url, lab)
    try:
        kill_mid_batch_then_restart_in_the_lab(lab, page, lab_server, kafka_cluster, mode)
    finally:
        page.close()


def kill_mid_batch_then_restart_in_the_lab(
    lab: Lab, page: InvoicesSocket, lab_server: Server, kafka_cluster: LocalCluster, mode: BillingMode
) -> None:
    billing = BillingPage(page)
    topic = f"lab-{lab.lab_id}.invoices"
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
    exactly_once = mode == BillingMode.EXACTLY_ONCE
    lab.burst(ORDERS)
    name = billing_start(lab, mode=mode, processing_delay_ms=300)
    assert instances(lab)[name]["mode"] == str(mode)
    # Mid-batch, and in exactly-once mode with the batch's first invoices in Kafka in its open
    # transaction (a slow transaction coordinator could still be holding them back).
    wait_for(
        lambda: (
            (b := instances(lab)[name])["batches"] >= 1
            and b["in_batch"] >= 3
            and (not exactly_once or open_transaction_in(admin, topic))
        ),
        "a batch under way after the first committed",
        every=0.1,
    )
    pid = instances(lab)[name]["pid"]
    assert "SIGKILL" in billing_act(lab, name, "kill")
    wait_for(lambda: instances(lab)[name]["status"] == "killed", f"{name} killed")
    assert pid not in billing_processes()
    if exactly_once:  # nobody ends the transaction the killed instance left open, until its restart
        assert open_transaction_in(admin, topic), "killed with its transaction open, mid-batch"
    billing_act(lab, name, "restart")

    counts = wait_for(
        lambda: (found := lab_invoices(lab, kafka_cluster.bootstrap_servers())) and len(found) == ORDERS and found,
        "every order invoiced, read_committed",
        every=1.0,
    )
    duplicates = sum(n - 1 for n in counts.values())
    if mode == BillingMode.EXACTLY_ONCE:
        assert duplicates == 0, f"duplicates after a kill in exactly-once mode: {counts.most_common(3)}"
    else:
        assert duplicates >= 1, "the killed batch's invoices were written, its offsets not committed"
    expected = {"invoices": sum(counts.values()), "duplicates": duplicates, "orders_invoiced": ORDERS}
    # The model counts from what Kafka holds committed, as the test did.
    wait_for(lambda: {k: lab.state()["billing"][k] for k in expected} == expected, f"the model counting {expected}")
    billing.wait(lambda b: b.counts == (expected["invoices"], ORDERS, duplicates), "the counts on the page")

    # What the killed transaction left in the invoices topic, as the test's own readers find it,
    # is what state.json and the page's invoices lanes mark.
    held = invoices_as_kafka_holds(kafka_cluster.bootstrap_servers(), topic)
    aborted = {(p, o) for p, marks in held.items() for o in marks["aborted"]}
    markers = {(p, o) for p, marks in held.items() for o in marks["markers"]}
    if exactly_once:
        assert aborted, "the killed batch's invoices were written in its transaction, then aborted"
    else:
        assert not aborted and not markers, "no transactions: nothing aborted, no marker"
    wait_for(lambda: lab_invoices_marks(lab) == held, f"state.json's invoices marks as Kafka holds them: {held}")
    [state] = [t for t in lab.state()["topics"] if t["role"] == "invoices"]
    controls = {(p["partition"], m["offset"]): m["control"] for p in state["partitions"] for m in p["markers"]}
    aborts = {where for where, control in controls.items() if control == "abort"}
    assert {(p, o - 1) for p, o in aborts} <= aborted, "an ABORT marker follows the records it aborted"
    assert bool(aborts) == exactly_once

    def lanes_marked(lanes: InvoicesLanes) -> bool:
        boxes = lanes.boxes
        shown_aborted = {where for where, txn in boxes.items() if txn == "aborted"}
        ends = {p: (str(marks["log_end"]), str(marks["last_stable"])) for p, marks in held.items()}
        return (
            shown_aborted == aborted
            and all(txn is None for where, txn in boxes.items() if where not in aborted)
            and lanes.markers == controls
            and lanes.ends == ends
        )

    page.wait(lambda _: lanes_marked(page.invoices), "the invoices lanes marked live as Kafka holds them")
    with InvoicesSocket(lab_server.url, lab) as fresh:  # a page opened now draws them so at once
        first = fresh.wait(lambda _: fresh.invoices.first, "the invoices lanes drawn whole")
        assert first == (page.invoices.boxes, controls), "the first drawing marks them as the live pushes did"
        assert {where for where, txn in first[0].items() if txn == "aborted"} == aborted
        assert ("abort" in first[1].values()) == exactly_once


def test_a_twin_fences_the_older_instance_in_the_lab(lab: Lab, page: LabSocket, kafka_cluster: LocalCluster) -> None:
    billing = BillingPage(page)
    older = billing_start(lab, mode=BillingMode.EXACTLY_ONCE)
    lab.burst(8)
    wait_for(lambda: instances(lab)[older]["invoiced"] >= 1, f"{older} invoicing")
    older_pid = instances(lab)[older]["pid"]
    text = billing_act(lab, older, "twin")
    twin = re.search(r"Starting (b\d+)", text).group(1)
    assert instances(lab)[twin]["transactional_id"] == instances(lab)[older]["transactional_id"]
    wait_for(lambda: instances(lab)[twin]["status"] == "running", "the twin's init_transactions")

    def fenced() -> bool:
        lab.burst(4)  # orders on every partition: the older's next transaction fails
        return instances(lab)[older]["fenced"]

    wait_for(fenced, f"{older} fenced", every=1.0)
    wait_for(lambda: instances(lab)[older]["status"] == "stopped", f"{older} exited")
    assert older_pid not in billing_processes()
    assert "can no longer write" in instances(lab)[older]["last_error"]
    billing.wait(lambda b: b.fenced.get(older) is True and b.fenced.get(twin) is False, "the older card fenced")
    orders = orders_of(lab)
    counts = wait_for(
        lambda: (found := lab_invoices(lab, kafka_cluster.bootstrap_servers())) and len(found) == orders and found,
        "the twin invoicing every order",
        every=1.0,
    )
    assert set(counts.values()) == {1}
    assert instances(lab)[twin]["invoiced"] >= 1


def test_bad_input_is_refused_clearly_and_a_reset_removes_billing(lab: Lab, kafka_cluster: LocalCluster) -> None:
    refused = lab.browser.post(lab.url("billing/"), {"mode": "exactly-once", "processing_delay_ms": "99999"})
    assert refused.status == 422 and "processing delay per order" in refused.text
    refused = lab.browser.post(lab.url("billing/"), {"mode": "twice"})
    assert refused.status == 422 and "mode" in refused.text
    name = billing_start(lab, mode=BillingMode.AT_LEAST_ONCE)
    wait_for(lambda: instances(lab)[name]["status"] == "running", f"{name} running")
    twin = lab.browser.post(lab.url(f"billing/{name}/twin/"))
    assert twin.status == 422 and "nothing to fence" in twin.text
    assert lab.browser.post(lab.url("billing/b99/kill/")).status == 422
    lab.burst(5)
    wait_for(lambda: lab.state()["billing"]["orders_invoiced"] == 5, "5 orders invoiced")
    pid = instances(lab)[name]["pid"]
    assert pid in billing_processes()

    assert lab.reset() is None
    assert pid not in billing_processes()
    billing = wait_for(lambda: (b := lab.state()["billing"]) and b["invoices"] == 0 and b, "the counts afresh")
    assert billing["instances"] == [] and billing["duplicates"] == 0
    [invoices] = [t for t in lab.state()["topics"] if t["role"] == "invoices"]
    assert invoices["name"] == f"lab-{lab.lab_id}.invoices"
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
    topic = admin.list_topics(invoices["name"], timeout=10).topics[invoices["name"]]
    assert topic.error is None and len(topic.partitions) == PARTITIONS
    assert lab_invoices(lab, kafka_cluster.bootstrap_servers()) == Counter()
