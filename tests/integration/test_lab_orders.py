"""OrderService in a lab: what the page produces is in Kafka, where a Java producer would put it."""

from __future__ import annotations

import re
from collections import Counter

import confluent_kafka
import pytest
from django.conf import settings

from kafkalab.kafka.partitioner import crc32_partition_for, partition_for
from kafkalab.labs.models import LabOrder
from tests.factories import order_form_data
from tests.integration.lab_support import Learner, log_ends, read_topic, text

pytestmark = pytest.mark.django_db(transaction=True)

ACKNOWLEDGED = re.compile(r"Kafka acknowledged it: partition <strong>(\d+)</strong>, offset <strong>(\d+)</strong>")


def keys_murmur2_alone_explains(prefix: str, *, partitions: int = 4) -> list[str]:
    """One key per partition for which librdkafka's default (CRC32) partitioner would choose another."""
    chosen: dict[int, str] = {}
    for number in range(10_000):
        key = f"{prefix}-{number:04d}"
        partition = partition_for(key.encode(), partitions)
        if partition not in chosen and crc32_partition_for(key.encode(), partitions) != partition:
            chosen[partition] = key
        if len(chosen) == partitions:
            return [chosen[p] for p in range(partitions)]
    raise AssertionError("no such keys")


def acknowledged(response) -> tuple[int, int]:
    assert response.status_code == 200, text(response)
    match = ACKNOWLEDGED.search(text(response))
    assert match, text(response)
    return int(match.group(1)), int(match.group(2))


def test_orders_keyed_by_order_id_land_where_murmur2_puts_the_key(kafka_cluster, learner: Learner):
    order_ids = keys_murmur2_alone_explains("order")
    answers = {
        order_id: acknowledged(learner.post("orders/", order_form_data(order_id=order_id))) for order_id in order_ids
    }

    records = {r.key.decode(): r for r in read_topic(kafka_cluster.bootstrap_servers(), learner.topic)}
    assert sorted(records) == sorted(order_ids)
    for order_id in order_ids:
        key, record = order_id.encode(), records[order_id]
        assert partition_for(key, 4) == confluent_kafka.murmur2(key, 4)
        assert record.partition == partition_for(key, 4), order_id
        assert answers[order_id] == (record.partition, record.offset), "the page reports where Kafka put it"
        assert record.event_type == "OrderCreated"
        assert record.headers["content-type"] == b"application/json"
        body = record.body
        assert set(body) == {"orderId", "customerId", "items", "timestamp"}
        assert body["orderId"] == order_id
        assert body["items"] == [{"productId": "kbd-00042", "quantity": 2, "price": 49.0}]
    assert {r.partition for r in records.values()} == {0, 1, 2, 3}
    assert set(LabOrder.objects.filter(lab_id=learner.lab_id).values_list("order_id", flat=True)) == set(order_ids)


def test_orders_keyed_by_customer_share_the_customer_partition_and_unkeyed_ones_have_no_key(
    kafka_cluster, learner: Learner
):
    loyal, other = keys_murmur2_alone_explains("customer")[:2]
    posted = {
        "loyal-1": loyal,
        "loyal-2": loyal,
        "loyal-3": loyal,
        "other-1": other,
    }
    for order_id, customer_id in posted.items():
        acknowledged(
            learner.post(
                "orders/", order_form_data(order_id=order_id, customer_id=customer_id, key_strategy="customerId")
            )
        )
    acknowledged(learner.post("orders/", order_form_data(order_id="keyless-1", key_strategy="none")))

    records = {r.body["orderId"]: r for r in read_topic(kafka_cluster.bootstrap_servers(), learner.topic)}
    for order_id, customer_id in posted.items():
        key = customer_id.encode()
        assert records[order_id].key == key
        assert records[order_id].partition == partition_for(key, 4) == confluent_kafka.murmur2(key, 4)
    assert len({records[f"loyal-{n}"].partition for n in (1, 2, 3)}) == 1
    assert records["keyless-1"].key is None
    assert records["keyless-1"].event_type == "OrderCreated"


def test_order_lifecycle_events_follow_the_order_into_its_partition(kafka_cluster, learner: Learner):
    order_id = "lifecycle-0001"
    created = acknowledged(learner.post("orders/", order_form_data(order_id=order_id)))
    paid = acknowledged(learner.post("orders/advance/", {"order_id": order_id}))
    shipped = acknowledged(learner.post("orders/advance/", {"order_id": order_id}))

    records = [r for r in read_topic(kafka_cluster.bootstrap_servers(), learner.topic) if r.key == order_id.encode()]
    assert [r.event_type for r in records] == ["OrderCreated", "OrderPaid", "OrderShipped"]
    assert [(r.partition, r.offset) for r in records] == [created, paid, shipped]
    assert len({r.partition for r in records}) == 1
    assert created[1] < paid[1] < shipped[1]
    assert all(r.body["orderId"] == order_id for r in records)
    assert LabOrder.objects.get(lab_id=learner.lab_id, order_id=order_id).status == "OrderShipped"

    refused = learner.post("orders/advance/", {"order_id": order_id})
    assert refused.status_code == 422
    assert "already shipped" in text(refused)
    unknown = learner.post("orders/advance/", {"order_id": "never-created"})
    assert unknown.status_code == 422
    assert "not in this lab" in text(unknown)
    assert len(read_topic(kafka_cluster.bootstrap_servers(), learner.topic)) == 3


def test_librdkafkas_default_partitioner_puts_a_key_elsewhere_and_the_orders_lifecycle_follows_it(
    kafka_cluster, learner: Learner
):
    """The partitioner lever: CRC32 (librdkafka's default) where murmur2 (Java's) disagrees."""
    order_id = next(
        f"crc32-{n}"
        for n in range(100)
        if crc32_partition_for(f"crc32-{n}".encode(), 4) != partition_for(f"crc32-{n}".encode(), 4)
    )
    created = acknowledged(learner.post("orders/", order_form_data(order_id=order_id, partitioner="consistent_random")))
    paid = acknowledged(learner.post("orders/advance/", {"order_id": order_id}))

    assert created[0] == paid[0] == crc32_partition_for(order_id.encode(), 4) != partition_for(order_id.encode(), 4)
    murmur2_order = "murmur2-" + order_id
    assert acknowledged(learner.post("orders/", order_form_data(order_id=murmur2_order)))[0] == partition_for(
        murmur2_order.encode(), 4
    )


def test_a_burst_writes_every_order_and_an_oversize_burst_writes_none(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    response = learner.post("orders/burst/", {"count": "200", "key_strategy": "orderId"})

    assert response.status_code == 200, text(response)
    records = read_topic(bootstrap, learner.topic)
    assert len(records) == 200
    assert all(r.event_type == "OrderCreated" and r.partition == partition_for(r.key, 4) for r in records)
    per_partition = ", ".join(f"P{p} {n}" for p, n in sorted(Counter(r.partition for r in records).items()))
    assert "Kafka acknowledged all 200 orders:" in text(response)
    assert f"{per_partition}." in text(response)
    assert LabOrder.objects.filter(lab_id=learner.lab_id).count() == 200

    before = log_ends(bootstrap, learner.topic)
    too_many = learner.post("orders/burst/", {"count": str(settings.LAB_MAX_BURST + 1), "key_strategy": "orderId"})
    assert too_many.status_code == 422
    assert f"A burst is at most {settings.LAB_MAX_BURST} orders." in text(too_many)
    assert log_ends(bootstrap, learner.topic) == before
    assert LabOrder.objects.filter(lab_id=learner.lab_id).count() == 200
