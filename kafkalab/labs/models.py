from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from kafkalab.kafka.consumer_config import LIVE_STATUSES, ConsumerStatus
from kafkalab.kafka.contracts import Encoding, schema_text, v1_schema
from kafkalab.kafka.transactions import TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MAX, TIMEOUT_MS_MIN

# A reset that started longer ago than this has died with its process; the lab is usable again.
RESET_STALE_AFTER = timedelta(minutes=2)


class Lab(models.Model):
    """One learner's sandbox. Its Kafka names derive from its id, never from user input."""

    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    # Who asked for it, for the per-address cap (see kafkalab.labs.client_address).
    client_address = models.CharField(max_length=45, blank=True, db_index=True)
    # Anyone holding /share/<token>/ may watch the lab, read-only; None when not shared (or revoked).
    share_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    # Set while a reset runs, so that no consumer is added halfway through it.
    reset_started_at = models.DateTimeField(null=True, blank=True)
    # OrderService's contract: how it encodes orders, and the schema it writes with ("" is
    # version 1 in the encoding's language). The id and version are the registry's, once it
    # accepted the schema; they change only after it did.
    encoding = models.CharField(
        max_length=12, choices=[(e.value, e.label) for e in Encoding], default=Encoding.PLAIN_JSON.value
    )
    writer_schema = models.TextField(blank=True)
    writer_schema_id = models.IntegerField(null=True, blank=True)
    writer_version = models.IntegerField(null=True, blank=True)
    # OrderService's transactions. The lever: transaction.timeout.ms of the next one begun. The
    # lab runner holds the transactional producer and writes what it knows here at each change, for
    # pages rendered over HTTP and for routing orders into the open transaction: `transaction_open`
    # as the live model has it (None when none is open), `transaction_ended` how the last one ended.
    transaction_timeout_ms = models.PositiveIntegerField(default=TIMEOUT_MS_DEFAULT)
    transaction_open = models.JSONField(null=True, blank=True)
    transaction_ended = models.JSONField(null=True, blank=True)
    # The classroom the lab belongs to (a learner's, or the instructor's), or None for self-study.
    classroom = models.ForeignKey(
        "classroom.Classroom", null=True, blank=True, on_delete=models.SET_NULL, related_name="labs"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.prefix

    @property
    def expires_at(self) -> datetime:
        return self.last_seen_at + timedelta(seconds=settings.LAB_IDLE_EXPIRY_SECONDS)

    @property
    def is_resetting(self) -> bool:
        return self.reset_started_at is not None and timezone.now() - self.reset_started_at < RESET_STALE_AFTER

    @property
    def prefix(self) -> str:
        return f"lab-{self.pk}"

    @property
    def orders_topic(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def dlq_topic(self) -> str:
        """Where NotificationService sets aside the records it can't process (dead letters)."""
        return f"{self.orders_topic}.dlq"

    @property
    def invoices_topic(self) -> str:
        """Where BillingService writes one InvoiceIssued per OrderCreated."""
        return f"{self.prefix}.invoices"

    @property
    def topics(self) -> list[str]:
        return [self.orders_topic, self.dlq_topic, self.invoices_topic]

    @property
    def billing_group_id(self) -> str:
        """BillingService's own consumer group: it reads every order, beside NotificationService."""
        return f"{self.prefix}.billing"

    def billing_transactional_id(self, name: str) -> str:
        """A BillingService instance's transactional.id: a twin started with it fences the instance."""
        return f"{self.prefix}.billing-service.{name}"

    @property
    def group_id(self) -> str:
        return f"{self.prefix}.order-notifications"

    @property
    def transactional_id(self) -> str:
        """OrderService's transactional.id: one per lab, held by the lab runner alone."""
        return f"{self.prefix}.order-service"

    @property
    def transaction_timeout_range(self) -> tuple[int, int]:
        """The transaction.timeout.ms lever's bounds (ms), for the page's field."""
        return TIMEOUT_MS_MIN, TIMEOUT_MS_MAX

    @property
    def dlq_replay_id(self) -> str:
        """The transactional id of "Replay DLQ", and the group whose offsets are its cursor in the DLQ."""
        return f"{self.prefix}.dlq-replay"

    @property
    def value_subject(self) -> str:
        """The registry subject of the orders' values (topic name strategy)."""
        return f"{self.orders_topic}-value"

    @property
    def writer_schema_text(self) -> str:
        return self.writer_schema or schema_text(v1_schema(Encoding(self.encoding)))


class LabOrder(models.Model):
    """An order OrderService created in a lab: what later lifecycle events refer to."""

    class Status(models.TextChoices):
        CREATED = "OrderCreated", "Created"
        PAID = "OrderPaid", "Paid"
        SHIPPED = "OrderShipped", "Shipped"

    class KeyStrategy(models.TextChoices):
        ORDER_ID = "orderId", "orderId"
        CUSTOMER_ID = "customerId", "customerId"
        NONE = "none", "no key"

    class Partitioner(models.TextChoices):
        # librdkafka's names for them (the producer's `partitioner` setting).
        MURMUR2 = "murmur2_random", "murmur2 (the Java client's default)"
        CRC32 = "consistent_random", "CRC32 (librdkafka's default)"

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="orders")
    order_id = models.CharField(max_length=64)
    customer_id = models.CharField(max_length=64)
    key_strategy = models.CharField(max_length=16, choices=KeyStrategy.choices)
    # Its lifecycle events are written by the same partitioner, so they follow it.
    partitioner = models.CharField(max_length=20, choices=Partitioner.choices, default=Partitioner.MURMUR2)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    # False while OrderService waits for Kafka: the row reserves the orderId, so two requests
    # for one orderId can't both be written. A failed produce deletes it.
    acknowledged = models.BooleanField(default=False)
    # The open transaction (its key) this row waits on: unacknowledged, the order was created in it;
    # acknowledged, its `pending_status` event was written in it. A commit makes them count, anything
    # else undoes them (kafkalab.labs.services.transactions).
    transaction_key = models.CharField(max_length=32, blank=True, default="")
    pending_status = models.CharField(max_length=16, choices=Status.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["lab", "order_id"], name="unique_order_per_lab")]

    def __str__(self) -> str:
        return self.order_id

    @property
    def key(self) -> bytes | None:
        if self.key_strategy == self.KeyStrategy.ORDER_ID:
            return self.order_id.encode()
        if self.key_strategy == self.KeyStrategy.CUSTOMER_ID:
            return self.customer_id.encode()
        return None

    @property
    def next_status(self) -> str | None:
        return {self.Status.CREATED: self.Status.PAID, self.Status.PAID: self.Status.SHIPPED}.get(self.status)


class NotificationConsumer(models.Model):
    """One NotificationService process of a lab, as last known. The runner keeps it current;
    after a restart of the app every one of them is shown stopped, ready to start again."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="consumers")
    name = models.CharField(max_length=16)
    config = models.JSONField()  # a ConsumerConfig, as_dict()
    status = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in ConsumerStatus], default=ConsumerStatus.STARTING
    )
    pid = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["lab", "name"], name="unique_consumer_name_per_lab")]

    def __str__(self) -> str:
        return f"{self.lab.prefix}/{self.name}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class BillingInstance(models.Model):
    """One BillingService process of a lab, as last known (like NotificationConsumer). A twin
    shares its original's transactional.id (`twin_of`); `fenced` says a twin took it over."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="billing_instances")
    name = models.CharField(max_length=16)
    config = models.JSONField()  # a BillingConfig, as_dict()
    twin_of = models.CharField(max_length=16, blank=True)
    status = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in ConsumerStatus], default=ConsumerStatus.STARTING
    )
    fenced = models.BooleanField(default=False)
    pid = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["lab", "name"], name="unique_billing_name_per_lab")]

    def __str__(self) -> str:
        return f"{self.lab.prefix}/{self.name}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def transactional_id(self) -> str:
        return self.lab.billing_transactional_id(self.twin_of or self.name)


class OutboxEmail(models.Model):
    """An email NotificationService sent: which instance, for which record."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="emails")
    consumer_name = models.CharField(max_length=16)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    order_id = models.CharField(max_length=64, blank=True)
    event_type = models.CharField(max_length=40, blank=True)
    sent_at = models.DateTimeField()
    # A record the consumer skipped (failure policy "skip"): no email went out, `reason` says why.
    missed = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["lab", "partition", "offset"])]

    def __str__(self) -> str:
        return f"{self.consumer_name} → {self.order_id or '?'} (P{self.partition}@{self.offset})"


class Rebalance(models.Model):
    """One rebalance of a lab's group: what set it off, who lost and who gained what."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="rebalances")
    trigger = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # [{"consumer": "c1", "revoked": [0, 1], "assigned": [0], "lost": []}, …]
    changes = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.trigger

    @property
    def duration_ms(self) -> int | None:
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds() * 1000)
