"""Poison pills on real NotificationService processes: each failure policy meets a record that a
foreign client (a plain confluent-kafka Producer) wrote, and "Replay DLQ" brings dead letters back.

Kafka's own view (committed offsets, the dead-letter topic, the orders topic after a replay) is
asked by the test with plain clients; the app's view through state.json and the lab's websocket.
"""

from __future__ import annotations

import io
import json
import time
import uuid

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from kafkalab.kafka import dead_letters, readers
from kafkalab.labs import events
from tests.integration.consumer_groups.support import (
    PARTITIONS,
    GroupView,
    Lab,
    LabSocket,
    Server,
    processes_of,
    wait_for,
)
from tests.integration.lab_support import KAFKA_TIMEOUT, Record

ALL = list(range(PARTITIONS))
# Commits follow within a third of a second, so the tests need not wait out the 5 s default.
QUICK_COMMITS = {"auto_commit_interval_ms": 300}
NOT_JSON = b"\x7f not JSON {"
# The brokers' default limit on a record (message.max.bytes): the orders topic takes no bigger.
ORDERS_MAX_BYTES = 1_048_588


def write(bootstrap: str, topic: str, *, partition: int, value: bytes, key: bytes = b"k", headers=()) -> int:
    """One record written as another client would, to `partition`; its offset once acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 3 * ORDERS_MAX_BYTES})
    delivered = []
    producer.produce(
        topic,
        partition=partition,
        key=key,
        value=value,
        headers=list(headers) or None,
        on_delivery=lambda error, message: delivered.append((error, message)),
    )
    assert producer.flush(30) == 0
    [(error, message)] = delivered
    assert error is None, f"Kafka refused the record: {error}"
    return message.offset()


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every committed record of the topic, as a read_committed consumer sees it: a transaction's
    marker (or an aborted record) at a partition's end is no record, so read to each partition's end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kafkalab-tests-{uuid.uuid4()}",  # never joined: partitions are assigned
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records, unread = [], set(partitions)
        deadline = time.monotonic() + KAFKA_TIMEOUT
        while unread:
            assert time.monotonic() < deadline, f"{topic}: could not read to the end of {sorted(unread)}"
            for message in consumer.consume(num_messages=500, timeout=0.2):
                if message.error() is not None:
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        unread.discard(message.partition())
                    continue
                headers = dict(message.headers() or [])
                records.append(Record(message.partition(), message.offset(), message.key(), message.value(), headers))
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def order(order_id: str, **extra: object) -> bytes:
    body = events.order_created(
        order_id=order_id, customer_id="c-42", items=[{"productId": "mug", "quantity": 1, "price": 8.5}]
    )
    return events.encode({**body, **extra})


CREATED = (("event-type", b"OrderCreated"),)


def write_order(bootstrap: str, lab: Lab, *, partition: int, order_id: str) -> int:
    return write(
        bootstrap, lab.topic, partition=partition, key=order_id.encode(), value=order(order_id), headers=CREATED
    )


def dlq_topic(lab: Lab) -> str:
    return f"{lab.topic}.dlq"


def start_alone(lab: Lab, group: GroupView, **config: object) -> str:
    name = lab.add_consumer(**QUICK_COMMITS, **config)
    group.wait_assignment(lambda a: a == {name: ALL}, f"{name} owning every partition")
    return name


def failures(lab: Lab, name: str) -> dict:
    return lab.consumers()[name]["failures"]


def committed_at(group: GroupView, partition: int, offset: int) -> bool:
    return group.committed().get(partition) == offset


def replay(lab: Lab) -> tuple[int, str]:
    """Click "Replay DLQ"; the status and the notice it shows."""
    response = lab.browser.post(lab.url("dlq/replay/"))
    return response.status, response.text


def test_crash_blocks_its_partition_in_a_crash_loop_while_the_others_flow(
    lab: Lab, group: GroupView, page: LabSocket, kafka_cluster
):
    bootstrap = kafka_cluster.bootstrap_servers()
    name = start_alone(lab, group, failure_policy="crash")
    write_order(bootstrap, lab, partition=1, order_id="before-it")
    poison = write(bootstrap, lab.topic, partition=1, value=NOT_JSON)
    write_order(bootstrap, lab, partition=1, order_id="after-it")

    wait_for(lambda: failures(lab, name)["crashes"] >= 1, f"{name} crashing on the poison record")
    write_order(bootstrap, lab, partition=2, order_id="elsewhere")

    crashing = wait_for(lambda: (f := failures(lab, name))["crashes"] >= 2 and f, f"{name} crashing again")
    assert crashing["crashed_on"] == [1, poison] and crashing["crash_looping"]
    assert f"offset {poison}" in lab.consumers()[name]["last_error"]
    wait_for(lambda: committed_at(group, 2, 1), "the other partition's order committed between crashes")
    assert committed_at(group, 1, poison), "no commit passes the poison record, not even auto-commit"
    state = lab.state()
    assert state["outbox"]["sent"] == 2, "the order before it and the one elsewhere; never the one after it"
    assert state["groups"][0]["lag"]["1"] == 2, "the poison record and the order after it wait"
    page.wait(
        lambda shown: (card := shown.cards.get(name)) and 'data-crashes="' in card.html, "the card counting the crashes"
    )

    assert lab.act(name, "stop").status == 200
    lab.wait_status(name, "stopped")
    crashes = failures(lab, name)["crashes"]
    time.sleep(2.5)  # longer than the restart it was waiting for
    assert (lab.consumers()[name]["status"], failures(lab, name)["crashes"]) == ("stopped", crashes)
    assert processes_of(lab) == [], "Stop ended the crash loop"


def test_skip_moves_past_each_record_its_reader_cannot_read_and_the_outbox_shows_missed_emails(
    lab: Lab, group: GroupView, page: LabSocket, lab_server: Server, kafka_cluster
):
    bootstrap = kafka_cluster.bootstrap_servers()
    # Version 1 in Avro, registered as a producer's serializer would, in the app's own registry.
    registry = SchemaRegistryClient({"url": f"{lab_server.url}/registry"})
    schema_id = registry.register_schema(f"{lab.topic}-value", Schema(json.dumps(readers.V1_AVRO), "AVRO"))
    avro = io.BytesIO()
    fastavro.schemaless_writer(avro, fastavro.parse_schema(readers.V1_AVRO), json.loads(order("in-avro")))
    name = start_alone(lab, group, reader="registry", failure_policy="skip")

    write(bootstrap, lab.topic, partition=0, value=NOT_JSON)
    write(bootstrap, lab.topic, partition=0, value=readers.frame(999_999_999, b"\x02"))  # an id nobody registered
    write_order(bootstrap, lab, partition=0, order_id="plain-json")  # no schema id: not for this reader
    write(bootstrap, lab.topic, partition=0, value=readers.frame(schema_id, avro.getvalue()), headers=CREATED)

    wait_for(lambda: committed_at(group, 0, 4), "the group committing past all four records")
    shown = page.wait(lambda shown: shown.outbox == (1, 0, 3) and shown, "one email sent and three missed")
    assert shown.missed_reasons == ["no-schema-id", "unknown-schema-id", "not-decodable"], "newest first"
    assert failures(lab, name)["skipped"] == 3


def test_dead_letter_sets_the_record_aside_with_why_and_a_replay_brings_it_back(
    lab: Lab, group: GroupView, kafka_cluster
):
    bootstrap = kafka_cluster.bootstrap_servers()
    strict = start_alone(lab, group, reader="strict", failure_policy="dead-letter")
    headers = (*CREATED, ("trace-id", b"t-1"))
    value = order("with-sku", sku="MUG-7")  # a field the strict reader does not know
    offset = write(bootstrap, lab.topic, partition=3, key=b"with-sku", value=value, headers=headers)

    [letter] = wait_for(lambda: read_topic(bootstrap, dlq_topic(lab)), "the record in the dead-letter topic")
    assert (letter.key, letter.value) == (b"with-sku", value), "the original key and value, byte for byte"
    assert (letter.headers["event-type"], letter.headers["trace-id"]) == (b"OrderCreated", b"t-1")
    why = {
        name[len(dead_letters.PREFIX) :]: raw.decode()
        for name, raw in letter.headers.items()
        if name.startswith(dead_letters.PREFIX)
    }
    error, at_ms = why.pop("error"), int(why.pop("time"))
    assert why == {
        "reason": "contract",
        "topic": lab.topic,
        "partition": "3",
        "offset": str(offset),
        "consumer": strict,
        "reader": "strict",
        "attempts": "1",
    }
    assert "sku" in error and abs(at_ms / 1000 - time.time()) < 120
    wait_for(lambda: committed_at(group, 3, offset + 1), "the group committing past the dead-lettered record")
    assert lab.state()["outbox"]["missed"] == 0, "set aside, not lost"

    # Replayed while the strict reader still runs: back it comes, and the notice says it will fail again.
    status, notice = replay(lab)
    assert status == 200 and "Replayed 1 dead letter" in notice
    assert f"{strict}&#x27;s strict reader still can" in notice
    wait_for(lambda: len(read_topic(bootstrap, dlq_topic(lab))) == 2, "the strict reader setting it aside again")

    assert lab.act(strict, "stop").status == 200
    lab.wait_status(strict, "stopped")
    tolerant = start_alone(lab, group, reader="tolerant")
    status, notice = replay(lab)
    assert status == 200 and "Replayed 1 dead letter" in notice, "only the dead letter since the last replay"
    assert "Every running consumer" in notice
    wait_for(lambda: lab.state()["outbox"]["sent"] == 1, f"{tolerant} emailing the replayed order")
    replayed = [r for r in read_topic(bootstrap, lab.topic) if dead_letters.REPLAYED_FROM in r.headers]
    assert [r.headers[dead_letters.REPLAYED_FROM] for r in replayed] == [b"0:0", b"0:1"]
    assert all(r.value == value and r.headers["trace-id"] == b"t-1" for r in replayed)
    assert not any(name.startswith(dead_letters.PREFIX) for r in replayed for name in r.headers)

    status, notice = replay(lab)
    assert status == 200 and "Nothing to replay" in notice


def test_retry_tries_again_with_backoff_then_dead_letters(lab: Lab, group: GroupView, kafka_cluster):
    bootstrap = kafka_cluster.bootstrap_servers()
    name = start_alone(lab, group, failure_policy="retry", retry_attempts=2, retry_backoff_ms=100)
    offset = write(bootstrap, lab.topic, partition=2, value=NOT_JSON)
    write_order(bootstrap, lab, partition=2, order_id="after-it")

    [letter] = wait_for(lambda: read_topic(bootstrap, dlq_topic(lab)), "the record dead-lettered after its retries")
    assert letter.headers[dead_letters.ATTEMPTS] == b"3", "the first try and two retries"
    assert letter.headers[dead_letters.OFFSET] == str(offset).encode()
    wait_for(lambda: lab.state()["outbox"]["sent"] == 1, "the order after it emailed")
    assert (failures(lab, name)["retries"], failures(lab, name)["dead_lettered"]) == (2, 1)


def test_a_replay_that_fails_midway_writes_nothing_and_keeps_its_cursor(lab: Lab, kafka_cluster):
    bootstrap = kafka_cluster.bootstrap_servers()
    # Dead letters as a consumer would leave them; the second is too big for the orders topic.
    write(bootstrap, dlq_topic(lab), partition=0, value=order("fits"), headers=CREATED)
    write(bootstrap, dlq_topic(lab), partition=0, value=b"x" * (ORDERS_MAX_BYTES + 1000), headers=CREATED)

    status, notice = replay(lab)

    assert status == 503 and "Nothing was replayed" in notice
    assert read_topic(bootstrap, lab.topic) == [], "the record that fitted was aborted with the one that did not"
    status, notice = replay(lab)
    assert status == 503, "the cursor did not move: the same two are tried again"
