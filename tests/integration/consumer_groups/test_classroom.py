"""The classroom, end to end on a real server and the suite's cluster: an instructor (a staff
login made with createsuperuser) creates a classroom; learners join with its code and a name; the
dashboard follows every lab live; the instructor resets, broadcasts, shares their own lab and
closes the classroom. Kafka's side (topics, log ends) is read with the test's own AdminClient.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterator

import pytest

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.http_browser import Browser
from tests.harness.websocket import WebsocketRefused
from tests.integration.consumer_groups.classroom_support import (
    Classroom,
    DashboardSocket,
    Instructor,
    create_staff,
    join,
    joined_lab,
    row_says,
)
from tests.integration.consumer_groups.support import WAIT, Lab, LabSocket, Server, consumer_form, wait_for
from tests.integration.lab_support import log_ends, partition_count

# Few enough that the rate-limit test trips it quickly; enough for the wrong codes the others send.
JOIN_FAILURES = 6
REJOIN_CODE = re.compile(r"data-rejoin-code>([A-Z0-9]+)<")
CLOSE_GONE = 4410


@pytest.fixture(scope="module")
def server(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[Server]:
    env = {"CLASSROOM_JOIN_FAILURES": str(JOIN_FAILURES), "CLASSROOM_ROSTER_INTERVAL": "0.2"}
    server = Server(tmp_path_factory.mktemp("classroom"), kafka_cluster, **env).start()
    try:
        create_staff(server, "teacher")
        yield server
    finally:
        server.stop()


@pytest.fixture
def instructor(server: Server) -> Instructor:
    return Instructor(server, "teacher")


@contextlib.contextmanager
def classroom_of(instructor: Instructor, name: str, **limits: int) -> Iterator[Classroom]:
    """A classroom, closed afterwards (which deletes its labs' processes and topics)."""
    classroom = instructor.create_classroom(name, **limits)
    try:
        yield classroom
    finally:
        classroom.close()


def topic_exists(kafka_cluster: LocalCluster, topic: str) -> bool:
    return partition_count(kafka_cluster.bootstrap_servers(), topic) is not None


def test_learners_join_with_the_code_and_only_ever_reach_their_own_lab(
    server: Server, instructor: Instructor, kafka_cluster: LocalCluster
):
    with classroom_of(instructor, "Kafka, Tuesday", learners=2, consumers=1) as classroom:
        projector = instructor.browser.get(classroom.url("projector/"))
        assert projector.status == 200 and "<svg" in projector.text and f"/join/{classroom.code}/" in projector.text

        # Typing the code (in lower case, with the dash it is shown with) leads to the join page.
        ana_browser = Browser(server.url)
        ana_browser.get("/join/")
        typed = classroom.code[:3].lower() + "-" + classroom.code[3:].lower()
        page = ana_browser.post(
            "/join/", {"code": typed, "csrfmiddlewaretoken": ana_browser.cookie("csrftoken")}, htmx=False
        )
        assert page.url.endswith(f"/join/{classroom.code}/") and "Kafka, Tuesday" in page.text
        assert "Nobody has joined yet" in instructor.browser.get(classroom.url()).text, "a GET joins nobody"

        ana = joined_lab(ana_browser, classroom.code, "Ana")
        lab_page = ana_browser.get(ana.url())
        assert "you joined as <strong>Ana</strong>" in lab_page.text
        rejoin_code = REJOIN_CODE.search(lab_page.text).group(1)
        assert partition_count(kafka_cluster.bootstrap_servers(), ana.topic) == 4  # a real lab, in Kafka

        # A second tab (the same browser) lands in the same lab.
        assert joined_lab(ana_browser, classroom.code, "Ana").lab_id == ana.lab_id

        # The name is taken: without the rejoin code, and with a wrong one, nobody gets Ana's lab.
        other = Browser(server.url)
        taken = join(other, classroom.code, "ana")
        assert taken.status == 422 and "joined as" in taken.text and "rejoin code" in taken.text
        wrong = join(other, classroom.code, "Ana", rejoin_code="AAAA-AAAA")
        assert wrong.status == 422 and "not the rejoin code" in wrong.text

        # Ana in another browser, with her rejoin code, is back in her lab and may act in it.
        ana_again = joined_lab(Browser(server.url), classroom.code, "ana", rejoin_code=rejoin_code.lower())
        assert ana_again.lab_id == ana.lab_id
        partition, offset = ana_again.order()
        assert log_ends(kafka_cluster.bootstrap_servers(), ana.topic)[partition] == offset + 1

        ben = joined_lab(Browser(server.url), classroom.code, "Ben")
        assert ben.lab_id != ana.lab_id

        # Ben reaches nothing of Ana's: her page, her actions, her socket, her state, the watch view.
        assert ben.browser.get(ana.url()).status == 403
        assert ben.browser.post(ana.url("orders/burst/"), {"count": 1, "key_strategy": "orderId"}).status == 403
        assert ben.browser.get(ana.url("state.json")).status == 403
        assert ben.browser.get(ana.url("watch/")).status == 403
        with pytest.raises(WebsocketRefused) as refused:
            LabSocket(server.url, Lab(browser=ben.browser, lab_id=ana.lab_id))
        assert refused.value.status == 403
        # ... nor the dashboard, over HTTP or its socket.
        dashboard = ben.browser.get(classroom.url())
        assert "/instructor/login/" in dashboard.url
        with pytest.raises(WebsocketRefused):
            DashboardSocket(server, classroom.classroom_id, session=ben.browser.cookie("sessionid"))

        # The classroom's limits: two learners, one consumer per lab; each refusal says so.
        full = join(Browser(server.url), classroom.code, "Cara")
        assert full.status == 429 and "full" in full.text and "2 learners" in full.text
        ben.wait_status(ben.add_consumer(), "running")
        second = ben.browser.post(ben.url("consumers/"), consumer_form())
        assert second.status == 422 and "at most 1 consumers" in second.text, second.text[:300]


def test_the_dashboard_follows_each_lab_live_and_the_instructor_acts_on_them(
    server: Server, instructor: Instructor, kafka_cluster: LocalCluster
):
    bootstrap = kafka_cluster.bootstrap_servers()
    with classroom_of(instructor, "Live roster") as classroom:
        dashboard = DashboardSocket(server, classroom.classroom_id, session=instructor.browser.cookie("sessionid"))
        try:
            ana = joined_lab(Browser(server.url), classroom.code, "Ana")
            dashboard.wait(row_says(ana, "Ana", "no lesson begun"), "Ana's row, once she joined")

            with LabSocket(server.url, ana) as ana_page:
                dashboard.wait(row_says(ana, "online"), "Ana online while her lab is open")

                # Progress comes from the lesson engine, which checks Kafka: a real order passes step 1.
                ana.browser.post(ana.url("lessons/the-log/begin/"))
                dashboard.wait(row_says(ana, "1. The log", "step 1 of"), "Ana in lesson 1, step 1")
                ana.order()
                dashboard.wait(row_says(ana, "step 2 of"), "Ana's first step passed")

                # Health comes from the runner's model of her lab: a real consumer, an open transaction.
                ana.add_consumer()
                dashboard.wait(row_says(ana, "1 running"), "Ana's consumer running")
                assert ana.browser.post(ana.url("transaction/begin/")).status == 200
                dashboard.wait(row_says(ana, "transaction open"), "Ana's open transaction")
                assert ana.browser.post(ana.url("transaction/abort/")).status == 200

                # Reset from the dashboard: her consumer stops, her topic is made afresh, empty.
                learner_id = dashboard.rows[ana.lab_id].learner_id
                reset = classroom.act(f"learners/{learner_id}/reset/")
                assert "lab was reset" in reset.text
                assert sum(log_ends(bootstrap, ana.topic).values()) == 0
                dashboard.wait(row_says(ana, "0 running"), "Ana's consumers gone after the reset")

                # A broadcast reaches her page live.
                classroom.act("broadcast/", {"message": "Break: back at 11:00"})
                ana_page.wait(lambda page: "Break: back at 11:00" in page.notice, "the instructor's banner")

                # Follow me: the instructor's own lab, read-only, for learners of this classroom only.
                mine = classroom.act("my-lab/")
                instructor_lab = int(re.search(r"/labs/(\d+)/$", mine.url).group(1))
                classroom.act("follow/", {"follow": "on"})
                ana_page.wait(lambda page: f"/labs/{instructor_lab}/watch/" in page.notice, "the Follow me link")
                watched = ana.browser.get(f"/labs/{instructor_lab}/watch/")
                assert watched.status == 200 and "read-only" in watched.text and "Create order" not in watched.text
                outsider = Browser(server.url)
                outsider.start_lab()
                assert outsider.get(f"/labs/{instructor_lab}/watch/").status == 403
                follower = LabSocket(server.url, Lab(browser=ana.browser, lab_id=instructor_lab))
                try:
                    classroom.act("follow/", {"follow": "off"})
                    assert follower.wait_closed() == 4403
                finally:
                    follower.close()
                assert ana.browser.get(f"/labs/{instructor_lab}/watch/").status == 403

                # The progress CSV: learner, lesson, step, passed at.
                exported = instructor.browser.get(classroom.url("progress.csv"))
                rows = list(csv.reader(io.StringIO(exported.text)))
                assert rows[0] == ["learner", "lesson", "step", "passed_at"]
                assert rows[1][:3] == ["Ana", "the-log", "write-an-event"] and rows[1][3]

                # Closing deletes every lab of the classroom: the page is told, the topics go.
                closed = classroom.close()
                assert "is closed" in closed.text
                assert ana_page.wait_closed() == CLOSE_GONE
                assert "closed this classroom" in ana_page.page.closed_reason
            for topic in (ana.topic, f"lab-{instructor_lab}.orders"):
                wait_for(lambda topic=topic: not topic_exists(kafka_cluster, topic), f"{topic} deleted", timeout=WAIT)
            again = join(Browser(server.url), classroom.code, "Dan")
            assert again.status == 410 and "closed" in again.text
        finally:
            dashboard.close()


def test_wrong_codes_are_limited_per_address(server: Server, instructor: Instructor):
    """Last in the module: it leaves 127.0.0.1 blocked for the rest of the window."""
    with classroom_of(instructor, "Guessing") as classroom:
        guesser = Browser(server.url)
        # Wrong codes are answered 404 until JOIN_FAILURES of them (the earlier tests' wrong
        # rejoin code counts too: same address), then refused.
        answers = []
        while len(answers) <= JOIN_FAILURES and 429 not in answers:
            answers.append(guesser.get(f"/join/ZZZZ{len(answers):02d}/").status)
        assert answers[-1] == 429 and set(answers[:-1]) == {404}, answers
        blocked = guesser.get(f"/join/{classroom.code}/")  # even the right code, now
        assert blocked.status == 429 and "Too many wrong codes" in blocked.text
