"""Lesson 1, walked on a real lab: each step passes when Kafka shows it, and not before."""

from __future__ import annotations

from kafkalab.kafka.partitioner import murmur2, positive
from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import Lab, LabSocket
from tests.integration.lab_support import kcat_produce

SLUG = "the-log"


def test_the_log_step_by_step(lab: Lab, page: LabSocket, kafka_cluster):
    bootstrap = kafka_cluster.bootstrap_servers()
    # Written before the lesson begins: it must not pass "write an event".
    kcat_produce(bootstrap, lab.topic, key="before-the-lesson", value=b'{"old": true}')
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert walk.statuses() == {
        "write-an-event": "current",
        "write-many": "pending",
        "read-it-all": "pending",
        "append-only": "pending",
    }
    page.wait(lambda shown: shown.steps.get("write-an-event") == "current", "the lesson panel, pushed")

    walk.predict("write-an-event", 0)
    walk.still_current("write-an-event")

    # A foreign client's record passes the step like the form's would.
    kcat_produce(bootstrap, lab.topic, key="kcat-order", value=b'{"orderId": "kcat-order"}')
    page.wait(lambda shown: shown.steps.get("write-an-event") == "passed", "the step passing, live over the websocket")
    why = walk.why("write-an-event")
    assert "kcat-order" in why and f"murmur2(kcat-order) is {positive(murmur2(b'kcat-order'))}" in why, why
    assert "You predicted that." in why, "the prediction, against what Kafka showed"
    assert walk.statuses()["write-many"] == "current"

    lab.burst(19)
    walk.still_current("write-many")
    lab.burst(1)
    why = walk.wait_passed("write-many")
    assert "Kafka wrote 20 records" in why, why

    consumer = lab.add_consumer()
    why = walk.wait_passed("read-it-all")
    assert f"{consumer}: P0, P1, P2, P3" in why, why

    partition, offset = lab.order()
    why = walk.wait_passed("append-only")
    assert f"partition {partition} at offset {offset}" in why, why
    assert "Lesson complete" in walk.page()


def test_progress_survives_a_reset_and_the_current_step_counts_afresh(lab: Lab, page: LabSocket):
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    lab.order()
    walk.wait_passed("write-an-event")
    lab.burst(30)
    walk.wait_passed("write-many")

    assert lab.reset() is None
    statuses = walk.statuses()
    assert statuses["write-an-event"] == statuses["write-many"] == "passed", "progress is kept"
    assert statuses["read-it-all"] == "current"
    # Re-armed on the new, empty topic: the step counts what happens from now.
    lab.add_consumer()
    walk.wait_passed("read-it-all")
    lab.burst(10)  # the new topic is empty: some partition gets a record behind another
    walk.wait_passed("append-only")
