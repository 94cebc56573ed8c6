"""OrderService's transactions on real Kafka: begin, orders into it, then commit, abort or leave it
open; the broker aborting it after its timeout; a foreign producer fencing it; bad input; reset.

In-process: the lab runner (which holds the transactional producer) is the embedded one, on the
test's event loop; the page's buttons are posted through the app's views. What Kafka holds is read
by the test's own confluent_kafka consumers, read_committed and read_uncommitted.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from django.test import Client

from kafkalab.kafka.partitioner import crc32_partition_for, partition_for
from kafkalab.labs.models import Lab, LabOrder
from kafkalab.runner.consumer import runner_for_loop
from tests.factories import item_rows, lab_open, order_form_data
from tests.integration.lab_support import (
    KAFKA_TIMEOUT,
    Learner,
    http_get,
    lab_socket_open,
    receive_until,
    share_token_in,
    state_json,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)

TIMED_OUT = "the broker aborted the transaction after its timeout"
FENCED = "another producer with the same transactional.id"
TAKEN_OVER = "took over; this transaction was aborted"


# --- Reading the topic as Kafka's consumers do --------------------------------------------------


def read_as(bootstrap: str, topic: str, isolation: str) -> list[tuple[str | None, str | None]]:
    """(key, event type) of every record a consumer with this isolation.level reads from the start
    to the end it may read to (the log end, or for read_committed the last stable offset)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kafkalab-tests-{uuid.uuid4()}",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        found = []
        deadline = time.monotonic() + KAFKA_TIMEOUT
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{isolation} never reached the end of {topic}"
            for message in consumer.consume(num_messages=500, timeout=0.2):
                if message.error() is not None:
                    assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                    at_end.add(message.partition())
                    continue
                headers = dict(message.headers() or [])
                key = message.key().decode() if message.key() is not None else None
                event = headers.get("event-type", b"").decode() or None
                found.append((key, event))
        return found
    finally:
        consumer.close()


def committed_keys(bootstrap: str, topic: str) -> list[str]:
    return sorted(key for key, _ in read_as(bootstrap, topic, "read_committed"))


def uncommitted_keys(bootstrap: str, topic: str) -> list[str]:
    return sorted(key for key, _ in read_as(bootstrap, topic, "read_uncommitted"))


# --- Driving the lab ----------------------------------------------------------------------------


async def post(learner: Learner, path: str, data: dict | None = None, *, htmx: bool = True):
    # Not in the thread-sensitive thread: the runner writes the lab's rows there while the view
    # waits for its answer, as under daphne, where views that ask the runner run in a pool.
    return await sync_to_async(learner.post, thread_sensitive=False)(path, data, htmx=htmx)


async def act(learner: Learner, action: str, *, status: int = 200) -> str:
    """Begin, Commit, Abort or Leave open, as the buttons post them; the answer's text."""
    response = await post(learner, f"transaction/{action}/")
    assert response.status_code == status, text(response)[:2000]
    return text(response)


async def order(learner: Learner, order_id: str) -> str:
    response = await post(learner, "orders/", order_form_data(order_id=order_id))
    assert response.status_code == 200, text(response)[:2000]
    return text(response)


async def burst(learner: Learner, count: int) -> str:
    response = await post(learner, "orders/burst/", {"count": count, "key_strategy": "orderId"})
    assert response.status_code == 200, text(response)[:2000]
    return text(response)


def rows(lab_id: int) -> dict[str, tuple[bool, str, str]]:
    """orderId → (acknowledged, status, pending status) of the lab's order rows."""
    found = LabOrder.objects.filter(lab_id=lab_id).values_list("order_id", "acknowledged", "status", "pending_status")
    return {order_id: (acknowledged, status, pending) for order_id, acknowledged, status, pending in found}


async def lab_rows(learner: Learner) -> dict[str, tuple[bool, str, str]]:
    return await sync_to_async(rows)(learner.lab_id)


async def wait_state(learner: Learner, check, what: str, *, timeout: float = KAFKA_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = await state_json(learner)
        if check(state):
            return state
        assert time.monotonic() < deadline, f"state.json never showed {what}: {state.get('transaction')!r}"
        await asyncio.sleep(0.2)


def orders_burst_keys(html: str) -> int:
    match = re.search(r"Kafka acknowledged all (\d+) orders", html)
    assert match, html[:2000]
    return int(match.group(1))


async def runner_lets_go(learner: Learner) -> None:
    """The runner forgets the lab, as when it expires: its transaction is aborted, its producer
    closed and its thread stopped (and its observer too)."""
    runner = await runner_for_loop(get_channel_layer())
    await runner.forget(learner.lab_id, "the test is over")


@pytest_asyncio.fixture
async def lab(learner: Learner) -> AsyncIterator[Learner]:
    """The learner's lab with the lab runner up on this test's loop, forgotten afterwards."""
    await state_json(learner)  # the first request starts the embedded runner
    yield learner
    await runner_lets_go(learner)


# --- Commit, abort, leave open -------------------------------------------------------------------


async def test_a_commit_makes_the_transactions_orders_visible_to_read_committed_readers(kafka_cluster, lab: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    began = await act(lab, "begin")
    assert "Transaction begun" in began and 'data-txn-state="open"' in began

    answered = await order(lab, "txn-commit-one")
    assert "Kafka acknowledged it" in answered and "in the open transaction" in answered
    assert 'data-txn-state="open"' in answered and 'data-txn-records="1"' in answered, "the panel shows it at once"
    assert orders_burst_keys(await burst(lab, 5)) == 5
    # librdkafka's default partitioner, picked in the form, places the order in the transaction too.
    crc32_id = next(
        key
        for n in range(100)
        if partition_for((key := f"txn-crc32-{n}").encode(), 4) != crc32_partition_for(key.encode(), 4)
    )
    crc32 = await post(lab, "orders/", order_form_data(order_id=crc32_id, partitioner="consistent_random"))
    assert f"partition <strong>{crc32_partition_for(crc32_id.encode(), 4)}</strong>" in text(crc32), text(crc32)[:2000]

    assert committed_keys(bootstrap, lab.topic) == [], "read_committed readers wait at the last stable offset"
    assert len(uncommitted_keys(bootstrap, lab.topic)) == 7, "read_uncommitted readers see the records at once"
    waiting = await lab_rows(lab)
    assert len(waiting) == 7 and not any(acknowledged for acknowledged, _, _ in waiting.values())
    state = await state_json(lab)
    txn = state["transaction"]
    assert txn["transactional_id"] == f"lab-{lab.lab_id}.order-service"
    assert txn["records"] == 7 and txn["timeout_ms"] == 30_000 and txn["deadline"]
    assert set(txn["partitions"]) <= {0, 1, 2, 3}

    committed = await act(lab, "commit")

    assert "Committed: 7 records" in committed and 'data-txn-state="none"' in committed
    keys = committed_keys(bootstrap, lab.topic)
    assert len(keys) == 7 and "txn-commit-one" in keys and crc32_id in keys
    assert keys == sorted(waiting), "read_committed readers see exactly the transaction's orders"
    assert all(acknowledged for acknowledged, _, _ in (await lab_rows(lab)).values())
    state = await state_json(lab)
    assert state["transaction"] is None
    assert state["transaction_ended"]["outcome"] == "committed"

    again = await act(lab, "commit", status=422)
    assert "There is no open transaction to commit" in again


async def test_an_abort_leaves_the_records_to_read_uncommitted_readers_and_undoes_the_orders(
    kafka_cluster, lab: Learner
):
    bootstrap = kafka_cluster.bootstrap_servers()
    await order(lab, "plain-before")  # no transaction: committed at once
    await act(lab, "begin")
    advanced = await post(lab, "orders/advance/", {"order_id": "plain-before"})
    assert advanced.status_code == 200, text(advanced)
    assert "in the open transaction" in text(advanced)
    assert "OrderPaid waits in the open transaction" in text(advanced)
    await order(lab, "txn-aborted")

    again = await post(lab, "orders/advance/", {"order_id": "plain-before"})
    assert again.status_code == 422 and "waits in the open transaction" in text(again)
    uncommitted = await post(lab, "orders/advance/", {"order_id": "txn-aborted"})
    assert uncommitted.status_code == 422, text(uncommitted)
    assert "not committed yet" in text(uncommitted) and "only a committed order" in text(uncommitted)
    assert (await lab_rows(lab))["plain-before"] == (True, "OrderCreated", "OrderPaid")

    aborted = await act(lab, "abort")

    assert "Aborted: 2 records" in aborted
    assert read_as(bootstrap, lab.topic, "read_committed") == [("plain-before", "OrderCreated")]
    assert sorted(read_as(bootstrap, lab.topic, "read_uncommitted")) == [
        ("plain-before", "OrderCreated"),
        ("plain-before", "OrderPaid"),
        ("txn-aborted", "OrderCreated"),
    ]
    assert await lab_rows(lab) == {"plain-before": (True, "OrderCreated", "")}, "the aborted order is gone"

    # The next transaction, committed, moves the order on.
    await act(lab, "begin")
    assert (await post(lab, "orders/advance/", {"order_id": "plain-before"})).status_code == 200
    await act(lab, "commit")
    assert (await lab_rows(lab))["plain-before"] == (True, "OrderPaid", "")
    assert read_as(bootstrap, lab.topic, "read_committed") == [
        ("plain-before", "OrderCreated"),
        ("plain-before", "OrderPaid"),
    ]


async def test_a_transaction_left_open_is_aborted_by_the_broker_after_its_timeout(kafka_cluster, lab: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    set_timeout = await post(lab, "transaction/timeout/", {"timeout_ms": "5000"})
    assert set_timeout.status_code == 200 and "5,000 ms" in text(set_timeout), text(set_timeout)

    async with lab_socket_open(lab.lab_id, session_id=lab.session_id) as socket:
        await receive_until(socket, lambda f: 'data-txn-state="none"' in f, "the transaction part, none open")
        await act(lab, "begin")
        await order(lab, "left-open")
        left = await act(lab, "leave")
        assert "stays open" in left and 'data-txn-state="open"' in left
        pushed = await receive_until(
            socket, lambda f: 'data-txn-records="1"' in f, "the open transaction with its record, pushed"
        )
        assert "data-txn-deadline=" in pushed and ">Commit</button>" in pushed

        state = await state_json(lab)
        txn = state["transaction"]
        assert txn["records"] == 1 and txn["timeout_ms"] == 5000
        deadline = txn["deadline"]
        assert committed_keys(bootstrap, lab.topic) == []
        assert uncommitted_keys(bootstrap, lab.topic) == ["left-open"]
        page = await http_get(lab.url(), session_id=lab.session_id)
        assert f'data-txn-deadline="{deadline}"' in page[1].decode(), "the page rendered over HTTP says it too"

        ended = await receive_until(
            socket, lambda f: 'data-txn-outcome="timed_out"' in f, "the broker's abort, noticed and pushed"
        )

    assert TIMED_OUT in ended.lower()
    state = await state_json(lab)
    assert state["transaction"] is None and state["transaction_ended"]["outcome"] == "timed_out"
    assert committed_keys(bootstrap, lab.topic) == [], "Kafka aborted it: read_committed readers never see it"
    assert uncommitted_keys(bootstrap, lab.topic) == ["left-open"]
    assert await lab_rows(lab) == {}, "its order is undone"
    status, body = await http_get(lab.url(), session_id=lab.session_id)
    assert status == 200 and TIMED_OUT in body.decode().lower() and 'data-txn-state="none"' in body.decode()
    late = await act(lab, "commit", status=422)
    assert "There is no open transaction to commit" in late and TIMED_OUT in late.lower()


async def test_a_foreign_producer_with_the_same_transactional_id_fences_the_labs(kafka_cluster, lab: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    await act(lab, "begin")
    await order(lab, "fenced-away")
    foreign = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"lab-{lab.lab_id}.order-service"})
    await asyncio.to_thread(foreign.init_transactions, KAFKA_TIMEOUT)  # Kafka aborts the lab's transaction

    refused = await act(lab, "commit", status=422)

    assert FENCED in refused.lower() and TAKEN_OVER in refused, refused[:2000]
    state = await state_json(lab)
    assert state["transaction"] is None and state["transaction_ended"]["outcome"] == "fenced"
    assert committed_keys(bootstrap, lab.topic) == []
    assert await lab_rows(lab) == {}
    # The next Begin makes a new producer, whose own init fences the foreign one in turn.
    await act(lab, "begin")
    await order(lab, "after-fencing")
    assert "Committed: 1 record" in await act(lab, "commit")
    assert committed_keys(bootstrap, lab.topic) == ["after-fencing"]
    await asyncio.to_thread(foreign.close)


# --- Bad input ------------------------------------------------------------------------------------


async def test_bad_input_gets_a_clear_answer_and_changes_nothing(kafka_cluster, lab: Learner):
    for bad in ("4999", "300001", "abc", ""):
        response = await post(lab, "transaction/timeout/", {"timeout_ms": bad})
        assert response.status_code == 422, (bad, text(response)[:500])
        assert "5,000 to 300,000 ms" in text(response)
    without_js = await post(lab, "transaction/timeout/", {"timeout_ms": "1"}, htmx=False)
    assert without_js.status_code == 302
    assert (await sync_to_async(Lab.objects.get)(pk=lab.lab_id)).transaction_timeout_ms == 30_000

    for action in ("commit", "abort", "leave"):
        answer = await act(lab, action, status=422)
        assert "There is no open transaction to" in answer, answer[:500]
    assert (await post(lab, "transaction/commit/", htmx=False)).status_code == 302, "no JavaScript: back to the lab"

    await act(lab, "begin")
    twice = await act(lab, "begin", status=422)
    assert "already open" in twice
    stranger = Client()
    await sync_to_async(lab_open)(stranger)
    assert (
        await sync_to_async(stranger.post, thread_sensitive=False)(lab.url("transaction/abort/"))
    ).status_code == 403
    assert (await state_json(lab))["transaction"] is not None, "still open: nothing else touched it"
    assert "Aborted an empty transaction" in await act(lab, "abort")


async def test_the_labs_limits_apply_inside_a_transaction_and_leave_it_open(kafka_cluster, lab: Learner, settings):
    settings.LAB_MAX_PAYLOAD_BYTES = 200
    settings.LAB_MAX_BURST = 5
    settings.LAB_PRODUCE_RATE = 1
    await act(lab, "begin")

    too_big = await post(lab, "orders/", order_form_data(order_id="too-big", items=item_rows(5)))
    assert too_big.status_code == 422 and "a lab accepts at most 0.2 KiB per event" in text(too_big)
    settings.LAB_MAX_PAYLOAD_BYTES = 16 * 1024
    assert orders_burst_keys(await burst(lab, 5)) == 5
    too_fast = await post(lab, "orders/burst/", {"count": 5, "key_strategy": "orderId"})
    assert too_fast.status_code == 422 and "Slow down" in text(too_fast)

    state = await state_json(lab)
    assert state["transaction"]["records"] == 5, "the refused ones never reached the transaction"
    assert len(await lab_rows(lab)) == 5
    assert "Committed: 5 records" in await act(lab, "commit")
    assert len(committed_keys(kafka_cluster.bootstrap_servers(), lab.topic)) == 5


async def test_an_observer_sees_the_transaction_live_but_no_button(lab: Learner):
    shared = await post(lab, "share/")
    token = share_token_in(text(shared))
    await act(lab, "begin")
    await order(lab, "watched")

    status, body = await http_get(f"/share/{token}/")

    page = body.decode()
    assert status == 200 and 'data-txn-state="open"' in page and 'data-txn-records="1"' in page
    for button in ("Begin transaction", ">Commit<", ">Abort<", ">Leave open<", "transaction.timeout.ms</label>"):
        assert button not in page, button
    async with lab_socket_open(lab.lab_id, session_id=None, share=token) as socket:
        pushed = await receive_until(socket, lambda f: 'id="txn-live"' in f, "the transaction, pushed to the observer")
    assert 'data-txn-state="open"' in pushed and "<button" not in pushed.split('id="txn-live"')[1].split("</div>")[0]


async def test_reset_aborts_an_open_transaction_and_closes_its_producer(kafka_cluster, lab: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    await act(lab, "begin")
    await burst(lab, 3)
    held = (await runner_for_loop(get_channel_layer())).labs[lab.lab_id].transaction
    assert held.open is not None and held._producer is not None

    reset = await post(lab, "reset/", htmx=False)

    assert reset.status_code == 302
    assert held.open is None and held._producer is None, "aborted, and the producer closed"
    state = await state_json(lab)
    assert state["transaction"] is None and state["transaction_ended"] is None
    assert await lab_rows(lab) == {}
    stored = await sync_to_async(Lab.objects.get)(pk=lab.lab_id)
    assert stored.transaction_open is None
    # The new topic starts empty, and a new transaction works on it.
    await act(lab, "begin")
    await order(lab, "after-reset")
    await act(lab, "commit")
    assert committed_keys(bootstrap, lab.topic) == ["after-reset"]


def stable_and_end(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition, (last stable offset, log end), as an AdminClient lists them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=KAFKA_TIMEOUT).topics[topic].partitions
    found = {}
    for isolation in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
        asked = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
        for tp, future in admin.list_offsets(asked, isolation_level=isolation).items():
            found.setdefault(tp.partition, []).append(future.result(timeout=KAFKA_TIMEOUT).offset)
    return {p: (stable, end) for p, (stable, end) in found.items()}


async def test_a_lab_that_expires_aborts_its_open_transaction_at_once(kafka_cluster, learner: Learner):
    """Expiry (and deletion) forget the lab in the runner first: its open transaction is aborted
    there and then, not left to hold back read_committed readers until its timeout."""
    bootstrap = kafka_cluster.bootstrap_servers()
    await state_json(learner)
    await act(learner, "begin")
    await burst(learner, 4)
    held = stable_and_end(bootstrap, learner.topic)
    assert any(stable < end for stable, end in held.values()), f"the open transaction holds the LSO back: {held}"

    await runner_lets_go(learner)

    deadline = time.monotonic() + 10  # well before its 30 s timeout would have the broker abort it
    while True:
        now = await asyncio.to_thread(stable_and_end, bootstrap, learner.topic)
        if all(stable == end for stable, end in now.values()):
            break
        assert time.monotonic() < deadline, f"the transaction still holds the LSO back: {now}"
        await asyncio.sleep(0.1)
    assert committed_keys(bootstrap, learner.topic) == [], "aborted, not committed"
    stored = await sync_to_async(Lab.objects.get)(pk=learner.lab_id)
    assert stored.transaction_open is None and await lab_rows(learner) == {}
