"""OrderService's contract, offline: payloads that follow the schema, one-click changes in Avro and
JSON Schema, and what each change does to each reader (computed, as the page shows it)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import fastavro
import pytest

from kafkalab.kafka import contracts, readers
from kafkalab.kafka.contracts import ContractError, Encoding
from kafkalab.labs import events

FACTS = {
    "orderId": "a1b2c3d4-0000-4000-8000-000000000001",
    "customerId": "c0ffee00-1234-4abc-9def-0123456789ab",
    "items": [{"productId": "kbd-00042", "quantity": 2, "price": Decimal("49.00")}],
    "timestamp": "2026-11-27T10:00:00.000Z",
}
REGISTRY_ENCODINGS = [Encoding.AVRO, Encoding.JSON_SCHEMA]


def changed(encoding: Encoding, name: str) -> dict:
    return contracts.change_apply(encoding, contracts.v1_schema(encoding), name)


def shaped(encoding: Encoding, schema: dict) -> dict:
    return contracts.payload_shape(encoding, schema, FACTS)


def verdicts(encoding: Encoding, schema: dict) -> dict[str, bool]:
    value = contracts.encode_offline(encoding, schema, shaped(encoding, schema))
    found = contracts.reader_verdicts(value, contracts.offline_lookup(encoding, schema))
    return {verdict.reader: verdict.reads for verdict in found}


# --- Payloads that follow the schema ------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(Encoding))
def test_version_1_writes_the_articles_order(encoding: Encoding) -> None:
    payload = shaped(encoding, contracts.v1_schema(encoding))
    assert payload == {**FACTS, "items": [{"productId": "kbd-00042", "quantity": 2, "price": 49.0}]}


def test_plain_json_version_1_is_byte_for_byte_what_orderservice_always_wrote() -> None:
    payload = shaped(Encoding.PLAIN_JSON, contracts.v1_schema(Encoding.PLAIN_JSON))
    assert contracts.json_bytes(payload) == events.encode(FACTS)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_a_renamed_field_is_filled_by_its_normalised_name(encoding: Encoding) -> None:
    payload = shaped(encoding, changed(encoding, "rename-customer-id"))
    assert payload["customer_id"] == FACTS["customerId"]
    assert "customerId" not in payload


@pytest.mark.parametrize("encoding", list(Encoding))
def test_items_renamed_line_items_still_carry_the_items(encoding: Encoding) -> None:
    payload = shaped(encoding, changed(encoding, "rename-items"))
    assert payload["lineItems"] == [{"productId": "kbd-00042", "quantity": 2, "price": 49.0}]
    assert "items" not in payload


def test_an_avro_alias_names_the_fact_a_field_stands_for() -> None:
    schema = contracts.v1_schema(Encoding.AVRO)
    schema["fields"][1] = {"name": "buyer", "type": "string", "aliases": ["customerId"]}
    assert shaped(Encoding.AVRO, schema)["buyer"] == FACTS["customerId"]


@pytest.mark.parametrize("encoding", list(Encoding))
def test_price_as_a_string_keeps_its_two_decimals(encoding: Encoding) -> None:
    assert shaped(encoding, changed(encoding, "price-as-string"))["items"][0]["price"] == "49.00"


@pytest.mark.parametrize("encoding", list(Encoding))
def test_new_fields_get_their_default_or_a_value_of_their_type(encoding: Encoding) -> None:
    assert shaped(encoding, changed(encoding, "add-currency"))["currency"] == "EUR"
    assert shaped(encoding, changed(encoding, "add-sku-default"))["items"][0]["sku"] == ""
    assert shaped(encoding, changed(encoding, "add-sku"))["items"][0]["sku"] == "sku-001"


def test_whatever_avro_schema_the_learner_writes_the_order_follows_it() -> None:
    schema = {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "order_id", "type": "string"},
            {"name": "total", "type": ["null", "double"], "default": None},
            {"name": "priority", "type": {"type": "enum", "name": "Priority", "symbols": ["LOW", "HIGH"]}},
            {"name": "orderTimestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "quantity", "type": "long"},
        ],
    }
    payload = shaped(Encoding.AVRO, schema)
    assert payload["order_id"] == FACTS["orderId"]
    assert payload["total"] is None and payload["priority"] == "LOW" and payload["tags"] == []
    assert payload["quantity"] == 1  # no order-level quantity: a value of its type
    assert payload["orderTimestamp"].year == 2026  # the timestamp fact, as a datetime for the logical type
    value = contracts.encode_offline(Encoding.AVRO, schema, payload)
    assert readers.schema_id_of(value) == contracts.PREVIEW_SCHEMA_ID


def test_avro_payloads_write_with_fastavro_and_read_back() -> None:
    schema = changed(Encoding.AVRO, "add-sku")
    value = contracts.encode_offline(Encoding.AVRO, schema, shaped(Encoding.AVRO, schema), schema_id=7)
    assert value[0] == 0 and readers.schema_id_of(value) == 7
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(schema), None)
    assert decoded["items"][0]["sku"] == "sku-001"


# --- One-click changes ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("name", list(contracts.CHANGES))
def test_every_change_gives_a_schema_orderservice_can_write(encoding: Encoding, name: str) -> None:
    schema = changed(encoding, name)
    contracts.schema_load(encoding, contracts.schema_text(schema))  # valid in its language
    assert contracts.encode_offline(encoding, schema, shaped(encoding, schema))


def test_avro_sku_has_no_default_and_the_second_variant_has_one() -> None:
    item = changed(Encoding.AVRO, "add-sku")["fields"][2]["type"]["items"]
    assert item["fields"][-1] == {"name": "sku", "type": "string"}
    item = changed(Encoding.AVRO, "add-sku-default")["fields"][2]["type"]["items"]
    assert item["fields"][-1] == {"name": "sku", "type": "string", "default": ""}


def test_json_schema_sku_is_required_and_its_variant_is_not() -> None:
    item = changed(Encoding.JSON_SCHEMA, "add-sku")["properties"]["items"]["items"]
    assert "sku" in item["required"]
    item = changed(Encoding.JSON_SCHEMA, "add-sku-default")["properties"]["items"]["items"]
    assert "sku" not in item["required"] and item["properties"]["sku"]["default"] == ""


def test_a_change_that_does_not_apply_says_why() -> None:
    without = changed(Encoding.AVRO, "remove-customer-id")
    with pytest.raises(ContractError, match="no field 'customerId'"):
        contracts.change_apply(Encoding.AVRO, without, "remove-customer-id")
    with pytest.raises(ContractError, match="already has 'currency'"):
        contracts.change_apply(Encoding.JSON_SCHEMA, changed(Encoding.JSON_SCHEMA, "add-currency"), "add-currency")
    with pytest.raises(ContractError, match="no change called"):
        contracts.change_apply(Encoding.AVRO, without, "drop-table")


# --- What a change does to each reader (computed) ------------------------------------------------

# (strict, tolerant, registry) for Avro and JSON Schema alike.
EXPECTED = {
    "add-sku": (False, True, True),
    "add-sku-default": (False, True, True),
    "add-currency": (False, True, True),
    "rename-customer-id": (False, False, False),
    "remove-customer-id": (False, False, False),
    "price-as-string": (False, False, False),
    "rename-items": (False, False, False),
}


@pytest.mark.parametrize("encoding", REGISTRY_ENCODINGS)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_change_against_each_reader(encoding: Encoding, name: str) -> None:
    strict, tolerant, registry = EXPECTED[name]
    assert verdicts(encoding, changed(encoding, name)) == {"strict": strict, "tolerant": tolerant, "registry": registry}


@pytest.mark.parametrize("encoding", REGISTRY_ENCODINGS)
def test_version_1_is_read_by_every_reader(encoding: Encoding) -> None:
    assert verdicts(encoding, contracts.v1_schema(encoding)) == {"strict": True, "tolerant": True, "registry": True}


def test_plain_json_meets_the_registry_reader_without_a_schema_id() -> None:
    schema = changed(Encoding.PLAIN_JSON, "add-sku")
    value = contracts.encode_offline(Encoding.PLAIN_JSON, schema, shaped(Encoding.PLAIN_JSON, schema))
    found = {
        v.reader: v for v in contracts.reader_verdicts(value, contracts.offline_lookup(Encoding.PLAIN_JSON, schema))
    }
    assert (found["strict"].reads, found["tolerant"].reads, found["registry"].reads) == (False, True, False)
    assert "'sku' was unexpected" in found["strict"].message
    assert "magic byte" in found["registry"].message


def test_the_readers_messages_say_what_breaks_them() -> None:
    schema = changed(Encoding.AVRO, "rename-customer-id")
    value = contracts.encode_offline(Encoding.AVRO, schema, shaped(Encoding.AVRO, schema))
    found = {
        v.reader: v.message for v in contracts.reader_verdicts(value, contracts.offline_lookup(Encoding.AVRO, schema))
    }
    assert "'customerId' is a required property" in found["tolerant"]
    assert "No default value for field customerId" in found["registry"]


# --- Bad schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "text", "message"),
    [
        (Encoding.AVRO, "{not json", "not JSON"),
        (Encoding.AVRO, "", "empty"),
        (Encoding.AVRO, '"string"', "an order is a record"),
        (
            Encoding.AVRO,
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}',
            "Not a valid Avro",
        ),
        (Encoding.AVRO, '{"type": "record", "fields": []}', "Not a valid Avro"),
        (Encoding.JSON_SCHEMA, "[1, 2]", "an order is an object"),
        (Encoding.JSON_SCHEMA, '{"type": "object", "properties": {"a": {"type": "nope"}}}', "Not a valid JSON Schema"),
        (Encoding.PLAIN_JSON, '{"type": "object", "required": "orderId"}', "Not a valid JSON Schema"),
    ],
)
def test_an_invalid_schema_is_refused_with_a_reason(encoding: Encoding, text: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        contracts.schema_load(encoding, text)


def test_a_schema_larger_than_64_kib_is_refused() -> None:
    schema = contracts.v1_schema(Encoding.AVRO)
    schema["doc"] = "x" * contracts.MAX_SCHEMA_BYTES
    with pytest.raises(ContractError, match="at most 64 KiB"):
        contracts.schema_load(Encoding.AVRO, json.dumps(schema))


def test_a_schema_the_order_can_not_satisfy_is_refused_before_it_is_used() -> None:
    schema = contracts.v1_schema(Encoding.JSON_SCHEMA)
    schema["properties"]["orderId"] = {"type": "string", "maxLength": 3}
    with pytest.raises(ContractError, match="does not pass this schema"):
        contracts.encode_offline(Encoding.JSON_SCHEMA, schema, shaped(Encoding.JSON_SCHEMA, schema))


# --- The registry's levels, the diff, the wire format ---------------------------------------------


def test_levels_are_the_registrys_seven_in_any_case() -> None:
    assert len(contracts.LEVELS) == 7
    assert contracts.level_parse(" full_transitive ") == "FULL_TRANSITIVE"
    assert contracts.level_parse("SOMETIMES") is None
    assert "not the consumers already running" in contracts.LEVEL_MEANINGS["BACKWARD"]


def test_the_diff_shows_the_removed_field() -> None:
    old = json.dumps(contracts.v1_schema(Encoding.AVRO))
    new = json.dumps(changed(Encoding.AVRO, "remove-customer-id"))
    lines = contracts.schema_diff(old, new)
    removed = [line.text for line in lines if line.mark == "-"]
    assert any('"customerId"' in text for text in removed)
    assert not [line for line in lines if line.mark == "+"]


def test_the_wire_format_explained() -> None:
    framed = contracts.wire_format(readers.frame(258, b"\x02ab"))
    assert (framed.framed, framed.magic, framed.id_bytes, framed.schema_id) == (True, "00", "00 00 01 02", 258)
    assert framed.payload_head == "02 61 62"
    plain = contracts.wire_format(b'{"orderId": 1}')
    assert (plain.framed, plain.magic, plain.first_char, plain.schema_id) == (False, "7b", "{", None)
    assert contracts.wire_format(None) is None


def test_a_failure_the_schema_in_use_has_too_is_not_blamed_on_the_change():
    plain = Encoding.PLAIN_JSON

    def all_verdicts(schema: dict) -> list[contracts.ReaderVerdict]:
        value = contracts.encode_offline(plain, schema, shaped(plain, schema))
        return contracts.reader_verdicts(value, contracts.offline_lookup(plain, schema))

    now = all_verdicts(contracts.v1_schema(plain))
    marked = contracts.verdicts_against(now, all_verdicts(changed(plain, "add-sku")))
    by_reader = {v.reader: (v.reads, v.already) for v in marked}
    # The registry reader fails every plain JSON record: before the change too. Strict fails because of it.
    assert by_reader == {"strict": (False, False), "tolerant": (True, False), "registry": (False, True)}
