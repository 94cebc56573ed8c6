"""Building what tests send: labs opened as a learner opens them, and order forms as the page posts them."""

from __future__ import annotations

import uuid

from django.test import Client

from tests.harness.http_browser import LABS_PATH, lab_id_in

HTMX = {"HX-Request": "true"}


def lab_open(client: Client) -> int:
    """The learner's first visit: "Start my lab" on the start page at / posts to /labs/, which
    creates a lab bound to the client's session and redirects to it. (While / still creates the
    lab and redirects itself, that redirect is taken instead.) The test Client skips CSRF checks."""
    response = client.get("/")
    if response.status_code != 302 or lab_id_in(response["Location"]) is None:
        assert response.status_code == 200, response.content.decode()[:500]
        response = client.post(LABS_PATH)
    assert response.status_code == 302, response.content.decode()[:500]
    lab_id = lab_id_in(response["Location"])
    assert lab_id is not None, response["Location"]
    return lab_id


def new_order_id() -> str:
    return str(uuid.uuid4())


def item_rows(count: int = 1, **overrides: str) -> list[dict[str, str]]:
    row = {"product_id": "kbd-00042", "quantity": "2", "price": "49.00", **overrides}
    return [dict(row) for _ in range(count)]


def order_form_data(
    *,
    order_id: str | None = None,
    customer_id: str = "c0ffee00-1234-4abc-9def-0123456789ab",
    key_strategy: str = "orderId",
    partitioner: str = "murmur2_random",
    items: list[dict[str, str]] | None = None,
    total_forms: int | None = None,
) -> dict[str, str]:
    """The order form's fields, as the pre-filled form posts them (one valid item by default)."""
    rows = item_rows() if items is None else items
    data = {
        "order_id": order_id or new_order_id(),
        "customer_id": customer_id,
        "key_strategy": key_strategy,
        "partitioner": partitioner,
        "items-TOTAL_FORMS": str(len(rows) if total_forms is None else total_forms),
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for name, value in row.items():
            data[f"items-{index}-{name}"] = value
    return data
