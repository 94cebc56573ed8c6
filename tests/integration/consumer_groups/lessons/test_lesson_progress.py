"""Lesson progress is Kafka's word, kept: it survives a restart of the app, and the step that was
current still counts only what happens after it became current."""

from __future__ import annotations

from collections.abc import Callable

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.http_browser import Browser
from tests.harness.server import Server
from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import Lab, LabSocket
from tests.integration.lab_support import kcat_produce


def test_progress_survives_a_restart_and_the_current_step_keeps_its_baseline(
    make_server: Callable[..., Server], kafka_cluster: LocalCluster
):
    bootstrap = kafka_cluster.bootstrap_servers()
    server = make_server()
    lab = Lab.open(Browser(server.url))
    walk = LessonWalk(lab, "the-log")
    with LabSocket(server.url, lab):
        walk.begin()
        lab.order()
        walk.wait_passed("write-an-event")
        # "Write many" is armed now; these come after, but are too few to pass it.
        lab.burst(5)
        walk.still_current("write-many")

    server.stop()
    # Written while the app is down: after the step became current, so it counts.
    for n in range(15):
        kcat_produce(bootstrap, lab.topic, key=f"while-down-{n}", value=b"{}")
    server.start()  # the same database, as after Ctrl-C and `make run` again
    lab.browser.base_url = server.url

    assert walk.statuses()["write-an-event"] == "passed", "the passed step is stored"
    with LabSocket(server.url, lab):
        why = walk.wait_passed("write-many")
    assert "Kafka wrote 20 records" in why, "the 5 before the restart and the 15 during it, none before the step"
    wait_for_reset(lab)


def wait_for_reset(lab: Lab) -> None:
    from tests.integration.consumer_groups.support import wait_for

    wait_for(lambda: lab.reset() is None, "a reset of the lab")
