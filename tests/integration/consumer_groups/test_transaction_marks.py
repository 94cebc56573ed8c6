"""The lanes mark what transactions did, from what Kafka holds, whoever wrote them: here a foreign
client (a plain confluent-kafka transactional Producer, not the app) commits, aborts and leaves a
transaction open, and the page and state.json show it as Kafka does (its last stable offset as
an AdminClient reads it)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import IsolationLevel, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from tests.integration.consumer_groups.support import Lab, LabSocket, wait_for
from tests.integration.lab_support import KAFKA_TIMEOUT

PARTITION = 1


@pytest.fixture
def foreign_producer(kafka_cluster) -> Iterator[Producer]:
    """Another client's transactional producer (gone at the test's end, before the brokers)."""
    producer = Producer(
        {"bootstrap.servers": kafka_cluster.bootstrap_servers(), "transactional.id": f"foreign-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(KAFKA_TIMEOUT)
    yield producer
    del producer


def write_in_transaction(producer: Producer, topic: str, count: int) -> list[int]:
    """`count` records in the open transaction, sent and acknowledged; their offsets."""
    offsets = []
    for n in range(count):
        producer.produce(
            topic,
            key=f"k{n}".encode(),
            value=b'{"orderId": "x"}',
            partition=PARTITION,
            on_delivery=lambda error, message: offsets.append(message.offset()),
        )
    assert producer.flush(KAFKA_TIMEOUT) == 0
    return sorted(offsets)


def kafka_last_stable(bootstrap: str, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, PARTITION)
    answer = admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=IsolationLevel.READ_COMMITTED)
    return answer[tp].result(timeout=KAFKA_TIMEOUT).offset


def inspector_says(lab: Lab, offset: int) -> str:
    """What the inspector says a read_committed consumer makes of the record."""
    page = lab.browser.get(lab.url(f"events/{PARTITION}/{offset}/")).text
    return re.search(r'data-read-committed="([a-z]+)"', page).group(1)


def state_partition(lab: Lab) -> dict:
    [orders] = [topic for topic in lab.state()["topics"] if topic["role"] == "orders"]
    return next(p for p in orders["partitions"] if p["partition"] == PARTITION)


def test_a_foreign_transaction_is_marked_open_then_committed_or_aborted_with_its_markers(
    lab: Lab, page: LabSocket, kafka_cluster, foreign_producer: Producer
):
    bootstrap = kafka_cluster.bootstrap_servers()
    producer = foreign_producer

    producer.begin_transaction()
    first = write_in_transaction(producer, lab.topic, 2)
    page.wait(lambda shown: all(shown.boxes.get((PARTITION, o)) == "open" for o in first), "the records marked open")
    shown = page.wait(lambda shown: shown.ends.get(PARTITION) == (first[-1] + 1, first[0]) and shown, "the LSO")
    assert shown.ends[PARTITION] == (first[-1] + 1, first[0]), "the LSO waits at the open transaction's first record"
    assert kafka_last_stable(bootstrap, lab.topic) == first[0]
    wait_for(lambda: state_partition(lab)["last_stable"] == first[0], "state.json's LSO where Kafka has it")
    assert inspector_says(lab, first[0]) == "waits"

    producer.commit_transaction(KAFKA_TIMEOUT)
    commit_at = first[-1] + 1
    page.wait(lambda shown: shown.markers.get((PARTITION, commit_at)) == "commit", "the COMMIT marker")
    page.wait(lambda shown: all(shown.boxes.get((PARTITION, o), "?") is None for o in first), "the records plain again")
    assert inspector_says(lab, first[0]) == "reads"

    producer.begin_transaction()
    aborted = write_in_transaction(producer, lab.topic, 2)
    assert aborted[0] == commit_at + 1, "the marker took an offset"
    producer.abort_transaction(KAFKA_TIMEOUT)
    abort_at = aborted[-1] + 1
    page.wait(lambda shown: shown.markers.get((PARTITION, abort_at)) == "abort", "the ABORT marker")
    page.wait(lambda shown: all(shown.boxes.get((PARTITION, o)) == "aborted" for o in aborted), "the aborted records")
    page.wait(lambda shown: shown.ends.get(PARTITION) == (abort_at + 1, abort_at + 1), "the LSO back at the log end")

    assert kafka_last_stable(bootstrap, lab.topic) == abort_at + 1
    assert inspector_says(lab, aborted[0]) == "skips"
    wait_for(lambda: state_partition(lab)["last_stable"] == abort_at + 1, "state.json's LSO at the log end")
    partition = state_partition(lab)
    assert partition["aborted"] == aborted
    assert partition["markers"] == [
        {"offset": commit_at, "control": "commit"},
        {"offset": abort_at, "control": "abort"},
    ]
