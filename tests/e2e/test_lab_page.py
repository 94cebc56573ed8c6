"""The lab page in Chromium: orders land in the lane murmur2 predicts, live, and stay live under a burst.

Every expectation about Kafka is checked against Kafka itself, read by a consumer in the test.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from playwright.sync_api import Page, expect

from kafkalab.kafka.config import client_config
from kafkalab.kafka.partitioner import partition_for
from tests.harness.lab_page import INITIAL_PARTITIONS, LAB_URL, open_lab

pytestmark = pytest.mark.e2e

# Bounds on waiting, not expectations of speed.
LIVE_TIMEOUT_MS = 15_000
CATCH_UP_SECONDS = 30.0

OUTCOME = re.compile(r"partition (\d+), offset (\d+)")


# --- page helpers ---------------------------------------------------------------------------


def create_order(page: Page) -> tuple[str, int, int]:
    """One click on the pre-filled form. Returns the orderId and where OrderService says it went."""
    order_id = page.get_by_label("orderId", exact=True).input_value()
    assert order_id, "the order form should come pre-filled"
    page.get_by_role("button", name="Create order").click()
    outcome = page.get_by_test_id("produce-outcome")
    expect(outcome).to_contain_text("Kafka acknowledged it")
    # The panel is swapped in place; read the new one, whose form already holds the next sample.
    expect(page.get_by_label("orderId", exact=True)).not_to_have_value(order_id)
    partition, offset = (int(n) for n in OUTCOME.search(outcome.inner_text()).groups())
    return order_id, partition, offset


def lane_offsets(page: Page) -> dict[int, list[int]]:
    """Per lane, the offsets of its boxes, oldest first."""
    lanes = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.lane[data-lane]')].map(lane => [
            lane.dataset.lane,
            [...lane.querySelectorAll('.event[data-offset]')].map(box => Number(box.dataset.offset)),
        ]))"""
    )
    return {int(lane): offsets for lane, offsets in lanes.items()}


def fact(inspector, name: str):
    """The value beside a label in the inspector's facts list."""
    return inspector.locator(".facts div", has=inspector.page.locator("dt", has_text=name)).locator("dd")


# --- Kafka helpers --------------------------------------------------------------------------


def kafka_consumer() -> Consumer:
    return Consumer(client_config(**{"group.id": "e2e-lab-page-reader", "enable.auto.commit": False}))


def log_ends(topic: str) -> dict[int, int]:
    """Each partition's log end offset, as the partition leaders report it now."""
    consumer = kafka_consumer()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in sorted(partitions)
        }
    finally:
        consumer.close()


def records_with_key(topic: str, key: str) -> list:
    """Every record in the topic with this key, read from the start of each partition."""
    ends = log_ends(topic)
    consumer = kafka_consumer()
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        remaining = {p: end for p, end in ends.items() if end > 0}
        found = []
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=1):
                if message.error():
                    continue
                if message.key() == key.encode():
                    found.append(message)
                if message.offset() + 1 >= remaining.get(message.partition(), 0):
                    remaining.pop(message.partition(), None)
        assert not remaining, f"could not read partitions {sorted(remaining)} of {topic} to their end"
        return found
    finally:
        consumer.close()


def wait_until_current(page: Page, topic: str) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Until every lane's newest box is its partition's last record in Kafka (deadline bound)."""
    ends = log_ends(topic)
    wanted = {p: (end - 1 if end else None) for p, end in ends.items()}
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        lanes = lane_offsets(page)
        newest = {p: (offsets[-1] if offsets else None) for p, offsets in lanes.items()}
        if newest == wanted:
            return ends, lanes
        if time.monotonic() > deadline:
            pytest.fail(f"the lanes did not catch up with Kafka: page newest {newest}, Kafka last {wanted}")
        page.wait_for_timeout(100)


# --- tests ----------------------------------------------------------------------------------


def test_a_created_order_lands_in_the_lane_murmur2_predicts_at_the_offset_kafka_gave(live_server_url, page):
    topic = open_lab(page, live_server_url)

    order_id, partition, offset = create_order(page)

    assert partition == partition_for(order_id.encode(), INITIAL_PARTITIONS)
    box = page.locator(f'.event[data-key="{order_id}"]')
    expect(box).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(box).to_have_attribute("data-partition", str(partition))
    expect(box).to_have_attribute("data-offset", str(offset))
    expect(page.locator(f'.lane[data-lane="{partition}"] .event[data-key="{order_id}"]')).to_have_count(1)

    in_kafka = records_with_key(topic, order_id)
    assert [(m.partition(), m.offset()) for m in in_kafka] == [(partition, offset)]
    assert dict(in_kafka[0].headers())["event-type"] == b"OrderCreated"


def test_clicking_a_box_opens_the_inspector_with_key_value_headers_and_why(live_server_url, page):
    open_lab(page, live_server_url)
    order_id, partition, offset = create_order(page)

    page.locator(f'.event[data-key="{order_id}"]').click()

    inspector = page.locator("#inspector")
    expect(fact(inspector, "Partition")).to_have_text(str(partition))
    expect(fact(inspector, "Offset")).to_have_text(str(offset))
    expect(fact(inspector, "Type")).to_have_text("OrderCreated")
    expect(inspector.get_by_text(order_id, exact=True).first).to_be_visible()
    value = json.loads(inspector.locator("pre.value").inner_text())
    assert value["orderId"] == order_id
    assert set(value) == {"orderId", "customerId", "items", "timestamp"}
    headers = inspector.locator("table.headers")
    expect(headers.locator("tr", has=page.locator("th", has_text="event-type"))).to_contain_text("OrderCreated")
    why = inspector.get_by_test_id("why-partition")
    expect(why).to_contain_text(f"Why partition {partition}?")
    expect(why).to_contain_text(f"mod {INITIAL_PARTITIONS} partitions = {partition}")


def test_a_burst_of_500_keeps_the_page_live_and_current(live_server_url, page):
    topic = open_lab(page, live_server_url)
    window = int(page.locator("#lanes").get_attribute("data-window"))

    page.get_by_label("Random orders").fill("500")
    page.get_by_role("button", name="Burst").click()
    expect(page.get_by_test_id("produce-outcome")).to_contain_text("Kafka acknowledged all 500 orders")

    ends, lanes = wait_until_current(page, topic)
    assert sum(ends.values()) == 500
    for partition, offsets in lanes.items():
        assert 0 < len(offsets) <= window, f"lane {partition} holds {len(offsets)} boxes"
        # Oldest to newest, without gaps: the partition's newest records.
        assert offsets == list(range(ends[partition] - len(offsets), ends[partition]))
        lane_meta = page.locator(f"#lane-{partition}-meta")
        expect(lane_meta).to_contain_text(f"end {ends[partition]}", timeout=LIVE_TIMEOUT_MS)
    page.screenshot(path="/tmp/kafkalab-lab-after-burst.png", full_page=True)

    order_id, partition, offset = create_order(page)
    box = page.locator(f'.lane[data-lane="{partition}"] .event[data-key="{order_id}"]')
    expect(box).to_have_attribute("data-offset", str(offset), timeout=LIVE_TIMEOUT_MS)
    assert offset == ends[partition]


def test_more_partitions_add_lanes_and_move_keys_and_fewer_are_refused(live_server_url, page):
    open_lab(page, live_server_url)
    # An orderId whose partition changes from 4 to 6 partitions: the key-affinity lesson.
    order_id = next(
        f"order-{n}"
        for n in range(100)
        if partition_for(f"order-{n}".encode(), 4) != partition_for(f"order-{n}".encode(), 6)
    )
    page.get_by_label("orderId", exact=True).fill(order_id)
    page.get_by_role("button", name="Create order").click()
    expect(page.get_by_test_id("produce-outcome")).to_contain_text(f"partition {partition_for(order_id.encode(), 4)},")

    page.get_by_label("Partitions", exact=True).fill("6")
    page.get_by_role("button", name="Change partitions").click()
    change = page.get_by_test_id("partition-change")
    expect(change).to_contain_text("now has 6 partitions (was 4)")
    expect(change).to_contain_text("1 of 1 recent order keys now hash to a different partition")
    expect(page.locator(".lane[data-lane]")).to_have_count(6, timeout=LIVE_TIMEOUT_MS)

    # The order's next event follows its key: now into another partition than its OrderCreated.
    page.get_by_role("button", name="Send OrderPaid").click()
    moved = partition_for(order_id.encode(), 6)
    expect(page.get_by_test_id("produce-outcome")).to_contain_text(f"partition {moved},")
    paid = page.locator(f'.lane[data-lane="{moved}"] .event--paid[data-key="{order_id}"]')
    expect(paid).to_have_count(1, timeout=LIVE_TIMEOUT_MS)

    page.get_by_label("Partitions", exact=True).fill("2")
    page.get_by_role("button", name="Change partitions").click()
    refusal = page.locator("#topic-controls [role=alert]")
    expect(refusal).to_contain_text("Kafka refused")
    expect(refusal).to_contain_text("can only grow (6 → 2 asked)")
    expect(page.get_by_test_id("partition-change")).to_have_count(0)
    expect(page.locator(".lane[data-lane]")).to_have_count(6)


def test_another_learner_gets_not_your_lab_and_no_lanes(live_server_url, page, browser):
    open_lab(page, live_server_url)
    lab_url = page.url
    ws_path = f"/ws/labs/{LAB_URL.search(lab_url).group(1)}/"

    other = browser.new_context()
    try:
        stranger = other.new_page()
        response = stranger.goto(lab_url)
        assert response.status == 403
        expect(stranger.get_by_role("heading", name="This is not your lab")).to_be_visible()
        expect(stranger.locator(".lane")).to_have_count(0)
        # Nor may the stranger's browser open the lab's websocket by hand...
        assert websocket_opens(stranger, ws_path) is False
    finally:
        other.close()
    # ...which the owner's browser, asking the same way, may.
    assert websocket_opens(page, ws_path) is True


def websocket_opens(page: Page, path: str) -> bool:
    return page.evaluate(
        """(path) => new Promise(resolve => {
            const ws = new WebSocket(`ws://${location.host}${path}`);
            ws.onopen = () => { ws.close(); resolve(true); };
            ws.onclose = () => resolve(false);
        })""",
        path,
    )
