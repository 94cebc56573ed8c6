"""Lesson 5, walked on a real lab: partitions are added, records already written stay where they
are, Kafka refuses to take partitions away, and a known key's new records land elsewhere."""

from __future__ import annotations

import re

from confluent_kafka import Consumer, TopicPartition

from kafkalab.kafka.partitioner import partition_for
from kafkalab.labs.events import CUSTOMERS
from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import Lab, LabSocket

SLUG = "adding-partitions"
MOVED = re.compile(r"Customer (\S+) was in partition (\d+); its newest order went to partition (\d+)\.")


def burst_by_customer(lab: Lab, count: int) -> None:
    """A burst as the page posts it with "key: customerId": the lab's few customers recur."""
    response = lab.browser.post(lab.url("orders/burst/"), {"count": count, "key_strategy": "customerId"})
    assert response.status == 200, response.text[:1000]


def log_ends(bootstrap: str, topic: str, partitions: int) -> list[int]:
    """Each partition's log end offset, as Kafka reports it to a plain client."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafkalab-tests-unused"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def test_adding_partitions_step_by_step(lab: Lab, page: LabSocket, kafka_cluster):
    bootstrap = kafka_cluster.bootstrap_servers()
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert walk.statuses() == {
        "write-keyed": "current",
        "add-partitions": "pending",
        "key-moves": "pending",
        "read-them-all": "pending",
    }

    burst_by_customer(lab, 20)
    why = walk.wait_passed("write-keyed")
    assert "Kafka wrote 20 records" in why, why
    before = log_ends(bootstrap, lab.topic, 4)
    assert sum(before) == 20, before

    walk.predict("add-partitions", 1)
    response = lab.browser.post(lab.url("partitions/"), {"partitions": 8})
    assert response.status == 200, response.text[:1000]
    why = walk.wait_passed("add-partitions")
    assert "The topic went from 4 to 8 partitions" in why, why
    assert "You predicted that." in why, why
    # Kafka's own view: the 20 records are where they were; the new partitions are empty.
    assert log_ends(bootstrap, lab.topic, 8) == [*before, 0, 0, 0, 0]

    # Fewer partitions: Kafka refuses, and the topic panel says so.
    response = lab.browser.post(lab.url("partitions/"), {"partitions": 4})
    assert response.status == 422, response.status
    assert "Kafka refused" in response.text, response.text[:1000]

    # New keys (orderId) never seen before: nothing has moved yet.
    lab.burst(5)
    walk.still_current("key-moves")

    walk.predict("key-moves", 1)
    burst_by_customer(lab, 20)
    why = walk.wait_passed("key-moves")
    moved = MOVED.search(why)
    assert moved, why
    key, old, new = moved.group(1), int(moved.group(2)), int(moved.group(3))
    assert key in CUSTOMERS, key
    assert (old, new) == (partition_for(key.encode(), 4), partition_for(key.encode(), 8)), (key, old, new)
    assert f"with 8 partitions the remainder is {new} instead of {old}" in why, why

    consumer = lab.add_consumer()
    why = walk.wait_passed("read-them-all")
    assert f"{consumer}: P0, P1, P2, P3, P4, P5, P6, P7" in why, why
    assert "Lesson complete" in walk.page()
