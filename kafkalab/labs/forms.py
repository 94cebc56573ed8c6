from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.forms import formset_factory

from kafkalab.labs.models import LabOrder

ID_MAX_LENGTH = 64


class OrderForm(forms.Form):
    order_id = forms.CharField(label="orderId", max_length=ID_MAX_LENGTH)
    customer_id = forms.CharField(label="customerId", max_length=ID_MAX_LENGTH)
    key_strategy = forms.ChoiceField(
        label="Message key", choices=LabOrder.KeyStrategy.choices, initial=LabOrder.KeyStrategy.ORDER_ID
    )


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


class ConsumerConfigForm(forms.Form):
    """A NotificationService instance's consumer settings, defaulting to the lab's defaults."""

    assignment_strategy = forms.ChoiceField(
        label="partition.assignment.strategy",
        choices=[("range", "range"), ("roundrobin", "roundrobin"), ("cooperative-sticky", "cooperative-sticky")],
        initial="range",
    )
    group_protocol = forms.ChoiceField(
        label="group.protocol",
        choices=[("classic", "classic"), ("consumer", "consumer (KIP-848)")],
        initial="classic",
    )
    session_timeout_ms = forms.IntegerField(
        label="session.timeout.ms", min_value=1000, max_value=60_000, initial=10_000
    )
    processing_delay_ms = forms.IntegerField(
        label="processing delay per record (ms)", min_value=0, max_value=60_000, initial=0
    )
    commit_mode = forms.ChoiceField(
        label="commit",
        choices=[
            ("auto", "auto (enable.auto.commit)"),
            ("after", "manual, after processing"),
            ("before", "manual, before processing"),
        ],
        initial="auto",
    )
    enable_auto_commit = forms.BooleanField(label="enable.auto.commit", required=False, initial=True)
    auto_commit_interval_ms = forms.IntegerField(
        label="auto.commit.interval.ms", min_value=100, max_value=600_000, initial=5000
    )
    enable_auto_offset_store = forms.BooleanField(label="enable.auto.offset.store", required=False, initial=True)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("commit_mode") in {"after", "before"}:
            # Manual commits only make sense with auto-commit off; say so rather than guess.
            data["enable_auto_commit"] = False
        return data
