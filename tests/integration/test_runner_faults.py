"""The lab runner survives its own failures: a command that fails leaves no process it can't stop
and never a second observer for a lab. In-process: the embedded runner on the test's event loop,
real Kafka, real NotificationService processes."""

from __future__ import annotations

import asyncio

import psutil
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from kafkalab.labs.models import NotificationConsumer
from kafkalab.runner import supervisor as supervisor_module
from kafkalab.runner.consumer import runner_for_loop
from kafkalab.runner.protocol import RUNNER_CHANNEL, ConsumerStart, LabReap, LabStateAsk, runner_ask
from tests.factories import order_form_data
from tests.integration.lab_support import (
    SOCKET_TIMEOUT,
    Learner,
    lab_socket_open,
    observer_threads,
    receive_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

SERVICE_MODULE = "kafkalab.kafka.notification_service"


def our_consumer_processes() -> list[psutil.Process]:
    """NotificationService processes started by this test process."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if SERVICE_MODULE in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE
    ]


async def wait_for(condition, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + SOCKET_TIMEOUT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what} did not happen"
        await asyncio.sleep(0.1)


async def reap(lab_id: int) -> None:
    answer = await runner_ask(lambda reply: LabReap(lab_id=lab_id, reply_channel=reply))
    assert answer.error is None


async def test_a_failing_command_keeps_the_runner_its_observer_and_its_answers(kafka_cluster, learner: Learner):
    layer = get_channel_layer()
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")
        runner = await runner_for_loop(layer)
        assert observer_threads() == [f"observer-lab-{learner.lab_id}"]

        # Malformed commands: each handler fails; the runner logs it and goes on.
        await layer.send(RUNNER_CHANNEL, {"type": "consumer.start", "lab_id": learner.lab_id})
        await layer.send(RUNNER_CHANNEL, {"type": "lab.watch", "lab_id": learner.lab_id})
        answer = await runner_ask(lambda reply: LabStateAsk(lab_id=learner.lab_id, reply_channel=reply))

        assert answer.error is None and answer.data["lab"]["id"] == learner.lab_id
        assert await runner_for_loop(layer) is runner, "the same runner holds the lab"
        assert observer_threads() == [f"observer-lab-{learner.lab_id}"], "still one observer"
        order_id = "after-the-failures"
        created = await sync_to_async(learner.post)("orders/", order_form_data(order_id=order_id))
        assert created.status_code == 200
        await receive_until(socket, lambda fragment: f'data-key="{order_id}"' in fragment, "the next order's box")


async def test_a_start_that_fails_after_the_process_began_still_lets_it_be_reaped(
    kafka_cluster, learner: Learner, monkeypatch
):
    await NotificationConsumer.objects.acreate(lab_id=learner.lab_id, name="c1", config={})
    real_save = supervisor_module._save_consumer
    failures = []

    async def save_fails_once(*args, **kwargs):
        if not failures:
            failures.append(args)
            raise RuntimeError("the database went away")
        return await real_save(*args, **kwargs)

    monkeypatch.setattr(supervisor_module, "_save_consumer", save_fails_once)
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as socket:
        await receive_until(socket, lambda fragment: 'data-lane="3"' in fragment, "the topic's four lanes")
        await get_channel_layer().send(RUNNER_CHANNEL, ConsumerStart(lab_id=learner.lab_id, name="c1").as_message())
        await wait_for(lambda: failures and our_consumer_processes(), "the consumer process starting")

        await reap(learner.lab_id)

        await wait_for(lambda: not our_consumer_processes(), "the consumer process ending")
