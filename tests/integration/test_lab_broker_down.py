"""Producing while the only broker is down, plainly or in a transaction: the learner is told, and
nothing acknowledged is lost (the module's tests share one broker, which each may stop)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from kafkalab.labs.models import Lab, LabOrder
from tests.factories import lab_open, order_form_data
from tests.integration.lab_support import CLUSTER_UP_TIMEOUT, Learner, read_topic, text
from tests.integration.test_lab_transactions import act, committed_keys, lab_rows, order, runner_lets_go, state_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_broker_down_while_producing_is_reported_and_loses_nothing_acknowledged(lone_broker):
    client = Client()
    learner = Learner(client=client, lab_id=lab_open(client))
    acknowledged = [f"before-outage-{n}" for n in range(3)]
    for order_id in acknowledged:
        response = learner.post("orders/", order_form_data(order_id=order_id))
        assert response.status_code == 200, text(response)
        assert "Kafka acknowledged it" in text(response)

    lone_broker.down()
    failed = learner.post("orders/", order_form_data(order_id="during-outage"))

    assert failed.status_code == 503, text(failed)
    assert "Kafka acknowledged 0 of 1 event(s). 1 failed:" in text(failed)
    assert "Nothing was written." in text(failed)
    assert 'value="during-outage"' in text(failed), "the form keeps the order, ready to send again"
    assert not LabOrder.objects.filter(lab_id=learner.lab_id, order_id="during-outage").exists()

    lone_broker.up(1, timeout=CLUSTER_UP_TIMEOUT)
    ids = [r.body["orderId"] for r in read_topic(lone_broker.bootstrap_servers(), learner.topic)]
    assert sorted(ids) == sorted(acknowledged)

    # Back up, the same order goes through.
    retried = learner.post("orders/", order_form_data(order_id="during-outage"))
    assert retried.status_code == 200, text(retried)
    assert LabOrder.objects.filter(lab_id=learner.lab_id, order_id="during-outage").exists()


def test_no_database_lock_is_held_while_kafka_is_waited_for(lone_broker):
    """A new lab waits for Kafka to make its topic; with the broker down that takes a while, and
    all that time other requests must be able to write to the database."""
    owner = Client()
    learner = Learner(client=owner, lab_id=lab_open(owner))
    lone_broker.down()
    creating = threading.Thread(target=lambda: Client().post("/labs/"), name="lab-create-waiting-on-kafka")
    creating.start()
    try:
        time.sleep(1)  # let the create reach its Kafka calls
        assert creating.is_alive(), "the create should still be waiting for Kafka"

        written = Lab.objects.filter(pk=learner.lab_id).update(client_address="written-meanwhile")

        assert written == 1
        assert creating.is_alive(), "the write went through while the create still waited for Kafka"
    finally:
        creating.join(timeout=120)
        lone_broker.up(1, timeout=CLUSTER_UP_TIMEOUT)
    assert not Lab.objects.exclude(pk=learner.lab_id).exists(), "a lab whose topic Kafka never made is not kept"


async def test_a_transaction_on_a_lab_whose_broker_is_down_says_so_and_leaves_nothing_open(lone_broker):
    client = Client()
    learner = Learner(client=client, lab_id=await sync_to_async(lab_open)(client))
    await state_json(learner)  # the embedded runner, up on this loop
    await act(learner, "begin")
    await order(learner, "before-outage")

    await asyncio.to_thread(lone_broker.down)
    failed_commit = await act(learner, "commit", status=422)

    assert "Kafka did not commit the transaction" in failed_commit, failed_commit[:2000]
    assert 'data-txn-state="none"' in failed_commit, "nothing is left open on the page"
    assert await lab_rows(learner) == {}
    failed_begin = await act(learner, "begin", status=422)
    assert "Kafka did not start the transaction" in failed_begin and "No transaction is open" in failed_begin
    stored = await sync_to_async(Lab.objects.get)(pk=learner.lab_id)
    assert stored.transaction_open is None and stored.transaction_ended["outcome"] == "failed"

    await asyncio.to_thread(lone_broker.up, 1, timeout=CLUSTER_UP_TIMEOUT)
    bootstrap = lone_broker.bootstrap_servers()
    assert committed_keys(bootstrap, learner.topic) == [], "the transaction cut short never counts"
    await act(learner, "begin")
    await order(learner, "after-outage")
    await act(learner, "commit")
    assert committed_keys(bootstrap, learner.topic) == ["after-outage"]
    await runner_lets_go(learner)
