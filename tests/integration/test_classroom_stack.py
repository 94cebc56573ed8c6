"""The classroom deployment, for real on loopback and without Docker: the suite's PostgreSQL and
Redis, the lab runner as a process of its own (`runworker lab-runner`), and two daphnes that
don't run it (LAB_RUNNER_EMBEDDED=0). A learner joins a classroom and works on web A; a viewer
watches the lab's share link, and the instructor the classroom's dashboard, on web B. What the
runner pushes reaches every page, so it went through Redis to both web processes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.server import LabRunnerWorker
from tests.integration.consumer_groups.classroom_support import (
    DashboardSocket,
    Instructor,
    create_staff,
    joined_lab,
    row_says,
)
from tests.integration.consumer_groups.support import (
    Browser,
    Lab,
    LabSocket,
    PageState,
    Server,
    alive,
    end_processes,
    processes_of,
    wait_for,
)
from tests.integration.lab_support import partition_count, share_token_in

# What kafkalab.runner.embedded logs when a web process starts a runner of its own.
EMBEDDED_RUNNER_STARTED = "lab runner started inside the web process"

JOIN_FAILURES = 3

# What Channels logs when a consumer (the runner, a page's socket) dies of an exception.
APPLICATION_FAILED = "Exception inside application"


@dataclass
class Classroom:
    runner: LabRunnerWorker
    web_a: Server
    web_b: Server


@pytest.fixture
def classroom(kafka_cluster: LocalCluster, postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Classroom]:
    """The runner and two web processes on one database and one Redis; all stopped by pid afterwards."""
    web = {
        "database_url": postgres_url,
        "REDIS_URL": redis_url,
        "LAB_RUNNER_EMBEDDED": "0",
        "CLASSROOM_JOIN_FAILURES": str(JOIN_FAILURES),
        # Its own window: the count of wrong codes lives in the suite's Redis, shared with others.
        "CLASSROOM_JOIN_WINDOW_SECONDS": "60",
    }
    with contextlib.ExitStack() as stack:
        web_a = stack.enter_context(Server(tmp_path / "web-a", kafka_cluster, **web))
        # One database, migrated once (by web A), as the compose file's web service does.
        web_b = stack.enter_context(Server(tmp_path / "web-b", kafka_cluster, migrated=True, **web))
        # Consumer processes reach the embedded schema registry at a web server's address.
        runner = LabRunnerWorker(
            tmp_path / "runner",
            kafka_cluster,
            database_url=postgres_url,
            redis_url=redis_url,
            KAFKALAB_SITE_URL=web_a.url,
        )
        stack.enter_context(runner)
        yield Classroom(runner=runner, web_a=web_a, web_b=web_b)


def running(name: str) -> Callable[[PageState], bool]:
    return lambda page: (card := page.cards.get(name)) is not None and card.status == "running"


def test_the_runner_pushes_through_redis_to_both_web_processes(classroom: Classroom, kafka_cluster: LocalCluster):
    runner, web_a, web_b = classroom.runner, classroom.web_a, classroom.web_b
    # The instructor works on web B; the learner joins the classroom on web A.
    create_staff(web_b, "teacher")
    instructor = Instructor(web_b, "teacher")
    classroom = instructor.create_classroom("Stack", learners=5, consumers=2)
    lab = joined_lab(Browser(web_a.url), classroom.code, "Ana")
    dashboard = DashboardSocket(web_b, classroom.classroom_id, session=instructor.browser.cookie("sessionid"))
    try:
        dashboard.wait(row_says(lab, "Ana"), "Ana's row on web B's dashboard")
        shared = lab.browser.post(lab.url("share/"))
        assert shared.status == 200, shared.text[:500]
        token = share_token_in(shared.text)
        viewer = Browser(web_b.url)
        assert viewer.get(f"/share/{token}/").status == 200

        with (
            LabSocket(web_a.url, lab) as learner_page,
            LabSocket(web_b.url, Lab(viewer, lab.lab_id), share=token) as viewer_page,
        ):
            at = lab.order()
            learner_page.wait(lambda page: at in page.boxes, f"the order at {at}, on web A")
            viewer_page.wait(lambda page: at in page.boxes, f"the order at {at}, on web B")

            name = lab.add_consumer()
            viewer_page.wait(running(name), f"{name} running, on web B")
            learner_page.wait(running(name), f"{name} running, on web A")
            # The runner's summary of the lab reaches the instructor's dashboard on web B ...
            dashboard.wait(row_says(lab, "online", "1 running"), "Ana online with 1 consumer running, on web B")
            # ... and the instructor's banner, sent from web B, the learner's page on web A.
            classroom.act("broadcast/", {"message": "Through Redis"})
            learner_page.wait(lambda page: "Through Redis" in page.notice, "the banner, on web A")

            # The consumer process is the runner's child, not a web server's: the runner is its own process.
            [process] = processes_of(lab)
            assert process.parent_pid == runner.pid
            assert alive(runner.pid) and runner.pid not in (web_a.pid, web_b.pid)
            for web in (web_a, web_b):
                assert EMBEDDED_RUNNER_STARTED not in web.log_path.read_text(errors="replace")

            assert lab.act(name, "stop").status == 200
            lab.wait_status(name, "stopped")

        for log in (runner.log_path, web_a.log_path, web_b.log_path):
            assert APPLICATION_FAILED not in log.read_text(errors="replace"), log

        # Wrong join codes are counted in Redis, so every web process refuses a guesser alike.
        guesser = Browser(web_a.url)
        assert [guesser.get(f"/join/WRONG{n}/").status for n in range(JOIN_FAILURES)] == [404] * JOIN_FAILURES
        assert Browser(web_b.url).get(f"/join/{classroom.code}/").status == 429
        # Closing the classroom on web B: the runner, a process of its own, deletes the lab's topic.
        dashboard.close()
        assert classroom.close().status == 200
        bootstrap = kafka_cluster.bootstrap_servers()
        wait_for(lambda: partition_count(bootstrap, lab.topic) is None, "the closed classroom's topic deleted")
    finally:
        dashboard.close()
        classroom.close()  # when the test failed before closing it (a second close changes nothing)
        end_processes(processes_of(lab))  # never leave a consumer behind, even when the test fails
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
        for future in admin.delete_topics([lab.topic]).values():
            with contextlib.suppress(Exception):  # a leftover topic is harmless
                future.result(timeout=30)
