"""BillingService instances: added, twinned, stopped, killed and restarted through the lab runner.

Like NotificationService's (kafkalab.labs.services.consumers, whose row lock and naming they use):
each change takes the lab's row lock before it counts, and none waits on Kafka. Billing instances
have a cap of their own.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from kafkalab.kafka.billing_config import BillingConfig
from kafkalab.kafka.consumer_config import ConsumerStatus
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import BillingInstance, Lab
from kafkalab.labs.services.consumers import lab_lock_for_start, next_free_name
from kafkalab.runner.protocol import BillingKill, BillingStart, BillingStop, runner_send_sync


def billing_add(*, lab: Lab, config: BillingConfig) -> BillingInstance:
    """A new BillingService process, with a transactional.id of its own, started by the lab runner."""
    with transaction.atomic():
        _lock_for_start(lab)
        instance = BillingInstance.objects.create(lab=lab, name=_next_name(lab), config=config.as_dict())
    runner_send_sync(BillingStart(lab_id=lab.pk, name=instance.name))
    return instance


def billing_twin(*, lab: Lab, name: str) -> BillingInstance:
    """A second instance with `name`'s transactional.id: starting it fences `name` (a zombie)."""
    with transaction.atomic():
        _lock_for_start(lab)
        original = _instance(lab, name)
        if not original.is_live:
            raise LabError(f"{name} is not running: a twin fences a running instance.")
        if not BillingConfig.from_dict(original.config).transactional:
            raise LabError(f"{name} runs at-least-once, without a transactional.id: there is nothing to fence.")
        twin = BillingInstance.objects.create(
            lab=lab, name=_next_name(lab), config=original.config, twin_of=original.twin_of or original.name
        )
    runner_send_sync(BillingStart(lab_id=lab.pk, name=twin.name))
    return twin


def billing_restart(*, lab: Lab, name: str) -> None:
    with transaction.atomic():
        _lock_for_start(lab)
        instance = _instance(lab, name)
        if instance.is_live:
            raise LabError(f"{name} is already running.")
        lab.billing_instances.filter(pk=instance.pk).update(status=ConsumerStatus.STARTING, last_error="", fenced=False)
    runner_send_sync(BillingStart(lab_id=lab.pk, name=name))


def billing_stop(*, lab: Lab, name: str) -> None:
    """Graceful: the process finishes what it holds of its batch and leaves the group."""
    if not _instance(lab, name).is_live:
        raise LabError(f"{name} is not running.")
    runner_send_sync(BillingStop(lab_id=lab.pk, name=name))


def billing_kill(*, lab: Lab, name: str) -> None:
    """SIGKILL, mid-batch if it is in one: what it wrote uncommitted is the lesson."""
    if not _instance(lab, name).is_live:
        raise LabError(f"{name} is not running.")
    runner_send_sync(BillingKill(lab_id=lab.pk, name=name))


def _lock_for_start(lab: Lab) -> None:
    cap = settings.LAB_MAX_BILLING_INSTANCES
    lab_lock_for_start(
        lab=lab,
        running=lab.billing_instances,
        cap=cap,
        resetting="This lab is being reset. Start BillingService once the reset is done.",
        full=f"A lab runs at most {cap} BillingService instances at once. Stop or kill one before starting another.",
    )


def _next_name(lab: Lab) -> str:
    return next_free_name("b", taken=lab.billing_instances.values_list("name", flat=True))


def _instance(lab: Lab, name: str) -> BillingInstance:
    instance = lab.billing_instances.filter(name=name).first()
    if instance is None:
        raise LabError(f"This lab has no BillingService called {name}.")
    return instance
