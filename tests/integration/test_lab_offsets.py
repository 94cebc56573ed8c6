"""Offsets as a picture, live: once a real NotificationService has read and committed, the lanes a
page is pushed put the group's committed offset and the consumer's position on each partition's
log, at the offsets Kafka itself holds, and draw each partition's lag over the last minutes."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from confluent_kafka import Consumer, TopicPartition

from kafkalab.kafka.partitioner import partition_for
from tests.factories import order_form_data
from tests.integration.consumer_groups.support import consumer_form, end_processes, service_processes
from tests.integration.lab_support import (
    KAFKA_TIMEOUT,
    Learner,
    lab_socket_open,
    log_ends,
    receive_until,
    state_json,
    text,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

PARTITIONS = 4
MARKS = re.compile(r'<div class="lane-marks" id="lane-(\d+)-marks".*?</div>', re.S)
CHART = re.compile(r'<div class="lane-lag" id="lane-(\d+)-lag".*?</div>', re.S)
COMMITTED = re.compile(r'data-marker="committed" data-offset="(\d+)"')
POSITION = re.compile(r'data-marker="position" data-reader="([^"]+)" data-offset="(\d+)"')


def keys_for_every_partition(per_partition: int = 2) -> list[str]:
    """Order ids that land `per_partition` in each partition (murmur2, as the OrderService keys them)."""
    keys: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    n = 0
    while any(len(found) < per_partition for found in keys.values()):
        key = f"offsets-{n:04d}"
        found = keys[partition_for(key.encode(), PARTITIONS)]
        if len(found) < per_partition:
            found.append(key)
        n += 1
    return [key for found in keys.values() for key in found]


def group_committed(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offsets as Kafka holds them (partitions without one left out)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        asked = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10) if tp.offset >= 0}
    finally:
        consumer.close()


class LaneView:
    """The lanes' markers and charts as a page holds them: each fragment replaces what it carries."""

    def __init__(self) -> None:
        self.marks: dict[int, str] = {}
        self.charts: dict[int, str] = {}

    def apply(self, fragment: str) -> None:
        for match in MARKS.finditer(fragment):
            self.marks[int(match.group(1))] = match.group(0)
        for match in CHART.finditer(fragment):
            self.charts[int(match.group(1))] = match.group(0)

    def committed(self, partition: int) -> int | None:
        found = COMMITTED.search(self.marks.get(partition, ""))
        return int(found.group(1)) if found else None

    def positions(self, partition: int) -> dict[str, int]:
        return {name: int(offset) for name, offset in POSITION.findall(self.marks.get(partition, ""))}


@asynccontextmanager
async def running_consumer(learner: Learner) -> AsyncIterator[str]:
    """ "Add consumer" with manual commits after each email; killed, and none of it left, afterwards."""
    response = await sync_to_async(learner.post)("consumers/", consumer_form(commit_mode="after"))
    assert response.status_code == 200 and "Starting c1" in text(response), text(response)[:1000]
    group_id = f"lab-{learner.lab_id}.order-notifications"
    try:
        yield "c1"
    finally:
        await sync_to_async(learner.post)("consumers/c1/kill/")
        deadline = time.monotonic() + KAFKA_TIMEOUT
        while (left := [p for p in service_processes() if p.group_id == group_id]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        end_processes(left)
        assert left == [], "a NotificationService process outlived its test"


async def test_a_push_puts_the_committed_offset_and_the_consumers_position_on_each_lane(
    kafka_cluster, learner: Learner
):
    bootstrap = kafka_cluster.bootstrap_servers()
    group_id = f"lab-{learner.lab_id}.order-notifications"
    page = LaneView()

    def keep(wanted):
        def check(fragment: str) -> bool:
            page.apply(fragment)
            return wanted()

        return check

    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, keep(lambda: len(page.charts) == PARTITIONS), "the four lanes with their charts")
        assert all("data-marker" not in marks for marks in page.marks.values()), "nothing read, nothing committed"

        async with running_consumer(learner) as name:
            for key in keys_for_every_partition():
                created = await sync_to_async(learner.post)("orders/", order_form_data(order_id=key))
                assert created.status_code == 200, text(created)
            ends = await asyncio.to_thread(log_ends, bootstrap, learner.topic)
            assert all(ends[p] >= 2 for p in range(PARTITIONS)), ends
            await asyncio.to_thread(
                wait_until,
                lambda: group_committed(bootstrap, group_id, learner.topic) == ends,
                "the group committing every order",
            )

            def drawn_at_kafkas_offsets() -> bool:
                return all(
                    page.committed(p) == ends[p] and page.positions(p) == {name: ends[p]} for p in range(PARTITIONS)
                )

            await receive_until(socket, keep(drawn_at_kafkas_offsets), "markers at the committed offsets")
            await receive_until(
                socket,
                keep(lambda: all("now 0, peak" in page.charts[p] for p in range(PARTITIONS))),
                "each partition's lag chart, caught up",
            )
            [group] = (await state_json(learner))["groups"]

    assert sorted(group["lag_history"]) == [str(p) for p in range(PARTITIONS)], "state.json has the charts' data"
    assert all(history["points"] and history["now"] == 0 for history in group["lag_history"].values())

    for p in range(PARTITIONS):
        chart = page.charts[p]
        assert f'data-lag-chart data-partition="{p}"' in chart
        assert f'aria-label="Lag of partition {p} over the last 3 minutes: now 0, peak' in chart
        assert "<polyline points=" in chart
