"""readers.read_order on the records that become poison pills: why each reader refuses what it
refuses, as the failure policies see it (a Failure kind and a message a learner can read)."""

from __future__ import annotations

import io
import json
import os

import fastavro
import pytest

from kafkalab.kafka.readers import (
    V1_AVRO,
    Failure,
    Reader,
    ReadFailure,
    frame,
    read_order,
)
from kafkalab.kafka.schema_lookup import registry_lookup
from kafkalab.labs import events

AVRO_ID = 7
ORDER = events.order_created(
    order_id="o-1", customer_id="c-1", items=[{"productId": "mug", "quantity": 2, "price": 8.5}]
)


def lookup(schema_id: int) -> tuple[str, str]:
    """A registry that knows one schema: version 1 in Avro, under AVRO_ID."""
    if schema_id == AVRO_ID:
        return "AVRO", json.dumps(V1_AVRO)
    raise LookupError(schema_id)


def registry_down(schema_id: int) -> tuple[str, str]:
    raise ConnectionError("connection refused")


def plain(value: dict) -> bytes:
    return json.dumps(value).encode()


def avro(value: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(V1_AVRO), value)
    return frame(AVRO_ID, out.getvalue())


def failure_of(reader: Reader, value: bytes | None, *, seen_by=lookup, event_type: str | None = None) -> ReadFailure:
    with pytest.raises(ReadFailure) as caught:
        read_order(reader, value, seen_by, event_type=event_type)
    return caught.value


@pytest.mark.parametrize("reader", list(Reader))
def test_random_bytes_are_not_decodable_by_any_reader(reader: Reader):
    value = b"\xff\xfe" + os.urandom(64)

    failure = failure_of(reader, value)

    assert failure.kind == Failure.NOT_DECODABLE


@pytest.mark.parametrize("reader", list(Reader))
@pytest.mark.parametrize("value", [None, b""], ids=["no value", "empty value"])
def test_a_record_without_a_value_is_not_decodable(reader: Reader, value: bytes | None):
    assert failure_of(reader, value).kind == Failure.NOT_DECODABLE


@pytest.mark.parametrize("reader", list(Reader))
def test_a_magic_byte_with_an_unknown_schema_id_names_the_id(reader: Reader):
    failure = failure_of(reader, frame(424242, b"\x02\x04whatever"))

    assert failure.kind == Failure.UNKNOWN_SCHEMA
    assert "424242" in failure.message


@pytest.mark.parametrize("reader", list(Reader))
def test_a_registry_out_of_reach_is_not_the_records_fault(reader: Reader):
    failure = failure_of(reader, avro(ORDER), seen_by=registry_down)

    assert failure.kind == Failure.REGISTRY_DOWN, "retried by every policy, never skipped or dead-lettered"


def test_plain_json_is_poison_to_the_registry_reader_only():
    value = plain(ORDER)

    assert read_order(Reader.STRICT, value, lookup)["orderId"] == "o-1"
    assert read_order(Reader.TOLERANT, value, lookup)["orderId"] == "o-1"
    failure = failure_of(Reader.REGISTRY, value)
    assert failure.kind == Failure.NO_SCHEMA_ID
    assert "magic byte" in failure.message


def test_an_added_field_breaks_the_strict_reader_and_not_the_tolerant_one():
    with_sku = {**ORDER, "items": [{**ORDER["items"][0], "sku": "MUG-7"}]}

    failure = failure_of(Reader.STRICT, plain(with_sku))

    assert failure.kind == Failure.CONTRACT
    assert "sku" in failure.message
    assert read_order(Reader.TOLERANT, plain(with_sku), lookup)["items"][0]["sku"] == "MUG-7"


def test_a_renamed_field_breaks_the_tolerant_reader_too_and_says_which():
    renamed = {("customer" if k == "customerId" else k): v for k, v in ORDER.items()}

    failure = failure_of(Reader.TOLERANT, plain(renamed))

    assert failure.kind == Failure.CONTRACT
    assert "customerId" in failure.message


def test_a_value_of_the_wrong_type_fails_the_contract_not_the_decoding():
    failure = failure_of(Reader.TOLERANT, b'{"orderId": 42, "customerId": "c", "items": []}')

    assert failure.kind == Failure.CONTRACT


@pytest.mark.parametrize("reader", list(Reader))
def test_avro_through_the_registry_is_read_by_every_reader(reader: Reader):
    assert read_order(reader, avro(ORDER), lookup)["customerId"] == "c-1"


def test_avro_bytes_that_do_not_fit_the_writers_schema_are_not_decodable():
    failure = failure_of(Reader.REGISTRY, frame(AVRO_ID, b"\x02"))

    assert failure.kind == Failure.NOT_DECODABLE


@pytest.mark.parametrize("event_type", ["OrderPaid", "OrderShipped"])
@pytest.mark.parametrize("reader", [Reader.STRICT, Reader.TOLERANT])
def test_lifecycle_events_need_no_items(reader: Reader, event_type: str):
    value = plain(events.order_status_changed(order_id="o-1", customer_id="c-1"))

    assert read_order(reader, value, lookup, event_type=event_type)["orderId"] == "o-1"
    # Without its event-type header, the same record is taken for an OrderCreated, which has items.
    assert failure_of(reader, value).kind == Failure.CONTRACT


def test_a_lifecycle_event_with_a_field_it_does_not_know_is_poison_to_the_strict_reader_only():
    value = plain({**events.order_status_changed(order_id="o-1", customer_id="c-1"), "carrier": "DHL"})

    assert failure_of(Reader.STRICT, value, event_type="OrderShipped").kind == Failure.CONTRACT
    assert read_order(Reader.TOLERANT, value, lookup, event_type="OrderShipped")["carrier"] == "DHL"


def test_messages_stay_short_whatever_the_record_holds():
    huge = plain({**ORDER, "customerId": 7 * 10_000, "note": "x" * 100_000})

    failure = failure_of(Reader.STRICT, huge)

    assert len(failure.message) <= 300


def test_a_lookup_without_a_registry_says_it_cannot_ask():
    with pytest.raises(ConnectionError):
        registry_lookup(None)(1)


def test_a_lookup_on_a_registry_that_does_not_listen_is_a_connection_error():
    with pytest.raises(ConnectionError, match="did not answer"):
        registry_lookup("http://127.0.0.1:1")(1)
