"""The lab's live lanes read the topic itself: records from any client reach a connected websocket."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from confluent_kafka import Producer

from kafkalab.kafka.partitioner import crc32_partition_for, partition_for
from tests.factories import HTMX, order_form_data
from tests.integration.lab_support import Learner, event_box, kcat_produce, lab_socket_open, receive_until, text

pytestmark = pytest.mark.django_db(transaction=True)

KCAT_KEY = "somekey"
PYTHON_KEY = "python-key"


def python_produce(bootstrap: str, topic: str, *, key: str, value: bytes) -> None:
    """A plain confluent_kafka producer with librdkafka's defaults (CRC32 for keys)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0


def has_box(key: str):
    return lambda fragment: "data-offset=" in fragment and f'data-key="{key}"' in fragment


async def test_records_from_kcat_and_other_clients_reach_the_websocket(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    assert crc32_partition_for(KCAT_KEY.encode(), 4) != partition_for(KCAT_KEY.encode(), 4), "a key they disagree on"

    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")

        await asyncio.to_thread(kcat_produce, bootstrap, learner.topic, key=KCAT_KEY, value=b"hello from kcat\n")
        kcat_at = event_box(await receive_until(socket, has_box(KCAT_KEY), "kcat's record"), KCAT_KEY)

        await asyncio.to_thread(python_produce, bootstrap, learner.topic, key=PYTHON_KEY, value=b'{"from": "python"}')
        python_at = event_box(
            await receive_until(socket, has_box(PYTHON_KEY), "the Python client's record"), PYTHON_KEY
        )

        order_id = "live-0001"
        created = await sync_to_async(learner.post)("orders/", order_form_data(order_id=order_id))
        assert created.status_code == 200, text(created)
        order_at = event_box(await receive_until(socket, has_box(order_id), "the page-made order"), order_id)

    assert kcat_at[0] == crc32_partition_for(KCAT_KEY.encode(), 4)
    assert python_at[0] == crc32_partition_for(PYTHON_KEY.encode(), 4)
    assert order_at[0] == partition_for(order_id.encode(), 4)
    assert f"partition <strong>{order_at[0]}</strong>, offset <strong>{order_at[1]}</strong>" in text(created)

    partition, offset = kcat_at
    inspector = await sync_to_async(learner.client.get)(learner.url(f"events/{partition}/{offset}/"), headers=HTMX)
    assert inspector.status_code == 200
    page = text(inspector)
    assert 'id="inspector"' in page and "<html" not in page, "htmx gets the inspector alone"
    assert f"<code>{KCAT_KEY}</code>" in page
    assert f"mod 4 partitions = <strong>{partition_for(KCAT_KEY.encode(), 4)}</strong>" in page
    assert f"Yet it sits in partition {partition}: that is where librdkafka's default partitioner (CRC32" in page
    assert f"a Java producer would have chosen {partition_for(KCAT_KEY.encode(), 4)}" in page
    assert "hello from kcat" in page


async def test_the_next_records_push_waits_until_the_page_says_it_drew_the_last(
    kafka_cluster, learner: Learner, settings
):
    """Flow control: a page is never sent records faster than it draws them. Records that come
    meanwhile wait and go out together when the page says "drawn"."""
    settings.LAB_DRAW_TIMEOUT_SECONDS = 60.0  # longer than this test: only "drawn" releases them
    bootstrap = kafka_cluster.bootstrap_servers()
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")

        await asyncio.to_thread(python_produce, bootstrap, learner.topic, key="first", value=b"{}")
        await receive_until(socket, has_box("first"), "the first record")
        for key in ("second", "third"):
            await asyncio.to_thread(python_produce, bootstrap, learner.topic, key=key, value=b"{}")
        # The runner has them within milliseconds; this page has not said it drew "first".
        await asyncio.sleep(0.5)
        held = []
        while not await socket.receive_nothing(timeout=0.05):
            held.append(await socket.receive_from())
        assert not any(has_box(key)(fragment) for fragment in held for key in ("second", "third")), held

        await socket.send_to(text_data="drawn")
        together = await receive_until(socket, has_box("second"), "the records that waited")
        assert has_box("third")(together), "both in the one push"


async def test_a_page_that_never_says_it_drew_still_gets_its_records(kafka_cluster, learner: Learner, settings):
    settings.LAB_DRAW_TIMEOUT_SECONDS = 0.2
    bootstrap = kafka_cluster.bootstrap_servers()
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")
        for key in ("one", "two", "three"):
            await asyncio.to_thread(python_produce, bootstrap, learner.topic, key=key, value=b"{}")
            await receive_until(socket, has_box(key), f"record {key}, with no 'drawn' ever sent")
