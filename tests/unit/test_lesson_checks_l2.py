"""The checks lesson 2 (keys and ordering) runs, on plain model dicts: each passes on what Kafka
would show for its step, stays silent before it, and gives the facts the explanation uses."""

from __future__ import annotations

from kafkalab.kafka.partitioner import crc32_partition_for, murmur2, partition_for, positive
from lessons import checks

PARTITIONS = 4
NOW = 1_000.0


def record(partition: int, offset: int, key: str | None, event_type: str = "OrderCreated") -> dict:
    return {
        "partition": partition,
        "offset": offset,
        "key": key,
        "event_type": event_type,
        "timestamp_ms": 1_000 * offset + partition,
    }


class Topic:
    """A lab's topic as the live model shows it: lanes, each with its records and log end."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.records: dict[int, list[dict]] = {p: [] for p in range(partitions)}

    def write(self, key: str | None, *, partition: int | None = None, event_type: str = "OrderCreated") -> dict:
        """Appends at the lane's end; the partition murmur2 picks unless given."""
        if partition is None:
            partition = 0 if key is None else partition_for(key.encode(), len(self.records))
        written = record(partition, len(self.records[partition]), key, event_type)
        self.records[partition].append(written)
        return written

    def model(self) -> dict:
        return {
            "lanes": [
                {"partition": p, "log_start": 0, "log_end": len(rs), "records": list(rs)}
                for p, rs in self.records.items()
            ]
        }


def run(name: str, topic: Topic, armed: dict, **params) -> dict | None:
    bound = checks.REGISTRY[name].bind(params)
    return checks.evaluate(name, bound, model=topic.model(), armed=armed, now=NOW + 1)


def armed(topic: Topic) -> dict:
    return checks.arm(topic.model(), now=NOW)


def disagreeing_key(partitions: int = PARTITIONS) -> str:
    """A key that CRC32 (librdkafka's default) and murmur2 (Java's) put in different partitions."""
    return next(
        key
        for key in (f"key-{n}" for n in range(1000))
        if crc32_partition_for(key.encode(), partitions) != partition_for(key.encode(), partitions)
    )


def agreeing_key(partitions: int = PARTITIONS) -> str:
    return next(
        key
        for key in (f"key-{n}" for n in range(1000))
        if crc32_partition_for(key.encode(), partitions) == partition_for(key.encode(), partitions)
    )


# --- same_key_twice ----------------------------------------------------------------------------


def test_same_key_twice_passes_on_two_new_records_with_one_key_in_one_partition():
    topic = Topic()
    topic.write("other")
    baseline = armed(topic)
    first = topic.write("customer-7")
    assert run("same_key_twice", topic, baseline) is None, "one record is not twice"
    topic.write("someone-else")
    second = topic.write("customer-7")

    facts = run("same_key_twice", topic, baseline)

    partition = partition_for(b"customer-7", PARTITIONS)
    assert facts == {
        "key": "customer-7",
        "partition": str(partition),
        "offset": str(second["offset"]),
        "partitions": "4",
        "hash": str(positive(murmur2(b"customer-7"))),
        "event_type": "OrderCreated",
        "offsets": f"{first['offset']} and {second['offset']}",
    }


def test_same_key_twice_ignores_records_from_before_the_step_and_keyless_ones():
    topic = Topic()
    topic.write("customer-7")
    baseline = armed(topic)
    topic.write("customer-7")
    topic.write(None)
    topic.write(None)
    assert run("same_key_twice", topic, baseline) is None


def test_same_key_twice_does_not_pass_when_the_key_landed_in_two_partitions():
    topic = Topic()
    baseline = armed(topic)
    key = disagreeing_key()
    topic.write(key)
    topic.write(key, partition=crc32_partition_for(key.encode(), PARTITIONS))
    assert run("same_key_twice", topic, baseline) is None


# --- lifecycle_in_order ------------------------------------------------------------------------


def test_lifecycle_in_order_passes_on_paid_then_shipped_in_the_orders_partition():
    topic = Topic()
    created = topic.write("order-1")
    baseline = armed(topic)
    paid = topic.write("order-1", event_type="OrderPaid")
    assert run("lifecycle_in_order", topic, baseline) is None, "not shipped yet"
    shipped = topic.write("order-1", event_type="OrderShipped")

    facts = run("lifecycle_in_order", topic, baseline)

    assert facts is not None
    assert facts["key"] == "order-1"
    assert facts["partition"] == str(partition_for(b"order-1", PARTITIONS))
    assert facts["offset"] == str(shipped["offset"])
    assert facts["event_type"] == "OrderShipped"
    assert facts["offsets"] == f"Created @{created['offset']}, Paid @{paid['offset']}, Shipped @{shipped['offset']}"


def test_lifecycle_in_order_needs_a_shipped_written_since_the_step_began():
    topic = Topic()
    topic.write("order-1")
    topic.write("order-1", event_type="OrderPaid")
    topic.write("order-1", event_type="OrderShipped")
    baseline = armed(topic)
    topic.write("order-2")
    assert run("lifecycle_in_order", topic, baseline) is None


def test_lifecycle_in_order_fails_when_the_events_are_split_over_partitions():
    topic = Topic()
    key = disagreeing_key()
    baseline = armed(topic)
    topic.write(key)
    topic.write(key, event_type="OrderPaid", partition=crc32_partition_for(key.encode(), PARTITIONS))
    topic.write(key, event_type="OrderShipped")
    assert run("lifecycle_in_order", topic, baseline) is None


def test_lifecycle_in_order_fails_when_shipped_comes_before_paid():
    topic = Topic()
    baseline = armed(topic)
    topic.write("order-1")
    topic.write("order-1", event_type="OrderShipped")
    topic.write("order-1", event_type="OrderPaid")
    # A later Shipped: the first Shipped still precedes the Paid in the log.
    topic.write("order-1", event_type="OrderShipped")
    assert run("lifecycle_in_order", topic, baseline) is None


# --- keys_spread -------------------------------------------------------------------------------


def test_keys_spread_passes_once_new_keys_reach_enough_partitions():
    topic = Topic()
    baseline = armed(topic)
    keys = [f"order-{n}" for n in range(40)]
    by_partition: dict[int, list[str]] = {}
    for key in keys:
        by_partition.setdefault(partition_for(key.encode(), PARTITIONS), []).append(key)
    two = [by_partition[p][0] for p in sorted(by_partition)[:2]]
    for key in two:
        topic.write(key)
    assert run("keys_spread", topic, baseline, partitions=3) is None, "two partitions are not three"
    last = by_partition[sorted(by_partition)[2]][0]
    topic.write(last)

    facts = run("keys_spread", topic, baseline, partitions=3)

    assert facts == {
        "count": "3",
        "partitions_used": "3",
        "partitions": "4",
        "example_key": last,
        "example_hash": str(positive(murmur2(last.encode()))),
        "example_partition": str(partition_for(last.encode(), PARTITIONS)),
    }
    # The explanation's arithmetic holds: hash mod partitions is the partition.
    assert int(facts["example_hash"]) % PARTITIONS == int(facts["example_partition"])


def test_keys_spread_does_not_count_keyless_or_old_records():
    topic = Topic()
    for n in range(20):
        topic.write(f"old-{n}")
    baseline = armed(topic)
    for partition in range(PARTITIONS):
        topic.write(None, partition=partition)
    assert run("keys_spread", topic, baseline, partitions=3) is None


# --- key_placed_by_crc32 -----------------------------------------------------------------------


def test_a_disagreeing_key_exists_and_hello_is_one_on_four_partitions():
    # The lesson suggests `hello` (and warns that `mykey` agrees) for a 4-partition topic.
    assert crc32_partition_for(b"hello", 4) == 2 != partition_for(b"hello", 4) == 1
    assert crc32_partition_for(b"mykey", 4) == partition_for(b"mykey", 4)
    assert disagreeing_key() != agreeing_key()


def test_key_placed_by_crc32_passes_on_a_record_where_crc32_put_it():
    topic = Topic()
    baseline = armed(topic)
    key = disagreeing_key()
    crc32 = crc32_partition_for(key.encode(), PARTITIONS)
    written = topic.write(key, partition=crc32)

    facts = run("key_placed_by_crc32", topic, baseline)

    assert facts is not None
    assert facts["key"] == key
    assert facts["partition"] == str(crc32) == str(written["partition"])
    assert facts["murmur2_partition"] == str(partition_for(key.encode(), PARTITIONS))
    assert facts["hash"] == str(positive(murmur2(key.encode())))
    assert int(facts["hash"]) % PARTITIONS == int(facts["murmur2_partition"])


def test_key_placed_by_crc32_ignores_murmur2_placements_and_keys_both_agree_on():
    topic = Topic()
    topic.write(disagreeing_key(), partition=crc32_partition_for(disagreeing_key().encode(), PARTITIONS))
    baseline = armed(topic)  # the one above is from before the step
    topic.write(disagreeing_key())  # murmur2, as OrderService writes it
    topic.write(agreeing_key())  # CRC32 would have put it there too: it proves nothing
    topic.write(None)
    assert run("key_placed_by_crc32", topic, baseline) is None
