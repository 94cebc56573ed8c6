"""A lab's life: made only by "Start my lab" (a POST), capped per client address and in all,
kept while it is watched or acted on, and deleted, processes, topic, group and rows, once idle.

The start page and the caps run in-process (Django's test Client), on the suite's cluster; expiry
runs end to end on a real daphne whose labs expire after a few seconds.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from confluent_kafka.admin import AdminClient
from django.db import connection
from django.test import Client
from django.utils import timezone

from kafkalab.kafka.local_cluster import LocalCluster
from kafkalab.labs.models import Lab as LabRow
from tests.factories import order_form_data
from tests.harness.http_browser import lab_id_in
from tests.integration.consumer_groups.support import (
    Browser,
    GroupView,
    Lab,
    LabSocket,
    Server,
    alive,
    end_processes,
    processes_of,
    service_processes,
    wait_for,
)
from tests.integration.lab_support import KAFKA_TIMEOUT, Learner, http_get, partition_count, text

in_process = pytest.mark.django_db(transaction=True)

FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
START_BUTTON = re.compile(r"<button\b[^>]*>\s*Start my lab\s*</button>")
# A lab on the expiring server is idle after this long; the runner looks every HOUSEKEEPING_SECONDS.
IDLE_SECONDS = 3
HOUSEKEEPING_SECONDS = 1
# A bound on the expiry's work (stop the consumers, delete topic and group), not its expected length.
EXPIRY_TIMEOUT = 60.0
GONE_TIMEOUT = 20.0


# --- In-process helpers -------------------------------------------------------------------------


def next_lab_id() -> int:
    """The id the next lab row will get: unchanged when nothing tried to make one."""
    table = LabRow._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            cursor.execute(f"SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM {sequence}")
            return cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        return (row[0] if row else 0) + 1


@pytest.fixture
def made_labs(kafka_cluster: LocalCluster) -> Iterator[list[int]]:
    """Ids of the labs a test made by hand; their topics are deleted afterwards."""
    made: list[int] = []
    yield made
    if made:
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
        for future in admin.delete_topics([f"lab-{lab_id}.orders" for lab_id in made]).values():
            with contextlib.suppress(Exception):  # already gone, or Kafka is busy: harmless
                future.result(timeout=30)


def start_lab(client: Client, made: list[int]) -> int:
    """Press "Start my lab": a new lab, and the browser sent to it."""
    response = client.post("/labs/")
    assert response.status_code == 302, text(response)[:500]
    lab_id = lab_id_in(response["Location"])
    assert lab_id is not None, response["Location"]
    made.append(lab_id)
    return lab_id


def assert_nothing_made(bootstrap: str, *, labs: int, next_id: int) -> None:
    assert LabRow.objects.count() == labs, "no lab row was made"
    assert next_lab_id() == next_id, "no lab row was even tried"
    assert partition_count(bootstrap, f"lab-{next_id}.orders") is None, "no topic was made"


# --- The start page -----------------------------------------------------------------------------


@in_process
def test_the_start_page_makes_nothing_and_start_my_lab_makes_a_lab(
    kafka_cluster: LocalCluster, lab_ids_apart, lab_channel_layers, made_labs: list[int]
):
    bootstrap, client = kafka_cluster.bootstrap_servers(), Client()
    labs, next_id = LabRow.objects.count(), next_lab_id()

    start = client.get("/")

    assert start.status_code == 200
    forms = [(attrs, body) for attrs, body in FORM.findall(text(start)) if START_BUTTON.search(body)]
    assert len(forms) == 1, "one Start my lab button, in a form"
    assert 'method="post"' in forms[0][0] and 'action="/labs/"' in forms[0][0]
    assert_nothing_made(bootstrap, labs=labs, next_id=next_id)

    assert client.get("/labs/").status_code == 405, "a GET never makes a lab"
    assert_nothing_made(bootstrap, labs=labs, next_id=next_id)

    lab_id = start_lab(client, made_labs)

    assert lab_id == next_id
    assert LabRow.objects.count() == labs + 1
    assert partition_count(bootstrap, f"lab-{lab_id}.orders") == 4
    assert client.get(f"/labs/{lab_id}/").status_code == 200
    back = client.get("/")
    assert back.status_code == 302 and back["Location"] == f"/labs/{lab_id}/", "back to the lab it has"
    assert LabRow.objects.count() == labs + 1


# --- The caps -----------------------------------------------------------------------------------


@in_process
def test_labs_are_capped_per_client_address_and_in_all(
    kafka_cluster: LocalCluster, settings, lab_ids_apart, lab_channel_layers, made_labs: list[int]
):
    bootstrap = kafka_cluster.bootstrap_servers()
    settings.LAB_MAX_LABS_PER_ADDRESS = 2
    for _ in range(2):  # two browsers behind one address (the test Client's 127.0.0.1)
        start_lab(Client(), made_labs)
    next_id = next_lab_id()

    refused = Client().post("/labs/")

    assert refused.status_code == 429
    assert "Your address already has 2 labs, the limit per address." in text(refused)
    assert START_BUTTON.search(text(refused)), "the start page again, with the reason"
    assert_nothing_made(bootstrap, labs=2, next_id=next_id)

    elsewhere = start_lab(Client(REMOTE_ADDR="192.0.2.7"), made_labs)
    assert LabRow.objects.get(pk=elsewhere).client_address == "192.0.2.7"

    settings.LAB_MAX_LABS = 3
    next_id = next_lab_id()
    for client in (Client(), Client(REMOTE_ADDR="198.51.100.9")):  # a full address and a fresh one
        refused = client.post("/labs/")
        assert refused.status_code == 429
        assert "This kafkalab already runs 3 labs, its limit." in text(refused)
    assert_nothing_made(bootstrap, labs=3, next_id=next_id)


@in_process
def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    kafka_cluster: LocalCluster, settings, lab_ids_apart, lab_channel_layers, made_labs: list[int]
):
    bootstrap = kafka_cluster.bootstrap_servers()
    settings.LAB_MAX_LABS_PER_ADDRESS = 1
    settings.LAB_TRUSTED_PROXIES = []
    first = start_lab(Client(HTTP_X_FORWARDED_FOR="203.0.113.1"), made_labs)
    assert LabRow.objects.get(pk=first).client_address == "127.0.0.1", "the header is ignored"
    next_id = next_lab_id()

    spoofed = Client(HTTP_X_FORWARDED_FOR="203.0.113.2").post("/labs/")

    assert spoofed.status_code == 429, "a header of its choosing does not make a client someone else"
    assert_nothing_made(bootstrap, labs=1, next_id=next_id)

    settings.LAB_TRUSTED_PROXIES = ["127.0.0.1"]
    behind_proxy = start_lab(Client(HTTP_X_FORWARDED_FOR="203.0.113.2"), made_labs)
    assert LabRow.objects.get(pk=behind_proxy).client_address == "203.0.113.2"
    next_id = next_lab_id()
    again = Client(HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.2").post("/labs/")
    assert again.status_code == 429, "the proxy's client is counted, not what it was told"
    assert_nothing_made(bootstrap, labs=2, next_id=next_id)


# --- In use -------------------------------------------------------------------------------------


def _idle_for_an_hour(lab_id: int) -> datetime:
    since = timezone.now() - timedelta(hours=1)
    LabRow.objects.filter(pk=lab_id).update(last_seen_at=since)
    return since


def _last_seen(lab_id: int) -> datetime:
    return LabRow.objects.get(pk=lab_id).last_seen_at


@in_process
async def test_acting_on_a_lab_keeps_it_in_use_and_looking_at_it_does_not(learner: Learner):
    idle_since = await sync_to_async(_idle_for_an_hour)(learner.lab_id)

    for path in ("/", learner.url(), learner.url("events/0/0/")):
        response = await sync_to_async(learner.client.get)(path)
        assert response.status_code in (200, 302, 422), (path, response.status_code)
    status, body = await http_get(learner.url("state.json"), session_id=learner.session_id)
    assert status == 200, body[:500]

    assert await sync_to_async(_last_seen)(learner.lab_id) == idle_since, "a GET changes nothing"

    for action, data in (("orders/", order_form_data()), ("share/", {})):
        await sync_to_async(_idle_for_an_hour)(learner.lab_id)
        before = timezone.now()
        response = await sync_to_async(learner.post)(action, data)
        assert response.status_code == 200, (action, text(response)[:500])
        assert await sync_to_async(_last_seen)(learner.lab_id) >= before, f"POST {action} puts the lab in use"


# --- Expiry, on a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def expiring_server(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[Server]:
    """kafkalab under daphne whose labs expire after IDLE_SECONDS without a page or an action."""
    server = Server(
        tmp_path_factory.mktemp("expiring-server"),
        kafka_cluster,
        LAB_IDLE_EXPIRY_SECONDS=str(IDLE_SECONDS),
        LAB_HOUSEKEEPING_SECONDS=str(HOUSEKEEPING_SECONDS),
    ).start()
    try:
        yield server
    finally:
        server.stop()
        deadline = time.monotonic() + GONE_TIMEOUT
        while (left := [p for p in service_processes() if p.parent_pid == server.pid]) and time.monotonic() < deadline:
            time.sleep(0.1)
        end_processes(left)
        assert left == [], f"consumer processes outlived the server: {left}"


@pytest.fixture
def topics_deleted(kafka_cluster: LocalCluster) -> Iterator[list[str]]:
    """Topics to delete after the test, should the lab not have expired by then."""
    topics: list[str] = []
    yield topics
    if topics:
        admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
        for future in admin.delete_topics(topics).values():
            with contextlib.suppress(Exception):  # deleted by the expiry already
                future.result(timeout=30)


def group_listed(bootstrap: str, group_id: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # held until its future is done
    listed = admin.list_consumer_groups(request_timeout=KAFKA_TIMEOUT)
    return group_id in {group.group_id for group in listed.result(timeout=KAFKA_TIMEOUT + 5).valid}


def expiry_logged(server: Server, lab: Lab) -> bool:
    return f"lab {lab.lab_id} expired" in server.log_path.read_text(errors="replace")


def test_an_idle_lab_expires_with_its_consumers_topic_group_and_rows(
    expiring_server: Server, kafka_cluster: LocalCluster, topics_deleted: list[str]
):
    bootstrap = kafka_cluster.bootstrap_servers()
    lab = Lab.open(Browser(expiring_server.url))
    topics_deleted.append(lab.topic)
    with LabSocket(expiring_server.url, lab) as page:  # the learner works with the page open
        name = lab.add_consumer()
        page.wait(lambda shown: (c := shown.cards.get(name)) and c.status == "running", f"{name} running")
        GroupView(bootstrap, lab).wait_assignment(lambda a: set(a) == {name}, f"{name} in the group")
        [process] = processes_of(lab)
        assert not expiry_logged(expiring_server, lab), "a lab with its page open is in use"
    # The page is closed: nobody watches the lab or acts on it from now on.

    wait_for(lambda: not alive(process.pid), "the lab's consumer process ending", timeout=EXPIRY_TIMEOUT)
    wait_for(lambda: partition_count(bootstrap, lab.topic) is None, "the lab's topic deleted", timeout=EXPIRY_TIMEOUT)
    wait_for(lambda: not group_listed(bootstrap, lab.group_id), "the lab's group deleted", timeout=EXPIRY_TIMEOUT)
    wait_for(lambda: lab.browser.get(lab.url()).status == 404, "the lab's page gone", timeout=EXPIRY_TIMEOUT)
    assert lab.browser.get(lab.url("state.json")).status == 404
    assert processes_of(lab) == []
    assert expiry_logged(expiring_server, lab), expiring_server.log_tail()


def test_a_lab_with_its_page_open_does_not_expire(
    expiring_server: Server, kafka_cluster: LocalCluster, topics_deleted: list[str]
):
    bootstrap = kafka_cluster.bootstrap_servers()
    lab = Lab.open(Browser(expiring_server.url))
    topics_deleted.append(lab.topic)
    with LabSocket(expiring_server.url, lab):
        # Three idle periods, a housekeeping round every second: it would have expired twice over.
        watched_until = time.monotonic() + 3 * IDLE_SECONDS
        while time.monotonic() < watched_until:
            assert partition_count(bootstrap, lab.topic) == 4, "the watched lab's topic is still there"
            time.sleep(HOUSEKEEPING_SECONDS / 2)
        assert lab.browser.get(lab.url()).status == 200
        assert not expiry_logged(expiring_server, lab)

    # Once nobody watches it, it is idle like any other.
    wait_for(
        lambda: partition_count(bootstrap, lab.topic) is None, "the closed lab's topic deleted", timeout=EXPIRY_TIMEOUT
    )
    assert expiry_logged(expiring_server, lab)
