"""Concurrent clicks on a real daphne, on the classroom's Postgres and on SQLite: the caps and
the uniqueness rules hold, every refusal is a clear 422 (never a 500), and no consumer process
outlives the row that lists it.

Requests go through HTTP as the page's htmx posts them, from threads released at once; what Kafka
holds is read with a plain confluent_kafka consumer, and the processes from the machine itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka.admin import AdminClient
from django.conf import settings

from kafkalab.kafka.local_cluster import LocalCluster
from tests.factories import new_order_id, order_form_data
from tests.harness.http_browser import Response
from tests.integration.consumer_groups.support import (
    Browser,
    Lab,
    Server,
    consumer_form,
    end_processes,
    processes_of,
    service_processes,
    wait_for,
)
from tests.integration.lab_support import read_topic

# Consumers end on SIGTERM within their stop deadline (10 s); this bounds the wait for that.
GONE_TIMEOUT = 20.0
RESET_TIMEOUT = 90.0
# After the race, queued starts have reached the runner well within this (they need no Kafka).
SETTLE_SECONDS = 3.0
# Clicks at once, then clicks spread over the reset (some before, some during, some after it).
CLICK_INTERVALS = (0.0, 0.3, 0.6)
ADDS_PER_RACE = 4
LIVE = {"starting", "running"}


def wait_until_gone(who: Callable[[], list]) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while (left := who()) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        end_processes(left)  # never leave a consumer of ours running, even when the check fails
    assert left == [], f"consumer processes were left running: {left}"


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def server(request, kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[Server]:
    """kafkalab under daphne on Postgres (as in the classroom) or SQLite (as under `make run`)."""
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    server = Server(tmp_path_factory.mktemp(f"concurrent-{request.param}"), kafka_cluster, database_url=database_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        wait_until_gone(lambda: [p for p in service_processes() if p.parent_pid == server.pid])


@pytest.fixture
def lab(server: Server, kafka_cluster: LocalCluster) -> Iterator[Lab]:
    """A new lab on the server; afterwards reset (its consumers reaped) and its topic deleted."""
    lab = Lab.open(Browser(server.url))
    yield lab
    try:
        wait_for(lambda: lab.reset() is None, f"a reset of {lab.topic}", timeout=RESET_TIMEOUT)
    finally:
        wait_until_gone(lambda: processes_of(lab))
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
        for future in admin.delete_topics([lab.topic]).values():
            with contextlib.suppress(Exception):  # a leftover topic is harmless
                future.result(timeout=30)


def all_at_once(*requests: Callable[[], Response], every: float = 0.0) -> list[Response]:
    """Send every request from a thread of its own, released together (or the n-th `every` * n
    seconds after the first, as repeated clicks); their answers, in order."""
    start = threading.Barrier(len(requests))

    def send(n: int, request: Callable[[], Response]) -> Response:
        start.wait(timeout=30)
        time.sleep(n * every)
        return request()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, range(len(requests)), requests))


def statuses(answers: list[Response]) -> Counter:
    return Counter(answer.status for answer in answers)


def live_consumers(lab: Lab) -> dict[str, dict]:
    return {name: c for name, c in lab.consumers().items() if c["status"] in LIVE}


def test_of_ten_concurrent_orders_with_one_order_id_exactly_one_is_written(lab: Lab, kafka_cluster: LocalCluster):
    order_id = new_order_id()
    form = order_form_data(order_id=order_id)

    answers = all_at_once(*[lambda: lab.browser.post(lab.url("orders/"), form)] * 10)

    assert statuses(answers) == {200: 1, 422: 9}, [(a.status, a.text[:300]) for a in answers]
    written = next(a for a in answers if a.status == 200)
    assert "Kafka acknowledged it" in written.text
    for refused in (a for a in answers if a.status == 422):
        assert f"Order {order_id} already exists in this lab; pick another orderId." in refused.text
    records = read_topic(kafka_cluster.bootstrap_servers(), lab.topic)
    assert [r.key for r in records] == [order_id.encode()], "Kafka holds that order once"


def test_of_twelve_concurrent_add_consumer_clicks_exactly_the_cap_start(lab: Lab):
    cap = settings.LAB_MAX_CONSUMERS

    answers = all_at_once(*[lambda: lab.browser.post(lab.url("consumers/"), consumer_form())] * 12)

    assert statuses(answers) == {200: cap, 422: 12 - cap}, [(a.status, a.text[:300]) for a in answers]
    for refused in (a for a in answers if a.status == 422):
        assert f"A lab runs at most {cap} consumers at once." in refused.text
    names = {f"c{n}" for n in range(1, cap + 1)}
    assert set(lab.consumers()) == names, "eight consumers, each with a name of its own"
    running = wait_for(
        lambda: (
            (pids := {n: c["pid"] for n, c in lab.consumers().items() if c["status"] == "running"})
            and len(pids) == cap
            and pids
        ),
        f"{cap} running consumers",
    )
    assert {p.name: p.pid for p in processes_of(lab)} == running, "one process per consumer, no more"

    assert lab.reset() is None
    wait_for(lambda: processes_of(lab) == [], "every consumer process of the lab ending", timeout=GONE_TIMEOUT)
    assert lab.consumers() == {}


def test_a_reset_racing_queued_add_consumer_clicks_leaves_no_process_behind(lab: Lab):
    for round_, interval in enumerate(CLICK_INTERVALS):
        if not live_consumers(lab):
            lab.add_consumer()
        wait_for(lambda: any(c["status"] == "running" for c in lab.consumers().values()), "a running consumer")

        answers = all_at_once(
            lambda: lab.browser.post(lab.url("reset/")),
            *[lambda: lab.browser.post(lab.url("consumers/"), consumer_form())] * ADDS_PER_RACE,
            every=interval,
        )

        assert set(statuses(answers)) <= {200, 422}, [(a.status, a.text[:300]) for a in answers]
        time.sleep(SETTLE_SECONDS)
        live = live_consumers(lab)
        processes = processes_of(lab)
        orphans = [p for p in processes if p.name not in live or live[p.name]["pid"] not in (None, p.pid)]
        assert orphans == [], f"round {round_}: processes of no live consumer (live: {live})"

    assert lab.reset() is None
    wait_for(lambda: processes_of(lab) == [], "every consumer process of the lab ending", timeout=GONE_TIMEOUT)
