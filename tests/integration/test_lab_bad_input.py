"""Bad input to the order form: a field error in the re-rendered form, a 422, and nothing in Kafka."""

from __future__ import annotations

import pytest
from django.conf import settings

from kafkalab.labs.models import LabOrder
from tests.factories import item_rows, order_form_data
from tests.integration.lab_support import Learner, log_ends, text

pytestmark = pytest.mark.django_db(transaction=True)

TOO_LONG = "x" * 65

BAD_ORDERS = {
    "quantity 0": (order_form_data(items=item_rows(quantity="0")), "greater than or equal to 1"),
    "quantity -1": (order_form_data(items=item_rows(quantity="-1")), "greater than or equal to 1"),
    "quantity not a number": (order_form_data(items=item_rows(quantity="two")), "Enter a whole number."),
    "negative price": (order_form_data(items=item_rows(price="-0.01")), "greater than or equal to 0"),
    "price not a number": (order_form_data(items=item_rows(price="cheap")), "Enter a number."),
    "too many items": (
        order_form_data(items=item_rows(settings.LAB_MAX_ITEMS + 1)),
        f"Please submit at most {settings.LAB_MAX_ITEMS} forms.",
    ),
    "no items": (order_form_data(items=[]), "An order needs at least one item."),
    "orderId of 65 characters": (order_form_data(order_id=TOO_LONG), "at most 64 characters (it has 65)"),
    "customerId of 65 characters": (
        order_form_data(customer_id=TOO_LONG),
        "at most 64 characters (it has 65)",
    ),
    "productId of 65 characters": (
        order_form_data(items=item_rows(product_id=TOO_LONG)),
        "at most 64 characters (it has 65)",
    ),
    "missing orderId": (order_form_data(order_id=" "), "This field is required."),
    "unknown key strategy": (
        {**order_form_data(), "key_strategy": "productId"},
        "Select a valid choice. productId is not one of the available choices.",
    ),
}


def test_bad_orders_get_field_errors_and_nothing_is_written(kafka_cluster, learner: Learner, subtests):
    bootstrap = kafka_cluster.bootstrap_servers()
    ends = log_ends(bootstrap, learner.topic)

    for case, (data, error) in BAD_ORDERS.items():
        with subtests.test(case):
            response = learner.post("orders/", data)
            assert response.status_code == 422, text(response)
            assert error in text(response)
            assert 'id="order-panel"' in text(response), "the order form comes back, with the error in it"
            if 0 < len(data["order_id"].strip()) <= 64:
                assert f'value="{data["order_id"]}"' in text(response), "what was typed is kept"

    assert log_ends(bootstrap, learner.topic) == ends
    assert not LabOrder.objects.filter(lab_id=learner.lab_id).exists()


def test_an_oversize_event_is_refused_before_it_reaches_kafka(kafka_cluster, learner: Learner, settings):
    bootstrap = kafka_cluster.bootstrap_servers()
    ends = log_ends(bootstrap, learner.topic)
    settings.LAB_MAX_PAYLOAD_BYTES = 200

    response = learner.post("orders/", order_form_data(order_id="oversize-0001", items=item_rows(2)))

    assert response.status_code == 422, text(response)
    assert "a lab accepts at most 0.2 KiB per event. Nothing was sent." in text(response)
    assert 'value="oversize-0001"' in text(response), "the form keeps what was typed"
    assert log_ends(bootstrap, learner.topic) == ends
    assert not LabOrder.objects.filter(lab_id=learner.lab_id).exists()


def test_a_duplicate_order_id_is_refused(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    assert learner.post("orders/", order_form_data(order_id="twice-0001")).status_code == 200
    ends = log_ends(bootstrap, learner.topic)

    again = learner.post("orders/", order_form_data(order_id="twice-0001"))

    assert again.status_code == 422
    assert "Order twice-0001 already exists in this lab; pick another orderId." in text(again)
    assert log_ends(bootstrap, learner.topic) == ends
    assert LabOrder.objects.filter(lab_id=learner.lab_id).count() == 1


def test_a_bad_burst_count_is_a_field_error(kafka_cluster, learner: Learner, subtests):
    bootstrap = kafka_cluster.bootstrap_servers()
    ends = log_ends(bootstrap, learner.topic)
    for count, key_strategy, error in (
        ("0", "orderId", "greater than or equal to 1"),
        ("-5", "orderId", "greater than or equal to 1"),
        ("many", "orderId", "Enter a whole number."),
        (str(settings.LAB_MAX_BURST + 1), "orderId", f"A burst is at most {settings.LAB_MAX_BURST} orders."),
        ("10", "productId", "Select a valid choice. productId is not one of the available choices."),
    ):
        with subtests.test(count=count, key_strategy=key_strategy):
            response = learner.post("orders/burst/", {"count": count, "key_strategy": key_strategy})
            assert response.status_code == 422
            assert error in text(response)
    assert log_ends(bootstrap, learner.topic) == ends
