"""The dead-letter topic as lanes of its own, and the poison mark a dead letter puts on the orders
record it points at: written here by a plain confluent-kafka client, as any other app would set a
record aside (the lab's own NotificationService does it in consumer_groups/test_poison_pills.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable

import pytest
from asgiref.sync import sync_to_async
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from kafkalab.kafka import dead_letters
from tests.factories import HTMX
from tests.integration.lab_support import (
    KAFKA_TIMEOUT,
    Learner,
    event_box,
    lab_socket_open,
    partition_count,
    receive_until,
    state_json,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "poison-0001"
FOREIGN_APP = "billing-v0"  # not one of the lab's consumers: only Kafka's headers name it


def dlq_topic(learner: Learner) -> str:
    return f"{learner.topic}.dlq"


def produce(bootstrap: str, topic: str, *, key: str, value: bytes, headers: list | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=key.encode(), value=value, headers=headers or [])
    assert producer.flush(KAFKA_TIMEOUT) == 0


def dead_letter_headers(topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    return [
        (dead_letters.TOPIC, topic.encode()),
        (dead_letters.PARTITION, str(partition).encode()),
        (dead_letters.OFFSET, str(offset).encode()),
        (dead_letters.REASON, b"not-decodable"),
        (dead_letters.ERROR, b"the value is not JSON"),
        (dead_letters.CONSUMER, FOREIGN_APP.encode()),
        (dead_letters.ATTEMPTS, b"1"),
        (dead_letters.TIME, b"1700000000000"),
    ]


def topic_delete(bootstrap: str, topic: str) -> None:
    """Delete the topic and wait until the cluster's metadata no longer lists it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    with contextlib.suppress(Exception):  # already gone: fine
        admin.delete_topics([topic])[topic].result(KAFKA_TIMEOUT)
    wait_until(lambda: partition_count(bootstrap, topic) is None, f"{topic} deleted")


def any_of(patterns: Iterable[re.Pattern]) -> Callable[[str], bool]:
    patterns = list(patterns)
    return lambda fragment: any(pattern.search(fragment) for pattern in patterns)


async def receive_all(socket, wanted: dict[str, re.Pattern]) -> dict[str, re.Match]:
    """Fragments until each pattern has matched one: a records push and a panels push may come
    in either order."""
    found: dict[str, re.Match] = {}
    while len(found) < len(wanted):
        missing = {name: pattern for name, pattern in wanted.items() if name not in found}
        fragment = await receive_until(socket, any_of(missing.values()), ", ".join(missing))
        found.update({name: match for name, p in missing.items() if (match := p.search(fragment))})
    return found


async def test_a_dead_letter_from_another_client_lands_in_the_dlq_lanes_and_marks_its_orders_record(
    kafka_cluster, learner: Learner, settings
):
    settings.LAB_DRAW_TIMEOUT_SECONDS = 0.2  # this socket never says "drawn"
    bootstrap = kafka_cluster.bootstrap_servers()
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        page = await receive_until(socket, lambda f: 'data-lane="3"' in f, "the orders topic's lanes")
        assert f'id="lanes" class="lanes" data-topic="{learner.topic}"' in page
        assert f'id="dlq-lanes" class="lanes" data-topic="{dlq_topic(learner)}"' in page
        assert 'data-dlq-lane="0"' in page

        await asyncio.to_thread(produce, bootstrap, learner.topic, key=KEY, value=b"\xff\xfe not json")
        box = await receive_until(socket, lambda f: f'data-key="{KEY}"' in f, "the orders record's box")
        partition, offset = event_box(box, KEY)
        assert "data-poison" not in box, "nobody has said it is poison yet"

        headers = dead_letter_headers(learner.topic, partition, offset)
        await asyncio.to_thread(
            produce, bootstrap, dlq_topic(learner), key=KEY, value=b"\xff\xfe not json", headers=headers
        )
        found = await receive_all(
            socket,
            {
                "the dead letter's box": re.compile(
                    r'<div id="dlq-lane-0-events" hx-swap-oob="beforeend"><a class="event event--dead-letter[^>]*'
                    rf'data-offset="0" data-key="{KEY}"[^>]*data-origin="P{partition}@{offset}" '
                    r'data-reason="not-decodable"'
                ),
                "the orders box, marked in place": re.compile(
                    rf'<a class="event [^>]*event--poison[^>]*data-partition="{partition}" data-offset="{offset}" '
                    rf'data-key="{KEY}"[^>]*data-poison="not-decodable" title="([^"]*)"[^>]*'
                    rf"hx-swap-oob=\"outerHTML:#lane-{partition}-events \[data-offset='{offset}'\]\""
                ),
                "the count": re.compile(r'<span id="dlq-count" class="view-count" hx-swap-oob="true">1 record</span>'),
            },
        )
        assert FOREIGN_APP in found["the orders box, marked in place"].group(1), "who set it aside, by the headers"

    state = await state_json(learner)
    assert state["dlq"]["topic"] == dlq_topic(learner) and state["dlq"]["records"] == 1
    assert [p["log_end"] for p in state["dlq"]["partitions"]] == [1]
    assert {"partition": partition, "offset": offset, "reason": "not-decodable", "consumer": FOREIGN_APP} | {
        "message": "the value is not JSON",
        "action": "dead-lettered",
    } in state["poison"]
    assert [p["blocked_at"] for p in state["topics"][0]["partitions"]] == [None] * 4

    inspected = await sync_to_async(learner.client.get)(learner.url("events/0/0/?view=dlq"), headers=HTMX)
    assert inspected.status_code == 200
    shown = inspected.content.decode()
    assert dlq_topic(learner) in shown and 'data-testid="why-dead-letter"' in shown, shown[:2000]
    assert 'data-testid="why-partition"' not in shown and dead_letters.OFFSET in shown


async def test_a_lab_without_its_dead_letter_topic_shows_it_empty_and_stays_live(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    await asyncio.to_thread(topic_delete, bootstrap, dlq_topic(learner))
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        page = await receive_until(socket, lambda f: 'data-lane="3"' in f, "the orders topic's lanes")
        assert f"There is no topic <code>{dlq_topic(learner)}</code> yet" in page
        assert 'data-dlq-lane="0"' not in page

        await asyncio.to_thread(produce, bootstrap, learner.topic, key="still-live", value=b"{}")
        await receive_until(socket, lambda f: 'data-key="still-live"' in f, "a record after all")

    state = await state_json(learner)
    assert state["dlq"] == {"topic": dlq_topic(learner), "partitions": [], "records": 0}
