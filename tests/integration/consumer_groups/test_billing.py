"""BillingService on the real cluster: exactly-once against at-least-once after a SIGKILL
mid-batch, and fencing. The invoices are counted from the invoices topic, read read_committed by
a consumer of the test's own, never from the app's memory."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import psutil
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from kafkalab.kafka.billing_service import FENCED_EXIT_CODE
from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.server import SERVER_PIDS
from tests.integration.consumer_groups.support import Lab, LabSocket, wait_for

ORDERS = 30
PARTITIONS = 4


class BillingProcess:
    """A BillingService process started by the test, its reports collected as they come."""

    def __init__(self, settings: dict) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kafkalab.kafka.billing_service", json.dumps(settings)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self.reports: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.reports.append(json.loads(line))

    def events(self, event: str) -> list[dict]:
        return [r for r in list(self.reports) if r["event"] == event]

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


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
            process.end()
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


def test_a_twin_fences_the_older_instance(pipeline: Pipeline) -> None:
    config = BillingConfig(mode=BillingMode.EXACTLY_ONCE, processing_delay_ms=0, batch_size=10)
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
def test_a_kill_mid_batch_then_restart_in_the_lab(lab: Lab, page: LabSocket, kafka_cluster: LocalCluster, mode) -> None:
    billing = BillingPage(page)
    lab.burst(ORDERS)
    name = billing_start(lab, mode=mode, processing_delay_ms=300)
    assert instances(lab)[name]["mode"] == str(mode)
    wait_for(
        lambda: (b := instances(lab)[name])["batches"] >= 1 and b["in_batch"] >= 3,
        "a batch under way after the first committed",
        every=0.1,
    )
    pid = instances(lab)[name]["pid"]
    assert "SIGKILL" in billing_act(lab, name, "kill")
    wait_for(lambda: instances(lab)[name]["status"] == "killed", f"{name} killed")
    assert pid not in billing_processes()
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
