"""A lab is its learner's: another session is refused on HTTP and on the websocket, and an unknown lab is 404."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from kafkalab.labs.models import Lab, LabOrder
from tests.factories import HTMX, order_form_data
from tests.integration.lab_support import (
    Learner,
    lab_socket,
    log_ends,
    observer_threads,
    partition_count,
    read_topic,
)

FOREIGN_POSTS = {
    "orders/": order_form_data(order_id="intruder-0001"),
    "orders/burst/": {"count": "10", "key_strategy": "orderId"},
    "orders/advance/": {"order_id": "owned-0001"},
    "partitions/": {"partitions": "6"},
    "reset/": {},
}


@pytest.mark.django_db(transaction=True)
def test_another_learner_is_refused_everything_in_my_lab(kafka_cluster, learner: Learner, open_lab, subtests):
    bootstrap = kafka_cluster.bootstrap_servers()
    assert learner.post("orders/", order_form_data(order_id="owned-0001")).status_code == 200
    (record,) = read_topic(bootstrap, learner.topic)
    ends = log_ends(bootstrap, learner.topic)
    other = Client()
    open_lab(other)  # a learner with a lab of their own
    stranger = Client()  # and one who never opened a lab

    for client, who in ((other, "another learner"), (stranger, "a session without a lab")):
        for path in ("", "state.json", f"events/{record.partition}/{record.offset}/"):
            with subtests.test(who=who, get=path):
                assert client.get(learner.url(path)).status_code == 403
                assert client.get(learner.url(path), headers=HTMX).status_code == 403
        for path, data in FOREIGN_POSTS.items():
            with subtests.test(who=who, post=path):
                assert client.post(learner.url(path), data).status_code == 403
                assert client.post(learner.url(path), data, headers=HTMX).status_code == 403

    assert log_ends(bootstrap, learner.topic) == ends, "nothing was produced, and the topic was not reset"
    assert partition_count(bootstrap, learner.topic) == 4
    assert list(LabOrder.objects.filter(lab_id=learner.lab_id).values_list("order_id", "status")) == [
        ("owned-0001", "OrderCreated")
    ]
    assert learner.client.get(learner.url()).status_code == 200, "the owner still gets in"


@pytest.mark.django_db(transaction=True)
def test_an_unknown_lab_is_not_found(learner: Learner, subtests):
    unknown = f"/labs/{Lab.objects.latest('pk').pk + 1000}/"
    for path in ("", "state.json", "events/0/0/"):
        with subtests.test(get=path):
            assert learner.client.get(unknown + path).status_code == 404
    for path, data in FOREIGN_POSTS.items():
        with subtests.test(post=path):
            assert learner.client.post(unknown + path, data, headers=HTMX).status_code == 404


@pytest.mark.django_db(transaction=True)
async def test_the_websocket_refuses_other_sessions_and_unknown_labs(learner: Learner, open_lab):
    other = Client()
    await sync_to_async(open_lab)(other)
    other_session = other.cookies["sessionid"].value
    unknown_lab = learner.lab_id + 1000

    for lab_id, session_id, code in (
        (learner.lab_id, other_session, 4403),
        (learner.lab_id, None, 4403),
        (learner.lab_id, "not-a-session", 4403),
        (unknown_lab, learner.session_id, 4404),
    ):
        socket = lab_socket(lab_id, session_id=session_id)
        try:
            assert await socket.connect(timeout=10) == (False, code)
            assert await socket.receive_nothing(timeout=0.5)
        finally:
            await socket.disconnect()

    assert f"observer-lab-{learner.lab_id}" not in observer_threads(), "nobody started watching the lab"
