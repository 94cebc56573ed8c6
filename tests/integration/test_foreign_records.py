"""A lab survives any record a foreign client writes to its topic.

Each test writes one hostile record with a plain confluent_kafka producer (or kcat, for bytes the
Python client cannot send), then a normal one, and checks that the lab lives on: both boxes reach
the websocket in pushes of bounded size, the inspector shows the hostile record escaped and
bounded, and state.json answers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from confluent_kafka import Producer

from tests.factories import HTMX
from tests.integration.lab_support import (
    Learner,
    event_box,
    kcat_produce,
    lab_socket_open,
    receive_until,
    state_json,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)

DEEP_JSON = b"[" * 5000 + b"]" * 5000
SCRIPT = "<script>alert('kafkalab')</script>"
# A 1,000,000-byte key fits the brokers' default limit on a record batch (message.max.bytes,
# 1,048,588 bytes); librdkafka's own default (1,000,000) counts the overhead too, so raise it.
PRODUCER_MAX_BYTES = 1_048_588
# Bounds on what the page gets for one record: generous, yet far below the megabytes a
# hostile record used to turn into.
PUSH_BOUND = 64 * 1024
INSPECTOR_BOUND = 256 * 1024
WARM_UP = 20


@dataclass(frozen=True)
class Foreign:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


HOSTILE = {
    "JSON nested 5,000 deep": Foreign(b"deep-json", DEEP_JSON),
    "a key of 1,000,000 bytes of 0xFF": Foreign(b"\xff" * 1_000_000, b'{"orderId": "ff-key", "items": []}'),
    "orderId a number": Foreign(b"number-id", b'{"orderId": 42, "items": []}'),
    "orderId a list": Foreign(b"list-id", b'{"orderId": [1, 2], "items": []}'),
    "orderId null": Foreign(b"null-id", b'{"orderId": null, "items": []}'),
    "a value that is not JSON": Foreign(b"not-json", b"\x00\xff\xfe not JSON {"),
    "an empty value": Foreign(b"empty-value", b""),
    "no value at all": Foreign(b"no-value", None),
    "HTML and script in key, value and headers": Foreign(
        SCRIPT.encode(),
        json.dumps({"orderId": SCRIPT, "note": SCRIPT}).encode(),
        ((SCRIPT, SCRIPT.encode()), ("event-type", SCRIPT.encode())),
    ),
    "a header name of 300,000 bytes": Foreign(b"long-header-name", b"{}", (("h" * 300_000, b"v"),)),
}


def produce(bootstrap: str, topic: str, record: Foreign) -> tuple[int, int]:
    """Write one record as another client would; (partition, offset) where Kafka acknowledged it."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": PRODUCER_MAX_BYTES})
    delivered = []
    producer.produce(
        topic,
        key=record.key,
        value=record.value,
        headers=list(record.headers) or None,
        on_delivery=lambda error, message: delivered.append((error, message)),
    )
    assert producer.flush(60) == 0
    [(error, message)] = delivered
    assert error is None, f"Kafka refused the record: {error}"
    return message.partition(), message.offset()


def box_at(partition: int, offset: int) -> str:
    return f'data-partition="{partition}" data-offset="{offset}"'


def box_of(key: str) -> str:
    return f'data-key="{key}"'


async def pushed_until(socket: WebsocketCommunicator, *marks: str) -> list[str]:
    """Every fragment pushed until all `marks` have shown up in them."""
    fragments: list[str] = []

    def all_seen(fragment: str) -> bool:
        fragments.append(fragment)
        return all(any(mark in f for f in fragments) for mark in marks)

    await receive_until(socket, all_seen, " and ".join(marks))
    return fragments


async def lab_lives_on(learner: Learner, socket: WebsocketCommunicator, bootstrap: str, *, hostile: str) -> str:
    """Write a normal record after the hostile one (`hostile` marks its box) and check that the
    lab still works: both boxes pushed, in small fragments, keys escaped; state.json answers.
    Returns what was pushed."""
    await asyncio.to_thread(produce, bootstrap, learner.topic, Foreign(b"after-it", b'{"orderId": "after-it"}'))
    fragments = await pushed_until(socket, hostile, box_of("after-it"))

    assert max(len(f) for f in fragments) <= PUSH_BOUND, [len(f) for f in fragments]
    assert not any("<script" in f for f in fragments), "keys are escaped in the pushed boxes"
    assert (await state_json(learner))["lab"]["id"] == learner.lab_id
    return "".join(fragments)


async def inspected(learner: Learner, partition: int, offset: int) -> str:
    """The inspector for one record, as the page asks for it: 200, escaped, bounded."""
    inspector = await sync_to_async(learner.client.get)(learner.url(f"events/{partition}/{offset}/"), headers=HTMX)
    assert inspector.status_code == 200, text(inspector)[:500]
    assert len(inspector.content) <= INSPECTOR_BOUND, len(inspector.content)
    page = text(inspector)
    assert "<script" not in page, "whatever the record holds is escaped"
    return page


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_a_lab_lives_on_after_a_hostile_record(kafka_cluster, learner: Learner, case: str):
    bootstrap = kafka_cluster.bootstrap_servers()
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")

        partition, offset = await asyncio.to_thread(produce, bootstrap, learner.topic, HOSTILE[case])
        await lab_lives_on(learner, socket, bootstrap, hostile=box_at(partition, offset))

    page = await inspected(learner, partition, offset)
    if case.startswith("HTML"):
        assert "&lt;script&gt;alert(" in page, "the script is shown, as text"


async def test_a_lab_lives_on_after_header_names_that_are_not_utf8(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")
        # Warm the observer up first: confluent-kafka's error for such a name only raises where
        # it is called until CPython specialises the headers() call, after a few records.
        for n in range(WARM_UP):
            warm = Foreign(f"warm-{n}".encode(), b"{}", (("event-type", b"OrderPaid"),))
            await asyncio.to_thread(produce, bootstrap, learner.topic, warm)
        await pushed_until(socket, *(box_of(f"warm-{n}") for n in range(WARM_UP)))

        await asyncio.to_thread(
            kcat_produce,
            bootstrap,
            learner.topic,
            key=b"bad-header-names",
            value=b'{"orderId": "bad-header-names", "items": []}',
            headers=[b"caf\xe9\xff\xfe=<script>v</script>", b"event-type=OrderPaid"],
        )
        pushed = await lab_lives_on(learner, socket, bootstrap, hostile=box_of("bad-header-names"))

    partition, offset = event_box(pushed, "bad-header-names")
    page = await inspected(learner, partition, offset)
    assert "not UTF-8" in page, "the inspector says why it shows no headers"
