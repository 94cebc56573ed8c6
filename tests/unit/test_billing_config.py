"""BillingService's config and its pure rules: what an invoice says, and what it skips."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from kafkalab.kafka.billing_service import NotAnOrder, invoice_for, order_total


def test_defaults_and_round_trip() -> None:
    config = BillingConfig()
    assert config.mode == BillingMode.EXACTLY_ONCE and config.transactional
    assert BillingConfig.from_dict(config.as_dict()) == config
    assert BillingConfig.from_dict({"mode": "at-least-once", "unknown": 1}).mode == BillingMode.AT_LEAST_ONCE


@pytest.mark.parametrize(
    "field,value", [("processing_delay_ms", -1), ("processing_delay_ms", 5_001), ("batch_size", 0), ("batch_size", "3")]
)
def test_bounds_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BillingConfig(**{field: value})


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        BillingConfig(mode="twice")


def test_modes_differ_in_the_producer_only() -> None:
    eos, alo = BillingConfig(), BillingConfig(mode=BillingMode.AT_LEAST_ONCE)
    assert eos.consumer_settings()["enable.auto.commit"] is False
    assert eos.consumer_settings()["isolation.level"] == "read_committed"
    assert eos.consumer_settings() == alo.consumer_settings()
    assert eos.producer_settings(transactional_id="t")["transactional.id"] == "t"
    assert "transactional.id" not in alo.producer_settings(transactional_id="t")
    assert alo.producer_settings(transactional_id="t")["enable.idempotence"] is True


def test_an_invoice_totals_the_items() -> None:
    order = {
        "orderId": "o-1",
        "customerId": "c",
        "items": [{"quantity": 3, "price": 19.99}, {"quantity": 1, "price": 8.5}],
    }
    invoice = invoice_for(json.dumps(order).encode(), "OrderCreated", issued_at="now")
    assert invoice == {"invoiceFor": "o-1", "customerId": "c", "total": 68.47, "issuedAt": "now"}
    assert order_total([{"quantity": 3, "price": 0.1}]) == Decimal("0.30")


@pytest.mark.parametrize(
    "value,event_type",
    [
        (b"not json", None),
        (b"[" * 100_000, None),
        (b'{"orderId": "o", "items": []}', "OrderPaid"),
        (b'{"orderId": 5, "items": []}', None),
        (b'{"orderId": "o", "items": "x"}', None),
        (b'{"orderId": "o", "items": [{"quantity": true, "price": 1}]}', None),
        (b'{"orderId": "o", "items": [{"quantity": 1, "price": "NaN"}]}', None),
        (None, None),
    ],
)
def test_what_is_no_order_is_skipped(value: bytes | None, event_type: str | None) -> None:
    with pytest.raises(NotAnOrder):
        invoice_for(value, event_type, issued_at="now")
