"""The lab's topic: more partitions move keys, fewer are refused, state.json shows it, reset empties it."""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async

from kafkalab.kafka.partitioner import partition_for
from kafkalab.labs.models import LabOrder
from tests.factories import order_form_data
from tests.integration.lab_support import (
    KAFKA_TIMEOUT,
    Learner,
    log_ends,
    log_offsets,
    partition_count,
    read_topic,
    state_json,
    text,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

OFFSETS = ("log_start", "log_end", "last_stable")
ACKNOWLEDGED = re.compile(r"Kafka acknowledged it: partition <strong>(\d+)</strong>, offset <strong>(\d+)</strong>")


def order_key(*, moves: bool, new_partition: bool = False) -> str:
    """An orderId whose partition changes (or not) when the topic grows from 4 to 6 partitions;
    with new_partition, one that then hashes to one of the two new partitions."""
    for number in range(1000):
        key = f"ord{number:05d}-key-affinity".encode()
        before, after = partition_for(key, 4), partition_for(key, 6)
        if (before != after) == moves and (after >= 4 or not new_partition):
            return key.decode()
    raise AssertionError("no such key")


def acknowledged_at(response) -> int:
    assert response.status_code == 200, text(response)
    match = ACKNOWLEDGED.search(text(response))
    assert match, text(response)
    return int(match.group(1))


def test_more_partitions_move_keys_and_fewer_are_refused(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    moving, staying = order_key(moves=True), order_key(moves=False)
    for order_id in (moving, staying):
        assert acknowledged_at(learner.post("orders/", order_form_data(order_id=order_id))) == partition_for(
            order_id.encode(), 4
        )

    grown = learner.post("partitions/", {"partitions": "6"})

    assert grown.status_code == 200, text(grown)
    page = text(grown)
    assert "The topic now has <strong>6</strong> partitions (was 4)" in page
    assert "<strong>1 of 2</strong> recent order keys now hash to a different partition" in page
    before, after = partition_for(moving.encode(), 4), partition_for(moving.encode(), 6)
    assert f"<td><code>{moving[:8]}</code></td><td>P{before}</td><td>P{after}</td>" in page
    assert f"<code>{staying[:8]}</code>" not in page
    wait_until(lambda: partition_count(bootstrap, learner.topic) == 6, "the topic growing to 6 partitions")

    # The key-affinity lesson: the order's next event lands apart from its OrderCreated.
    assert acknowledged_at(learner.post("orders/advance/", {"order_id": moving})) == after
    assert acknowledged_at(learner.post("orders/advance/", {"order_id": staying})) == partition_for(staying.encode(), 6)
    events = [(r.event_type, r.partition) for r in read_topic(bootstrap, learner.topic) if r.key == moving.encode()]
    assert events == [("OrderCreated", before), ("OrderPaid", after)]

    ends = log_ends(bootstrap, learner.topic)
    shrunk = learner.post("partitions/", {"partitions": "3"})
    assert shrunk.status_code == 422
    assert "Kafka refused: a topic&#x27;s partition count can only grow (6 → 3 asked)." in text(shrunk)
    assert "Kafka said:" in text(shrunk)
    assert partition_count(bootstrap, learner.topic) == 6

    too_many = learner.post("partitions/", {"partitions": "13"})
    assert too_many.status_code == 422
    assert "A lab topic may have at most 12 partitions." in text(too_many)
    assert partition_count(bootstrap, learner.topic) == 6
    assert log_ends(bootstrap, learner.topic) == ends


async def test_state_json_shows_every_partition_with_its_replicas_and_offsets(kafka_cluster, learner: Learner):
    async def partitions() -> list[dict]:
        return (await state_json(learner))["topics"][0]["partitions"]

    # Just after the topic is created its leaders may still be settling: wait for every offset.
    deadline = asyncio.get_running_loop().time() + KAFKA_TIMEOUT
    while not all(p.get(field) is not None for p in await partitions() for field in OFFSETS):
        assert asyncio.get_running_loop().time() < deadline, "every partition's offsets in state.json"
        await asyncio.sleep(0.2)
    state = await state_json(learner)

    assert state["cluster"]["bootstrap_servers"] == kafka_cluster.bootstrap_servers()
    assert state["lab"]["id"] == learner.lab_id and state["lab"]["name"] == f"lab-{learner.lab_id}"
    topic = state["topics"][0]
    assert topic["name"] == learner.topic
    assert [p["partition"] for p in topic["partitions"]] == [0, 1, 2, 3]
    for partition in topic["partitions"]:
        assert partition["leader"] in partition["replicas"]
        assert sorted(partition["replicas"]) == [1, 2, 3]
        assert set(partition["isr"]) <= set(partition["replicas"])
        assert partition["leader"] in partition["isr"]
        assert (partition["log_start"], partition["log_end"], partition["last_stable"]) == (0, 0, 0)

    order_id = "state-json-0001"
    written_to = acknowledged_at(await sync_to_async(learner.post)("orders/", order_form_data(order_id=order_id)))
    assert written_to == partition_for(order_id.encode(), 4)
    expected = {p: (1, 1) if p == written_to else (0, 0) for p in range(4)}
    # state.json answers from the runner's live model, which sees the record within a probe round.
    while {p["partition"]: (p["log_end"], p["last_stable"]) for p in await partitions()} != expected:
        assert asyncio.get_running_loop().time() < deadline + KAFKA_TIMEOUT, "the new record in state.json"
        await asyncio.sleep(0.1)


def test_reset_recreates_the_topic_empty_and_forgets_the_orders(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    order_id = order_key(moves=True, new_partition=True)
    learner.post("orders/burst/", {"count": "20", "key_strategy": "orderId"})
    assert learner.post("partitions/", {"partitions": "6"}).status_code == 200
    acknowledged_at(learner.post("orders/", order_form_data(order_id=order_id)))
    assert sum(log_ends(bootstrap, learner.topic).values()) == 21

    reset = learner.post("reset/", htmx=False)

    assert reset.status_code == 302
    assert reset["Location"] == learner.url()
    assert "Lab reset" in text(learner.client.get(learner.url()))
    assert partition_count(bootstrap, learner.topic) == 4
    assert log_offsets(bootstrap, learner.topic) == dict.fromkeys(range(4), (0, 0))
    assert not LabOrder.objects.filter(lab_id=learner.lab_id).exists()

    # Forgotten, so the same orderId is new again, and it hashes over 4 partitions once more.
    assert acknowledged_at(learner.post("orders/", order_form_data(order_id=order_id))) == partition_for(
        order_id.encode(), 4
    )
    assert [(r.key, r.partition) for r in read_topic(bootstrap, learner.topic)] == [
        (order_id.encode(), partition_for(order_id.encode(), 4))
    ]
