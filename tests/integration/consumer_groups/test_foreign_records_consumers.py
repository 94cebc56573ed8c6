"""A NotificationService lives through any record a foreign client writes: it emails what its
reader can read and skips the rest (missed emails, by the default failure policy), its reports
stay small enough for the lab runner to keep following it, and so it can still be stopped,
restarted, killed and reset away."""

from __future__ import annotations

from confluent_kafka import Producer

from kafkalab.kafka.local_cluster import LocalCluster
from tests.integration.consumer_groups.conftest import RESET_TIMEOUT
from tests.integration.consumer_groups.support import PARTITIONS, Lab, LabSocket, alive, processes_of, wait_for
from tests.integration.lab_support import kcat_produce

DEEP_JSON = b"[" * 5000 + b"]" * 5000
# Fits the brokers' default limit on a record batch (message.max.bytes, 1,048,588 bytes);
# librdkafka's own default (1,000,000) counts the overhead too, so raise it to the brokers'.
HUGE_KEY = b"\xff" * 1_000_000
PRODUCER_MAX_BYTES = 1_048_588
# Normal orders first: confluent-kafka's error for a header name that is not UTF-8 only raises
# where it is called until CPython specialises the headers() call, after a few records.
WARM_UP = 20


def produce(bootstrap: str, topic: str, *, key: bytes, value: bytes) -> None:
    """Write one record as another client would, and wait for Kafka to acknowledge it."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": PRODUCER_MAX_BYTES})
    errors = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(60) == 0
    assert errors == [None], f"Kafka refused the record: {errors}"


def sent(lab: Lab) -> int:
    return lab.state()["outbox"]["sent"]


def wait_sent(lab: Lab, count: int, what: str) -> None:
    wait_for(lambda: sent(lab) >= count, what)
    assert sent(lab) == count, "each record emailed once"


def test_a_consumer_lives_through_hostile_records_and_still_obeys(
    lab: Lab, page: LabSocket, kafka_cluster: LocalCluster
):
    bootstrap = kafka_cluster.bootstrap_servers()
    name = lab.add_consumer()
    pid = lab.wait_status(name, "running")["pid"]
    page.wait(
        lambda shown: (card := shown.cards.get(name)) and card.partitions == list(range(PARTITIONS)),
        f"{name} owning every partition",
    )
    lab.burst(WARM_UP)
    wait_sent(lab, WARM_UP, "the warm-up orders emailed")

    produce(bootstrap, lab.topic, key=HUGE_KEY, value=b'{"orderId": "huge-key", "items": []}')
    produce(bootstrap, lab.topic, key=b"deep-json", value=DEEP_JSON)
    produce(bootstrap, lab.topic, key=b"number-id", value=b'{"orderId": 42, "items": []}')
    kcat_produce(
        bootstrap,
        lab.topic,
        key=b"bad-header-names",
        value=b'{"orderId": "bad-header-names", "items": []}',
        headers=[b"caf\xe9\xff\xfe=v", b"event-type=OrderCreated"],
    )
    lab.order()  # a normal order after them: emailed only if the runner still follows the process

    # None of the four is an order the tolerant reader can read: each is skipped, a missed email.
    total = WARM_UP + 1
    wait_sent(lab, total, "the order after the hostile records emailed")
    page.wait(lambda shown: shown.outbox == (total, 0, 4), "the page's outbox counting the sent and the missed")
    consumer = lab.consumers()[name]
    assert (consumer["status"], consumer["pid"]) == ("running", pid), "the same process, still running"

    assert lab.act(name, "stop").status == 200
    assert lab.wait_status(name, "stopped")["pid"] is None
    wait_for(lambda: not alive(pid), f"{name}'s process ending")

    assert lab.act(name, "restart").status == 200
    restarted = lab.wait_status(name, "running")["pid"]
    assert restarted != pid

    assert lab.act(name, "kill").status == 200
    assert lab.wait_status(name, "killed")["pid"] is None
    wait_for(lambda: not alive(restarted), f"{name}'s restarted process ending")

    # A killed member holds the group until its session timeout: the reset waits for that.
    wait_for(lambda: lab.reset() is None, f"a reset of {lab.topic}", timeout=RESET_TIMEOUT)
    assert lab.state()["consumers"] == []
    assert processes_of(lab) == []
