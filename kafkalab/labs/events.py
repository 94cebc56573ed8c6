"""The lab's domain events: OrderCreated, OrderPaid, OrderShipped, as JSON on the wire."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from kafkalab.labs import records

EVENT_TYPE_HEADER = "event-type"
CONTENT_TYPE_HEADER = "content-type"
EVENT_TYPE_CHARS = 40

# A small cast of customers, so that keying by customerId visibly groups their orders.
CUSTOMERS = [
    "abc89012-f345-6789-0123-456789abcdef",
    "5d1c2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e",
    "c0ffee00-1234-4abc-9def-0123456789ab",
    "7e57ab1e-9a8b-4c7d-8e6f-5a4b3c2d1e0f",
    "b16b00b5-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
    "0ddba11a-6b7c-4d8e-9f0a-1b2c3d4e5f60",
]
PRODUCTS = [
    ("xyz98765-a432-1098-7654-3210fedcba98", Decimal("19.99")),
    ("kbd-00042", Decimal("49.00")),
    ("mug-00007", Decimal("8.50")),
    ("usb-c-cable-2m", Decimal("12.90")),
    ("desk-lamp-led", Decimal("34.95")),
]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sample_order(rng: random.Random | None = None) -> dict:
    """A valid OrderCreated body, ready to send with one click."""
    rng = rng or random.Random()
    product_id, price = rng.choice(PRODUCTS)
    return {
        "orderId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customerId": rng.choice(CUSTOMERS),
        "items": [{"productId": product_id, "quantity": rng.randint(1, 3), "price": price}],
        "timestamp": now_iso(),
    }


def order_created(*, order_id: str, customer_id: str, items: list[dict], timestamp: str | None = None) -> dict:
    return {
        "orderId": order_id,
        "customerId": customer_id,
        "items": [
            {"productId": item["productId"], "quantity": int(item["quantity"]), "price": item["price"]}
            for item in items
        ],
        "timestamp": timestamp or now_iso(),
    }


def order_status_changed(*, order_id: str, customer_id: str) -> dict:
    return {"orderId": order_id, "customerId": customer_id, "timestamp": now_iso()}


def encode(payload: dict) -> bytes:
    # Prices travel as JSON numbers with two decimals, as in the article's example.
    return json.dumps(payload, separators=(",", ":"), default=_decimal_as_number).encode()


def _decimal_as_number(value: object) -> float:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def headers_for(event_type: str, *, content_type: str = "application/json") -> list[tuple[str, bytes]]:
    return [(EVENT_TYPE_HEADER, event_type.encode()), (CONTENT_TYPE_HEADER, content_type.encode())]


def event_type_of(headers, value: bytes | None) -> str:
    """The event-type header; else a guess from the body's shape: "OrderCreated", "unknown" for
    other JSON, or why the body is no JSON to guess from ("not JSON", "nested too deeply", …)."""
    for name, raw in headers or ():
        if name == EVENT_TYPE_HEADER and raw:
            # A header value may be a megabyte: decode no more than the label can show.
            return raw[: EVENT_TYPE_CHARS * 4].decode("utf-8", errors="replace")[:EVENT_TYPE_CHARS]
    body, reason = records.parse_json(value)
    if reason is not None:
        return reason
    if isinstance(body, dict) and "items" in body and "orderId" in body:
        return "OrderCreated"
    return "unknown"


def decode_key(key: bytes | None) -> str | None:
    """The key as text for the page, bounded: the lanes, data-key and the inspector all show it."""
    return records.display_key(key)
