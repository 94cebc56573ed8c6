"""Lesson 2, walked on a real lab: keys pick partitions, one key keeps its order, and a producer on
librdkafka's defaults (kcat) hashes the same key into another partition."""

from __future__ import annotations

import re
import subprocess

from kafkalab.kafka.partitioner import crc32_partition_for, murmur2, partition_for, positive
from tests.factories import order_form_data
from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import ONE_ORDER, PARTITIONS, Lab, LabSocket
from tests.integration.lab_support import KAFKA_TIMEOUT, kcat_produce, read_topic

SLUG = "keys-and-ordering"
CUSTOMER = "5d1c2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
EXAMPLE = re.compile(r"key (?P<key>\S+): murmur2 gives (?P<hash>\d+), and (?P=hash) mod (?P<n>\d+) = (?P<p>\d+)")


def flat(text: str) -> str:
    """The explanation on one line: the page wraps it wherever the Markdown source did."""
    return " ".join(text.split())


def acknowledged(response) -> tuple[int, int]:
    assert response.status == 200, response.text[:1000]
    match = ONE_ORDER.search(response.text)
    assert match, response.text[:1000]
    return int(match.group(1)), int(match.group(2))


def test_keys_and_ordering_step_by_step(lab: Lab, page: LabSocket, kafka_cluster):
    bootstrap = kafka_cluster.bootstrap_servers()
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert walk.statuses() == {
        "same-key-same-partition": "current",
        "lifecycle-in-order": "pending",
        "keys-spread": "pending",
        "another-client-another-hash": "pending",
    }
    page.wait(lambda shown: shown.steps.get("same-key-same-partition") == "current", "the lesson panel, pushed")

    # a. Two orders of one customer, keyed by customerId: one partition.
    walk.predict("same-key-same-partition", 0)
    post = lab.url("orders/")
    first = acknowledged(lab.browser.post(post, order_form_data(customer_id=CUSTOMER, key_strategy="customerId")))
    walk.still_current("same-key-same-partition")  # one record with the key is not "twice"
    second = acknowledged(lab.browser.post(post, order_form_data(customer_id=CUSTOMER, key_strategy="customerId")))
    expected = partition_for(CUSTOMER.encode(), PARTITIONS)
    assert first[0] == second[0] == expected
    why = flat(walk.wait_passed("same-key-same-partition"))
    assert f"Both orders carry the key {CUSTOMER}, and both are in partition {expected}" in why, why
    assert f"(offsets {first[1]} and {second[1]})" in why, why
    assert f"murmur2({CUSTOMER}) = {positive(murmur2(CUSTOMER.encode()))}" in why, why
    assert "You predicted that." in why

    # b. Send Paid, then Send Shipped, for one order (keyed by its orderId).
    order_id = "lesson2-lifecycle-0001"
    created = acknowledged(lab.browser.post(post, order_form_data(order_id=order_id)))
    paid = acknowledged(lab.browser.post(lab.url("orders/advance/"), {"order_id": order_id}))
    shipped = acknowledged(lab.browser.post(lab.url("orders/advance/"), {"order_id": order_id}))
    assert created[0] == paid[0] == shipped[0] == partition_for(order_id.encode(), PARTITIONS)
    why = flat(walk.wait_passed("lifecycle-in-order"))
    assert f"Every event keyed {order_id} is in partition {created[0]}" in why, why
    assert f"Created @{created[1]}, Paid @{paid[1]}, Shipped @{shipped[1]}" in why, why

    # c. A burst of orders keyed by orderId reaches at least three of the four partitions.
    lab.burst(20)
    why = flat(walk.wait_passed("keys-spread"))
    # The step passes as soon as Kafka shows three partitions used: maybe before all 20 are read.
    landed = re.search(r"Your (\d+) keyed records landed in (\d) of the topic's 4 partitions", why)
    assert landed and 3 <= int(landed[1]) <= 20 and int(landed[2]) >= 3, why
    example = EXAMPLE.search(why)
    assert example, why
    key, shown_hash = example["key"], int(example["hash"])
    assert shown_hash == positive(murmur2(key.encode())), why
    assert int(example["n"]) == PARTITIONS
    assert int(example["p"]) == shown_hash % PARTITIONS == partition_for(key.encode(), PARTITIONS)

    # d. kcat on librdkafka's defaults: a key both hashes agree on proves nothing; `hello` does.
    assert crc32_partition_for(b"mykey", PARTITIONS) == partition_for(b"mykey", PARTITIONS)
    kcat_produce(bootstrap, lab.topic, key="mykey", value=b'{"from": "kcat"}')
    walk.still_current("another-client-another-hash")
    kcat_produce(bootstrap, lab.topic, key="hello", value=b'{"from": "kcat"}')
    crc32, java = crc32_partition_for(b"hello", PARTITIONS), partition_for(b"hello", PARTITIONS)
    assert crc32 != java
    why = flat(walk.wait_passed("another-client-another-hash"))
    assert f"put key hello in partition {crc32}, yet a Java producer" in why, why
    assert f"would have put it in partition {java}" in why
    assert f"murmur2(hello) = {positive(murmur2(b'hello'))}, and" in why, why
    assert f"CRC32 of hello mod {PARTITIONS} gave {crc32}" in why, why
    assert "partitioner=murmur2_random" in why
    assert "Lesson complete" in walk.page()

    # The fix the explanation gives: the same kcat, with murmur2_random, agrees with OrderService.
    done = subprocess.run(
        ["kcat", "-P", "-X", "partitioner=murmur2_random", "-b", bootstrap, "-t", lab.topic, "-k", "hello"],
        input=b'{"from": "kcat", "partitioner": "murmur2_random"}',
        capture_output=True,
        timeout=KAFKA_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    # kcat returns once Kafka acknowledged it: the topic holds `hello` in both partitions now.
    placed = [r.partition for r in read_topic(bootstrap, lab.topic) if r.key == b"hello"]
    assert sorted(placed) == sorted([crc32, java]), placed
