"""A lab's life: created by a POST, shared read-only, reset, and deleted when it expires.

No database lock is held across a Kafka call: rows are written in short transactions before or
after the Kafka work, and undone when Kafka refuses.
"""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from kafkalab.kafka import topics as kafka_topics
from kafkalab.kafka.admin import shared_admin
from kafkalab.kafka.config import client_config
from kafkalab.kafka.consumer_config import LIVE_STATUSES
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.group_watch import group_delete_isolated
from kafkalab.kafka.producer import producers_refresh
from kafkalab.labs.errors import LabError, LabLimitReached
from kafkalab.labs.models import Lab
from kafkalab.labs.services.contracts import contract_forget
from kafkalab.labs.services.topics import dead_letter_topic_ensure, invoices_topic_ensure
from kafkalab.runner.protocol import (
    LabClosed,
    LabReap,
    LabReset,
    RunnerUnavailable,
    lab_publish,
    runner_ask_sync,
    runner_send_sync,
)

logger = logging.getLogger(__name__)

INITIAL_PARTITIONS = 4
# A reset waits this long for the runner to stop the lab's consumers (each has 10 s to leave).
REAP_TIMEOUT_SECONDS = 30


def lab_create(*, client_address: str, classroom=None) -> Lab:
    """A new lab with its topics. Refused at the caps; nothing is kept if Kafka can't make the topics.

    A classroom's labs skip the per-address cap: thirty learners may share one school router, and
    the classroom's own learner limit bounds them (kafkalab.classroom.services)."""
    with transaction.atomic():
        _lock_labs_table()
        if Lab.objects.count() >= settings.LAB_MAX_LABS:
            raise LabLimitReached(
                f"This kafkalab already runs {settings.LAB_MAX_LABS} labs, its limit. "
                "Try again when someone's idle lab has expired, or ask whoever runs it to raise LAB_MAX_LABS."
            )
        per_address = Lab.objects.filter(client_address=client_address, classroom__isnull=True).count()
        if classroom is None and per_address >= settings.LAB_MAX_LABS_PER_ADDRESS:
            raise LabLimitReached(
                f"Your address already has {settings.LAB_MAX_LABS_PER_ADDRESS} labs, the limit per address. "
                "Use one of them, or wait until an idle one expires."
            )
        lab = Lab.objects.create(client_address=client_address, classroom=classroom)
    try:
        # A new lab starts empty, even if topics of that name survive from an older database.
        _topics_delete(lab=lab)
        lab_topics_ensure(lab=lab)
    except LabError:
        lab.delete()
        raise
    return lab


def _lock_labs_table() -> None:
    """Make the caps hold under concurrent requests. SQLite's IMMEDIATE transactions already
    run one writer at a time; Postgres needs the table locked against concurrent inserts."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Lab._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")


def _topics_delete(*, lab: Lab) -> None:
    try:
        kafka_topics.topics_delete(shared_admin(client_config()), lab.topics)
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not delete this lab's old topics: {exc}") from exc


def lab_topics_ensure(*, lab: Lab, fresh: bool = False) -> None:
    """The lab's topics, made where missing. `fresh`: they were just deleted (a reset), so make
    them without asking first: a broker whose metadata still lags the deletion would say they exist."""
    admin = shared_admin(client_config())
    try:
        if fresh or kafka_topics.partition_count(admin, lab.orders_topic) is None:
            replication = min(3, kafka_topics.broker_count(admin))
            kafka_topics.topic_create(
                admin,
                lab.orders_topic,
                partitions=INITIAL_PARTITIONS,
                replication=replication,
                # With 3 replicas, acks=all still succeeds with one broker down.
                config={"min.insync.replicas": str(min(2, replication))},
            )
            # The producer may still hold a deleted namesake's partition count (6 before a reset, say).
            producers_refresh(lab.orders_topic, expected=INITIAL_PARTITIONS, config=client_config())
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Kafka could not create this lab's topics: {exc}") from exc
    dead_letter_topic_ensure(lab=lab, fresh=fresh)
    invoices_topic_ensure(lab=lab, fresh=fresh)


def lab_reset(*, lab: Lab) -> str | None:
    """Stop the lab's consumers, delete and recreate its topics and group, forget its history and
    its registry subject. Returns what could not be done without failing the reset (the registry
    being down), or None."""
    with transaction.atomic():
        locked = Lab.objects.select_for_update().get(pk=lab.pk)
        if locked.is_resetting:
            raise LabError("This lab is being reset already. Wait a moment.")
        locked.reset_started_at = timezone.now()
        locked.save(update_fields=["reset_started_at"])
        # Every process the runner may hold has a live row (it is made before the process).
        had_processes = (
            lab.consumers.filter(status__in=LIVE_STATUSES).exists()
            or lab.billing_instances.filter(status__in=LIVE_STATUSES).exists()
        )
        # The runner writes its open transaction here; the reap aborts it and closes its producer.
        had_transaction = locked.transaction_open is not None
        # Gone before the runner reaps, so a queued "Add consumer" finds nothing to start.
        lab.consumers.all().delete()
        lab.billing_instances.all().delete()
    try:
        if had_processes or had_transaction:
            _consumers_reap(lab=lab)
        _topics_delete(lab=lab)
        _group_delete(lab=lab)
        registry_note = contract_forget(lab=lab)
        lab.orders.all().delete()
        lab.emails.all().delete()
        lab.rebalances.all().delete()
        Lab.objects.filter(pk=lab.pk).update(transaction_open=None, transaction_ended=None)
        lab_topics_ensure(lab=lab, fresh=True)
        runner_send_sync(LabReset(lab_id=lab.pk))
    finally:
        Lab.objects.filter(pk=lab.pk).update(reset_started_at=None)
    return registry_note


def _consumers_reap(*, lab: Lab) -> None:
    """Ask the runner to stop every consumer process of the lab and abort its open transaction
    (closing OrderService's transactional producer), and wait until it has."""
    try:
        answer = runner_ask_sync(
            lambda reply: LabReap(lab_id=lab.pk, reply_channel=reply), timeout=REAP_TIMEOUT_SECONDS
        )
    except RunnerUnavailable as exc:
        raise LabError(f"The lab's consumers did not stop in time, so nothing was reset. {exc}") from exc
    if answer.error:
        raise LabError(answer.error)


def _group_delete(*, lab: Lab) -> None:
    """The consumers' group, the one that holds "Replay DLQ"'s cursor and BillingService's: all at
    once, since each is deleted by a process of its own."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(_one_group_delete, [lab.group_id, lab.dlq_replay_id, lab.billing_group_id]))


def _one_group_delete(group_id: str) -> None:
    try:
        group_delete_isolated(client=client_config(), group_id=group_id)
    except KafkaRefused:
        # A killed consumer stays a member until its session times out, so the group can't be
        # deleted yet. Nothing is lost: Kafka drops a deleted topic's committed offsets itself.
        pass
    except KafkaUnavailable as exc:
        raise LabError(f"Kafka did not answer: {exc}") from exc


def lab_delete(*, lab_id: int) -> None:
    """Delete an expired lab: its topics, its group and its rows. The runner has already stopped
    its processes. When Kafka is away this raises and keeps the row, for the next round to retry."""
    lab = Lab.objects.filter(pk=lab_id).first()
    if lab is None:
        return
    _topics_delete(lab=lab)
    _group_delete(lab=lab)
    registry_note = contract_forget(lab=lab)
    if registry_note:  # the lab goes anyway: a leftover subject holds only schemas, and the log names it
        logger.warning("expired %s: %s", lab.prefix, registry_note)
    lab.delete()


def lab_share(*, lab: Lab) -> str:
    """A read-only share token for the lab (the same one until it is revoked)."""
    if lab.share_token:
        return lab.share_token
    token = secrets.token_urlsafe(24)
    Lab.objects.filter(pk=lab.pk, share_token__isnull=True).update(share_token=token)
    lab.refresh_from_db(fields=["share_token"])
    return lab.share_token


def lab_unshare(*, lab: Lab) -> None:
    """Revoke the share link: observers holding it are disconnected and can't come back."""
    Lab.objects.filter(pk=lab.pk).update(share_token=None)
    lab.share_token = None
    closed = LabClosed(reason="The owner of this lab stopped sharing it.", observers_only=True)
    async_to_sync(lab_publish)(get_channel_layer(), lab.pk, closed)
