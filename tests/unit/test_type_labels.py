"""The word an event box shows for its record's type: short enough for the box, never blank."""

from __future__ import annotations

import pytest

from kafkalab.labs.templatetags.lab_format import type_class, type_label


@pytest.mark.parametrize(
    ("event_type", "label", "css"),
    [
        ("OrderCreated", "Created", "created"),
        ("OrderShipped", "Shipped", "shipped"),
        ("InvoiceIssued", "Invoice", "other"),
        ("SomethingAForeignClientWrote", "SomethingAFo", "other"),
        (None, "unknown", "other"),
    ],
)
def test_each_type_gets_a_short_label_and_a_colour(event_type, label, css):
    record = {"event_type": event_type}
    assert (type_label(record), type_class(record)) == (label, css)
