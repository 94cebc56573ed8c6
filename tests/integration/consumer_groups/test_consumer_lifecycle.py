"""Consumer processes as the app owns them: reaped on reset, dead with the server, shown
stopped after a restart, limited per lab, refused to strangers, and showing their own errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.conf import settings

from kafkalab.kafka.local_cluster import LocalCluster
from tests.integration.consumer_groups.support import (
    PARTITIONS,
    Browser,
    GroupView,
    Lab,
    LabSocket,
    Server,
    alive,
    consumer_form,
    processes_of,
    wait_for,
)

ALL = list(range(PARTITIONS))
# Above the ephemeral port range (a client's outgoing connection may hold a port below it) and
# apart from the dev cluster (9092…), the suite's (29092…) and the other tests' clusters (61092…).
LONE_BROKER_PORTS = 62092
DEATH_TIMEOUT = 15.0  # consumers get SIGTERM when the server dies; this bounds their goodbye


def running(lab: Lab, count: int) -> dict[str, int]:
    """Wait for `count` running consumers; name → pid, each pid a live process of this lab."""
    pids = wait_for(
        lambda: (
            (live := {c["name"]: c["pid"] for c in lab.state()["consumers"] if c["status"] == "running"})
            and len(live) == count
            and live
        ),
        f"{count} running consumers",
    )
    assert {p.name: p.pid for p in processes_of(lab)} == pids
    return pids


def test_a_lab_reset_reaps_its_consumers(lab: Lab, group: GroupView):
    lab.add_consumer(), lab.add_consumer()
    pids = running(lab, 2)

    assert lab.reset() is None

    assert lab.state()["consumers"] == [], "a reset lab starts without consumers"
    assert processes_of(lab) == []
    assert not any(alive(pid) for pid in pids.values())
    assert not group.describe().members


def test_consumers_die_with_the_server_and_can_be_restarted_after_it_restarts(
    make_server: Callable[..., Server], kafka_cluster: LocalCluster
):
    server = make_server()
    lab = Lab.open(Browser(server.url))
    group = GroupView(kafka_cluster.bootstrap_servers(), lab)
    first, second = lab.add_consumer(), lab.add_consumer()
    pids = running(lab, 2)

    killed = time.monotonic()
    server.kill()  # SIGKILL: the server cleans up nothing; Linux signals the consumers (PR_SET_PDEATHSIG)
    wait_for(lambda: not any(alive(pid) for pid in pids.values()), "the consumers ending", timeout=DEATH_TIMEOUT)
    print(f"server SIGKILL → consumers gone: {time.monotonic() - killed:.2f}s")

    server.start()  # the same database, as after Ctrl-C and `make run` again
    lab.browser.base_url = server.url
    consumers = {c["name"]: (c["status"], c["pid"]) for c in lab.state()["consumers"]}
    assert consumers == {first: ("stopped", None), second: ("stopped", None)}
    assert lab.act(first, "restart").status == 200
    [new_pid] = running(lab, 1).values()
    assert new_pid not in pids.values()
    group.wait_assignment(lambda a: a == {first: ALL}, f"{first} back in the group")
    wait_for(lambda: lab.reset() is None, "a reset of the lab")
    assert processes_of(lab) == []


def test_the_ninth_consumer_is_refused_and_nothing_starts(lab: Lab):
    for _ in range(settings.LAB_MAX_CONSUMERS):
        lab.add_consumer(session_timeout_ms=3000)

    refused = lab.browser.post(lab.url("consumers/"), consumer_form())

    assert refused.status == 422
    assert "A lab runs at most 8 consumers at once. Stop or kill one before adding another." in refused.text
    running(lab, settings.LAB_MAX_CONSUMERS)
    assert len(lab.state()["consumers"]) == settings.LAB_MAX_CONSUMERS


def test_a_config_the_form_cannot_accept_is_refused_with_the_field_error(lab: Lab):
    for config, error in (
        ({"commit_mode": "sometimes"}, "Select a valid choice. sometimes is not one of the available choices."),
        ({"session_timeout_ms": 500}, "Ensure this value is greater than or equal to 1000."),
        ({"assignment_strategy": "sticky-ish"}, "Select a valid choice. sticky-ish is not one of the available"),
    ):
        response = lab.browser.post(lab.url("consumers/"), consumer_form(**config))
        assert response.status == 422
        assert error in response.text

    assert lab.state()["consumers"] == []
    assert processes_of(lab) == []


def test_a_consumer_kafka_refuses_to_start_crashes_and_shows_why(lab: Lab, lab_server: Server, page: LabSocket):
    name = lab.add_consumer()
    running(lab, 1)
    assert lab.act(name, "stop").status == 200
    lab.wait_status(name, "stopped")
    # A config the form no longer offers, as an older version might have saved it.
    lab_server.sql(
        "UPDATE labs_notificationconsumer SET config = json_set(config, '$.assignment_strategy', 'sticky-ish') "
        "WHERE lab_id = ? AND name = ?",
        lab.lab_id,
        name,
    )

    assert lab.act(name, "restart").status == 200

    crashed = lab.wait_status(name, "crashed")
    assert crashed["pid"] is None
    assert "could not start" in crashed["last_error"]
    assert "sticky-ish" in crashed["last_error"]
    card = page.wait(lambda shown: (c := shown.cards.get(name)) and c.status == "crashed" and c, "the crashed card")
    assert 'class="card-error"' in card.html and "sticky-ish" in card.html
    assert processes_of(lab) == []


def test_a_consumer_shows_its_error_when_the_broker_goes_away(make_server: Callable[..., Server], tmp_path_factory):
    cluster = LocalCluster(
        tmp_path_factory.mktemp("lone-broker"), port_base=LONE_BROKER_PORTS, libs_dir=settings.KAFKA_LIBS_DIR
    )
    try:
        cluster.up(1)
        server = make_server(
            KAFKA_LOCAL_DIR=str(cluster.root), KAFKA_LOCAL_PORT_BASE=str(LONE_BROKER_PORTS), KAFKA_LOCAL_BROKERS="1"
        )
        lab = Lab.open(Browser(server.url))
        group = GroupView(cluster.bootstrap_servers(), lab)
        name = lab.add_consumer()
        group.wait_assignment(lambda a: a == {name: ALL}, f"{name} owning every partition")
        with LabSocket(server.url, lab) as page:
            page.wait(lambda shown: (c := shown.cards.get(name)) and c.partitions == ALL, "the card's partitions")

            cluster.down()

            card = page.wait(
                lambda shown: (c := shown.cards.get(name)) and 'class="card-error"' in c.html and c,
                "the broker's absence on the card",
            )
            assert re.search(r"Connection refused|brokers are down", card.html), card.html
            # Both read the live model; librdkafka's next retry may change the error between two looks.
            page.wait(
                lambda shown: lab.consumers()[name]["last_error"] in shown.cards[name].html,
                "the card and state.json showing the same error",
            )
            assert lab.act(name, "kill").status == 200
            page.wait(lambda shown: shown.cards[name].status == "killed", "the card showing the kill")
    finally:
        cluster.down()


def test_another_learner_cannot_act_on_my_consumers(lab: Lab, open_lab):
    name = lab.add_consumer()
    pids = running(lab, 1)
    stranger = open_lab()  # a learner with a lab of their own, and a CSRF cookie

    for path in ("consumers/", f"consumers/{name}/stop/", f"consumers/{name}/kill/", f"consumers/{name}/restart/"):
        assert stranger.browser.post(lab.url(path), consumer_form()).status == 403, path

    assert running(lab, 1) == pids, "my consumer runs on, untouched, and no other started"
    assert len(lab.state()["consumers"]) == 1
