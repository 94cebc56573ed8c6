"""Lesson 11, walked on a real lab: a crash-policy consumer crash-loops on an order it cannot
read and blocks its partition; a skipping one loses the next; a dead-letter one sets it aside
in the DLQ; after the reader is fixed, Replay DLQ brings it back and it is emailed."""

from __future__ import annotations

from tests.integration.consumer_groups.lessons.support import Contract, LessonWalk, flat
from tests.integration.consumer_groups.support import Lab, LabSocket, wait_for

SLUG = "poison-pills"


def took_over(lab: Lab, name: str) -> None:
    wait_for(lambda: len(lab.consumers()[name]["assigned"]) == 4, f"{name} reading every partition")


def test_poison_pills_step_by_step(lab: Lab, page: LabSocket):
    walk = LessonWalk(lab, SLUG)
    contract = Contract(lab)
    walk.begin()

    # a. Crash on a record that can't be read: the partition is blocked, the crashes add up.
    crasher = lab.add_consumer(reader="strict", failure_policy="crash")
    took_over(lab, crasher)
    walk.predict("crash-blocks", 1)
    assert contract.use("add-sku").status == 200
    partition, offset = lab.order()
    why = flat(walk.wait_passed("crash-blocks"))
    assert f"on the record at partition {partition}, offset {offset}, and" in why, why
    assert "the partition is blocked there" in why, why

    # b. Skip it: the next bad order is committed past and missed.
    assert lab.act(crasher, "stop").status == 200
    lab.wait_status(crasher, "stopped")
    skipper = lab.add_consumer(reader="strict", failure_policy="skip")
    took_over(lab, skipper)
    walk.predict("skip-loses", 1)
    partition, offset = lab.order()
    why = flat(walk.wait_passed("skip-loses"))
    assert f"record at partition {partition}, offset {offset}" in why and "and skipped it" in why, why

    # c. Dead-letter it: set aside with why, and the partition flows.
    assert lab.act(skipper, "stop").status == 200
    lab.wait_status(skipper, "stopped")
    dead_letters = lab.add_consumer(reader="strict", failure_policy="dead-letter")
    took_over(lab, dead_letters)
    partition, offset = lab.order()
    why = flat(walk.wait_passed("dead-letter"))
    assert f"The record at partition {partition}, offset {offset} now sits in the dead-letter topic" in why, why

    # d. Fix the reader, replay: the order is back on the topic and emailed.
    assert lab.act(dead_letters, "stop").status == 200
    lab.wait_status(dead_letters, "stopped")
    fixed = lab.add_consumer(reader="tolerant", failure_policy="skip")
    took_over(lab, fixed)
    replay = lab.browser.post(lab.url("dlq/replay/"))
    assert replay.status == 200, replay.text[:500]
    why = flat(walk.wait_passed("replay"))
    assert f"was emailed by {fixed} (tolerant reader)" in why, why
