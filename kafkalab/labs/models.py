from __future__ import annotations

from django.db import models


class Lab(models.Model):
    """One learner's sandbox. Its Kafka names derive from its id, never from user input."""

    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.prefix

    @property
    def prefix(self) -> str:
        return f"lab-{self.pk}"

    @property
    def orders_topic(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def topics(self) -> list[str]:
        return [self.orders_topic]


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

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="orders")
    order_id = models.CharField(max_length=64)
    customer_id = models.CharField(max_length=64)
    key_strategy = models.CharField(max_length=16, choices=KeyStrategy.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
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
