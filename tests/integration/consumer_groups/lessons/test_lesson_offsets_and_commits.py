"""Lesson 6, walked on a real lab: the committed offset trails the consumer; a kill repeats what
came after the last commit; auto-commit can also lose an order it committed before emailing it;
committing only after processing loses nothing but still repeats (at-least-once).

Timing as in consumer_groups/test_delivery_semantics: a long auto-commit interval keeps the
emails of a burst uncommitted until the test kills their consumer, a 300 ms interval with an 8 s
processing delay commits an order long before it is emailed, and short processing delays keep
the other bursts quick. The first consumer takes a second per email, so that its burst of 16 is
still being emailed when the test kills it, however busy the machine is. Every number an explanation shows is checked against Kafka itself.
"""

from __future__ import annotations

import json
import re

from confluent_kafka import Consumer, TopicPartition

from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import PARTITIONS, GroupView, Lab, LabSocket, wait_for

SLUG = "offsets-and-commits"
ALL = list(range(PARTITIONS))
SESSION = {"session_timeout_ms": 6000}
NEVER_BEFORE_THE_KILL = {"auto_commit_interval_ms": 60_000}  # no auto-commit within the walk
DUPLICATE = re.compile(r"Order (\S+) \(partition (\d+), offset (\d+)\) was emailed by (\S+) then (\S+):")
MISSED = re.compile(r"Order (\S+) at partition (\d+), offset (\d+) was never emailed")


def record_at(group: GroupView, partition: int, offset: int) -> tuple[str, dict]:
    """The key and value Kafka holds at (partition, offset) of the lab's topic."""
    consumer = Consumer({"bootstrap.servers": group.bootstrap, "group.id": "kafkalab-tests-unused"})
    try:
        consumer.assign([TopicPartition(group.lab.topic, partition, offset)])
        message = wait_for(lambda: consumer.poll(0.5), f"the record at {partition}@{offset}", timeout=20)
        assert message.error() is None and message.offset() == offset, message.error()
        return message.key().decode(), json.loads(message.value())
    finally:
        consumer.close()


def sent(lab: Lab) -> int:
    return lab.state()["outbox"]["sent"]


def kill(lab: Lab, name: str) -> dict:
    """SIGKILL `name`; its card as state.json has it once dead (positions it reached kept)."""
    assert lab.act(name, "kill").status == 200
    return lab.wait_status(name, "killed")


def test_offsets_and_commits_step_by_step(lab: Lab, page: LabSocket, group: GroupView):
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert walk.statuses() == {
        "commit-trails": "current",
        "kill-repeats": "pending",
        "auto-commit-loses": "pending",
        "commit-after-processing": "pending",
    }

    # 1. The consumer emails; its commits trail (none at all, with a minute between auto-commits).
    first = lab.add_consumer(**SESSION, processing_delay_ms=1000, **NEVER_BEFORE_THE_KILL)
    group.wait_assignment(lambda a: a == {first: ALL}, f"{first} reading every partition")
    lab.burst(16)
    why = walk.wait_passed("commit-trails")
    assert f"{first} emailed" in why and "orders since this step began" in why, why
    positions = re.findall(r"P(\d): read up to (\d+), committed nothing yet", why)
    assert positions and all(int(read) > 0 for _, read in positions), why

    # 2. Predict, then kill it mid-burst and let another consumer take over: repeats.
    walk.predict("kill-repeats", 1)
    walk.still_current("kill-repeats")  # emailing on, but nobody has emailed anything twice
    wait_for(lambda: sent(lab) >= 6, "a few more emails")
    dead = kill(lab, first)
    assert group.committed() == {}, "emailed orders, committed none"
    emailed_before = sent(lab)
    assert emailed_before < 16, "killed mid-burst"
    second = lab.add_consumer(**SESSION)
    why = walk.wait_passed("kill-repeats")
    match = DUPLICATE.search(why)
    assert match, why
    order_id, partition, offset = match[1], int(match[2]), int(match[3])
    assert (match[4], match[5]) == (first, second), why
    assert offset < dead["positions"][str(partition)], "one the killed consumer had read"
    key, value = record_at(group, partition, offset)
    assert value["orderId"] == order_id == key, (value, why)
    assert "auto-commit (enable.auto.commit=true" in why and "You predicted that." in why, why
    wait_for(lambda: sent(lab) >= 16 + emailed_before, f"{second} emailing the rest of the burst")

    # 3. Auto-commit every 300 ms, 8 s per email: the order is committed, then its consumer dies.
    assert lab.act(second, "stop").status == 200
    lab.wait_status(second, "stopped")
    third = lab.add_consumer(**SESSION, auto_commit_interval_ms=300, processing_delay_ms=8000)
    group.wait_assignment(lambda a: a == {third: ALL}, f"{third} reading every partition")
    partition, offset = lab.order()
    wait_for(lambda: group.committed().get(partition) == offset + 1, "the group committing past the order")
    sent_so_far = sent(lab)
    kill(lab, third)  # still "processing": committed, not emailed
    why = walk.wait_passed("auto-commit-loses")
    key, value = record_at(group, partition, offset)
    assert MISSED.search(why).groups() == (key, str(partition), str(offset)), why
    assert value["orderId"] == key
    assert "counts 1 missed so far, after " + third + " stopped" in why, why
    outbox = lab.state()["outbox"]
    assert outbox["sent"] == sent_so_far and outbox["missed"] == 1, outbox
    assert [(m["partition"], m["offset"]) for m in outbox["missed_records"]] == [(partition, offset)]

    # 4. Offsets stored only after each email (auto-commit of those): a kill repeats, loses nothing.
    walk.predict("commit-after-processing", 1)
    fourth = lab.add_consumer(
        **SESSION, enable_auto_offset_store=False, processing_delay_ms=300, **NEVER_BEFORE_THE_KILL
    )
    group.wait_assignment(lambda a: a == {fourth: ALL}, f"{fourth} in the group once {third}'s session ended")
    before = sent(lab)
    lab.burst(10)
    wait_for(lambda: sent(lab) >= before + 3, f"{fourth} emailing a few orders")
    dead = kill(lab, fourth)
    assert lab.act(fourth, "restart").status == 200
    why = walk.wait_passed("commit-after-processing")
    match = DUPLICATE.search(why)
    assert match, why
    order_id, partition, offset = match[1], int(match[2]), int(match[3])
    assert (match[4], match[5]) == (fourth, fourth), why
    assert offset < dead["positions"][str(partition)]
    key, value = record_at(group, partition, offset)
    assert value["orderId"] == order_id == key, (value, why)
    assert "offsets stored after each email" in why and "no order was missed" in why, why
    wait_for(lambda: sent(lab) >= before + 10 + 3, f"{fourth} emailing the rest after its restart")
    outbox = lab.state()["outbox"]
    assert outbox["missed"] == 1, "the order lost in step 3, and no other"
    assert "Lesson complete" in walk.page()
