"""NotificationService instances: added, stopped, killed and restarted through the lab runner.

The cap and the names hold under concurrent clicks: each change takes the lab's row lock (on
SQLite, the IMMEDIATE transaction's write lock) before it counts, and none waits on Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from kafkalab.kafka.consumer_config import LIVE_STATUSES, ConsumerConfig, ConsumerStatus
from kafkalab.labs.errors import LabError, LabLimitReached
from kafkalab.labs.models import Lab, NotificationConsumer
from kafkalab.runner.protocol import ConsumerKill, ConsumerStart, ConsumerStop, runner_send_sync


def consumer_add(*, lab: Lab, config: ConsumerConfig) -> NotificationConsumer:
    """A new NotificationService process in the lab's group, started by the lab runner."""
    with transaction.atomic():
        _lock_for_start(lab)
        consumer = NotificationConsumer.objects.create(lab=lab, name=_next_consumer_name(lab), config=config.as_dict())
    runner_send_sync(ConsumerStart(lab_id=lab.pk, name=consumer.name))
    return consumer


def consumer_restart(*, lab: Lab, name: str) -> None:
    with transaction.atomic():
        _lock_for_start(lab)
        consumer = _consumer(lab, name)
        if consumer.is_live:
            raise LabError(f"{name} is already running.")
        lab.consumers.filter(pk=consumer.pk).update(status=ConsumerStatus.STARTING, last_error="")
    runner_send_sync(ConsumerStart(lab_id=lab.pk, name=name))


def _lock_for_start(lab: Lab) -> None:
    cap, whose = settings.LAB_MAX_CONSUMERS, "A lab"
    classroom = lab.classroom
    if classroom is not None and classroom.max_consumers_per_lab < cap:
        cap, whose = classroom.max_consumers_per_lab, f"In {classroom.name}, a lab"
    lab_lock_for_start(
        lab=lab,
        running=lab.consumers,
        cap=cap,
        resetting="This lab is being reset. Add consumers once the reset is done.",
        full=f"{whose} runs at most {cap} consumers at once. Stop or kill one before adding another.",
    )


def _next_consumer_name(lab: Lab) -> str:
    return next_free_name("c", taken=lab.consumers.values_list("name", flat=True))


def lab_lock_for_start(*, lab: Lab, running: QuerySet, cap: int, resetting: str, full: str) -> None:
    """Inside a transaction: lock the lab's row (so counts and names hold under concurrent clicks),
    and refuse while the lab resets (saying `resetting`) or `running` has `cap` live rows (`full`)."""
    locked = Lab.objects.select_for_update().get(pk=lab.pk)
    if locked.is_resetting:
        raise LabError(resetting)
    if running.filter(status__in=LIVE_STATUSES).count() >= cap:
        raise LabLimitReached(full)


def next_free_name(prefix: str, *, taken: Iterable[str]) -> str:
    """`<prefix><n>` with the smallest n from 1 that no row has: c1, c2… or b1, b2…"""
    taken = set(taken)
    number = 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"


def _consumer(lab: Lab, name: str) -> NotificationConsumer:
    consumer = lab.consumers.filter(name=name).first()
    if consumer is None:
        raise LabError(f"This lab has no consumer called {name}.")
    return consumer


def consumer_stop(*, lab: Lab, name: str) -> None:
    """Graceful: the process closes its consumer, which leaves the group at once."""
    if not _consumer(lab, name).is_live:
        raise LabError(f"{name} is not running.")
    runner_send_sync(ConsumerStop(lab_id=lab.pk, name=name))


def consumer_kill(*, lab: Lab, name: str) -> None:
    """SIGKILL: no goodbye; the group waits for the session timeout."""
    if not _consumer(lab, name).is_live:
        raise LabError(f"{name} is not running.")
    runner_send_sync(ConsumerKill(lab_id=lab.pk, name=name))
