from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from django import forms
from django.conf import settings
from django.forms import formset_factory

from kafkalab.kafka.billing_config import BATCH_SIZE as BILLING_BATCH_SIZE
from kafkalab.kafka.billing_config import PROCESSING_DELAY_MS as BILLING_DELAY_MS
from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from kafkalab.kafka.consumer_config import (
    AUTO_COMMIT_INTERVAL_MS,
    PROCESSING_DELAY_MS,
    RETRY_ATTEMPTS,
    RETRY_BACKOFF_MS,
    SESSION_TIMEOUT_MS,
    Assignor,
    CommitMode,
    ConsumerConfig,
    FailurePolicy,
    GroupProtocol,
    IsolationLevel,
    Reader,
)
from kafkalab.kafka.transactions import TIMEOUT_MS_DEFAULT
from kafkalab.labs.models import LabOrder
from kafkalab.labs.services.transactions import timeout_bounds, timeout_refusal

ID_MAX_LENGTH = 64


class OrderForm(forms.Form):
    order_id = forms.CharField(label="orderId", max_length=ID_MAX_LENGTH)
    customer_id = forms.CharField(label="customerId", max_length=ID_MAX_LENGTH)
    key_strategy = forms.ChoiceField(
        label="Message key", choices=LabOrder.KeyStrategy.choices, initial=LabOrder.KeyStrategy.ORDER_ID
    )
    partitioner = forms.ChoiceField(
        label="Partitioner",
        choices=LabOrder.Partitioner.choices,
        initial=LabOrder.Partitioner.MURMUR2,
        required=False,  # a post without it gets the Java client's placement, as before the choice
    )

    def clean_partitioner(self) -> str:
        return self.cleaned_data["partitioner"] or LabOrder.Partitioner.MURMUR2


class ItemForm(forms.Form):
    product_id = forms.CharField(label="productId", max_length=ID_MAX_LENGTH)
    quantity = forms.IntegerField(label="quantity", min_value=1, max_value=1000)
    price = forms.DecimalField(label="price", min_value=Decimal("0"), max_digits=9, decimal_places=2)


class BaseItemFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        if not any(form.cleaned_data for form in self.forms if not self._should_delete_form(form)):
            raise forms.ValidationError("An order needs at least one item.")


def item_formset_class():
    return formset_factory(
        ItemForm,
        formset=BaseItemFormSet,
        extra=0,
        max_num=settings.LAB_MAX_ITEMS,
        validate_max=True,
        absolute_max=settings.LAB_MAX_ITEMS * 5,
    )


class BurstForm(forms.Form):
    count = forms.IntegerField(label="Orders", min_value=1, initial=100)
    key_strategy = forms.ChoiceField(
        label="Message key", choices=LabOrder.KeyStrategy.choices, initial=LabOrder.KeyStrategy.ORDER_ID
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["count"].widget.attrs["max"] = settings.LAB_MAX_BURST

    def clean_count(self) -> int:
        count = self.cleaned_data["count"]
        if count > settings.LAB_MAX_BURST:
            raise forms.ValidationError(f"A burst is at most {settings.LAB_MAX_BURST} orders.")
        return count


class AdvanceForm(forms.Form):
    order_id = forms.CharField(max_length=ID_MAX_LENGTH)


class TransactionTimeoutForm(forms.Form):
    """OrderService's transaction.timeout.ms lever, for the next transaction begun."""

    timeout_ms = forms.IntegerField(
        label="transaction.timeout.ms",
        initial=TIMEOUT_MS_DEFAULT,
        error_messages={
            "required": f"Give transaction.timeout.ms in milliseconds, {timeout_bounds()}.",
            "invalid": f"transaction.timeout.ms is a whole number of milliseconds, {timeout_bounds()}.",
        },
    )

    def clean_timeout_ms(self) -> int:
        timeout_ms = self.cleaned_data["timeout_ms"]
        if refusal := timeout_refusal(timeout_ms):
            raise forms.ValidationError(refusal)
        return timeout_ms


class PartitionsForm(forms.Form):
    partitions = forms.IntegerField(label="Partitions", min_value=1)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["partitions"].widget.attrs["max"] = settings.LAB_MAX_PARTITIONS

    def clean_partitions(self) -> int:
        partitions = self.cleaned_data["partitions"]
        if partitions > settings.LAB_MAX_PARTITIONS:
            raise forms.ValidationError(f"A lab topic may have at most {settings.LAB_MAX_PARTITIONS} partitions.")
        return partitions


def _choices(kind: type[StrEnum], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    return [(member.value, (labels or {}).get(member.value, member.value)) for member in kind]


_DEFAULTS = ConsumerConfig()


class ConsumerConfigForm(forms.Form):
    """A NotificationService instance's consumer settings; defaults and bounds from ConsumerConfig."""

    assignment_strategy = forms.ChoiceField(
        label="partition.assignment.strategy", choices=_choices(Assignor), initial=_DEFAULTS.assignment_strategy
    )
    group_protocol = forms.ChoiceField(
        label="group.protocol",
        choices=_choices(GroupProtocol, {"consumer": "consumer (KIP-848)"}),
        initial=_DEFAULTS.group_protocol,
    )
    session_timeout_ms = forms.IntegerField(
        label="session.timeout.ms",
        min_value=SESSION_TIMEOUT_MS[0],
        max_value=SESSION_TIMEOUT_MS[1],
        initial=_DEFAULTS.session_timeout_ms,
    )
    processing_delay_ms = forms.IntegerField(
        label="processing delay per record (ms)",
        min_value=PROCESSING_DELAY_MS[0],
        max_value=PROCESSING_DELAY_MS[1],
        initial=_DEFAULTS.processing_delay_ms,
    )
    commit_mode = forms.ChoiceField(
        label="commit",
        choices=_choices(
            CommitMode,
            {
                "auto": "auto (enable.auto.commit)",
                "after": "manual, after processing",
                "before": "manual, before processing",
            },
        ),
        initial=_DEFAULTS.commit_mode,
    )
    enable_auto_commit = forms.BooleanField(
        label="enable.auto.commit", required=False, initial=_DEFAULTS.enable_auto_commit
    )
    auto_commit_interval_ms = forms.IntegerField(
        label="auto.commit.interval.ms",
        min_value=AUTO_COMMIT_INTERVAL_MS[0],
        max_value=AUTO_COMMIT_INTERVAL_MS[1],
        initial=_DEFAULTS.auto_commit_interval_ms,
    )
    enable_auto_offset_store = forms.BooleanField(
        label="enable.auto.offset.store", required=False, initial=_DEFAULTS.enable_auto_offset_store
    )
    isolation_level = forms.ChoiceField(
        label="isolation.level",
        choices=_choices(
            IsolationLevel,
            {
                "read_committed": "read_committed (librdkafka's default)",
                "read_uncommitted": "read_uncommitted (the Java client's default)",
            },
        ),
        initial=_DEFAULTS.isolation_level,
    )
    reader = forms.ChoiceField(
        label="reader",
        choices=_choices(
            Reader,
            {
                "strict": "strict: version 1 of the contract, no unknown field",
                "tolerant": "tolerant: only the fields it needs",
                "registry": "registry: the writer's schema, by its id",
            },
        ),
        initial=_DEFAULTS.reader,
        help_text="How this NotificationService reads an order. A strict reader refuses an order with a "
        "field it does not know (sku, say); a tolerant one needs only orderId, customerId and the items; "
        "a registry reader decodes with the schema the producer wrote with, and refuses plain JSON.",
    )
    failure_policy = forms.ChoiceField(
        label="when a record can't be read",
        choices=_choices(
            FailurePolicy,
            {
                "crash": "crash (and be restarted)",
                "skip": "skip it",
                "dead-letter": "dead-letter it",
                "retry": "retry, then dead-letter it",
            },
        ),
        initial=_DEFAULTS.failure_policy,
        help_text="A record the reader can't read is a poison pill. Crash: the process exits and is "
        "restarted, fails on the same record again, and its partition is blocked. Skip: no email "
        "for it (a missed email). Dead-letter: it is set aside on the dead-letter topic, to replay "
        "later. Retry: tried again a few times, waiting longer each time, then dead-lettered.",
    )
    retry_attempts = forms.IntegerField(
        label="retries",
        min_value=RETRY_ATTEMPTS[0],
        max_value=RETRY_ATTEMPTS[1],
        initial=_DEFAULTS.retry_attempts,
        help_text="With retry: how many times a poison record is read again before it is dead-lettered.",
    )
    retry_backoff_ms = forms.IntegerField(
        label="first retry after (ms)",
        min_value=RETRY_BACKOFF_MS[0],
        max_value=RETRY_BACKOFF_MS[1],
        initial=_DEFAULTS.retry_backoff_ms,
        help_text="With retry: the wait before the first retry; each later wait is twice the one before. "
        "Its partition waits meanwhile; the others go on.",
    )

    def config(self) -> ConsumerConfig:
        """The validated settings (call after is_valid())."""
        return ConsumerConfig(**self.cleaned_data)


class BillingConfigForm(forms.Form):
    """A BillingService instance's settings; defaults and bounds from BillingConfig. Every field
    may be left out: the page's one-click "Start BillingService" posts none."""

    mode = forms.ChoiceField(
        label="mode",
        choices=[
            (str(BillingMode.EXACTLY_ONCE), "exactly-once (one transaction per batch)"),
            (str(BillingMode.AT_LEAST_ONCE), "at-least-once (produce, then commit offsets)"),
        ],
        initial=str(BillingConfig().mode),
        required=False,
    )
    processing_delay_ms = forms.IntegerField(
        label="processing delay per order (ms)",
        min_value=BILLING_DELAY_MS[0],
        max_value=BILLING_DELAY_MS[1],
        initial=BillingConfig().processing_delay_ms,
        help_text="Slows each batch down, so that Kill lands in the middle of one.",
        required=False,
    )
    batch_size = forms.IntegerField(
        label="batch size (orders)",
        min_value=BILLING_BATCH_SIZE[0],
        max_value=BILLING_BATCH_SIZE[1],
        initial=BillingConfig().batch_size,
        required=False,
    )

    def config(self) -> BillingConfig:
        """What was asked; a field left out takes BillingConfig's default (the one-click start)."""
        return BillingConfig(**{name: value for name, value in self.cleaned_data.items() if value not in (None, "")})
