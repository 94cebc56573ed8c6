"""The invoice count: one owner for "duplicates" of BillingService's invoices."""

from __future__ import annotations

from kafkalab.labs.facts import InvoiceCount


def test_a_second_invoice_for_an_order_is_a_duplicate() -> None:
    count = InvoiceCount()
    for order_id in ["a", "b", "a", "c", "a"]:
        count.add(order_id)
    assert count.as_data() == {"invoices": 5, "duplicates": 2, "orders_invoiced": 3}


def test_an_invoice_without_an_order_id_counts_as_an_invoice_only() -> None:
    count = InvoiceCount()
    count.add(None)
    count.add(None)
    assert count.as_data() == {"invoices": 2, "duplicates": 0, "orders_invoiced": 0}


def test_memory_is_bounded_to_the_newest_order_ids() -> None:
    count = InvoiceCount(remembered=2)
    for order_id in ["a", "b", "c"]:  # "a" is forgotten when "c" comes
        count.add(order_id)
    count.add("c")
    count.add("a")  # too old to be recognised: counted as a new order
    assert count.as_data() == {"invoices": 5, "duplicates": 1, "orders_invoiced": 4}
    assert len(count._per_order) == 2
