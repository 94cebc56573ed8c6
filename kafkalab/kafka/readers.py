"""How NotificationService reads an order event: the wire format, and three kinds of reader.

A record's value is either plain JSON (no contract, as in the article) or Confluent's wire
format: magic byte 0, a 4-byte big-endian schema id, then the payload (Avro binary or JSON),
written with a schema from the registry.

The readers differ in what they accept, which is the point of the schema lessons:

- **strict** validates against the contract it was built with (version 1) and refuses unknown
  fields: the reader the article has in mind, which adding `sku` breaks.
- **tolerant** ignores what it does not know and needs only what it uses: `orderId`,
  `customerId` and the items (each with productId, quantity and a numeric price).
- **registry** needs the writer's schema id: Avro is resolved from the writer's schema into its
  own (version 1), so added fields are dropped and missing ones need a default; JSON Schema is
  validated against the writer's schema, and then it needs what it uses, as tolerant does.

Every reader decodes Confluent-framed values with the writer's schema, looked up by id (no
Avro reader can do without it). This module needs confluent-kafka's extras (fastavro,
jsonschema) but not Django: the consumer process imports it.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import fastavro
import jsonschema

# The reader is a consumer's setting: its enum lives with the others, where the form finds it.
from kafkalab.kafka.consumer_config import Reader

MAGIC_BYTE = 0
FRAME_HEADER_BYTES = 5
AVRO = "AVRO"
JSON = "JSON"
# Bigger than any record the brokers accept by default; a bigger value is not parsed.
MAX_VALUE_BYTES = 1 << 20
MESSAGE_CHARS = 300


class Failure(StrEnum):
    """Why a record is a poison pill for a reader."""

    NOT_DECODABLE = "not-decodable"  # no value, not JSON, Avro bytes that don't fit the schema
    UNKNOWN_SCHEMA = "unknown-schema-id"  # the registry has no schema with that id
    NO_SCHEMA_ID = "no-schema-id"  # the registry reader met a value without the magic byte
    CONTRACT = "contract"  # decoded, but not what this reader accepts
    REGISTRY_DOWN = "registry-unreachable"  # not the record's fault: retried, never skipped


class ReadFailure(Exception):
    def __init__(self, kind: Failure, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message[:MESSAGE_CHARS]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


# The writer's schema by id: (schema type, schema text). Raises LookupError for an unknown id,
# ConnectionError when the registry cannot be asked.
SchemaLookup = Callable[[int], tuple[str, str]]


@dataclass(frozen=True)
class Decoded:
    """A value as its writer wrote it."""

    encoding: str  # "json" (plain), "avro" or "json-schema"
    schema_id: int | None
    value: object
    writer_schema: str | None = None


# --- Version 1: the contract every reader was built with ------------------------------------

V1_AVRO = {
    "type": "record",
    "name": "OrderCreated",
    "namespace": "io.kafkalab.orders",
    "fields": [
        {"name": "orderId", "type": "string"},
        {"name": "customerId", "type": "string"},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "OrderItem",
                    "fields": [
                        {"name": "productId", "type": "string"},
                        {"name": "quantity", "type": "int"},
                        # The article sends prices as JSON numbers; Avro's nearest is a double.
                        {"name": "price", "type": "double"},
                    ],
                },
            },
        },
        {"name": "timestamp", "type": "string"},
    ],
}

_V1_ITEM_JSON = {
    "type": "object",
    "properties": {
        "productId": {"type": "string"},
        "quantity": {"type": "integer"},
        "price": {"type": "number"},
    },
    "required": ["productId", "quantity", "price"],
}
V1_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "OrderCreated",
    "type": "object",
    "properties": {
        "orderId": {"type": "string"},
        "customerId": {"type": "string"},
        "items": {"type": "array", "items": _V1_ITEM_JSON},
        "timestamp": {"type": "string"},
    },
    "required": ["orderId", "customerId", "items", "timestamp"],
}


def _closed(schema: dict) -> dict:
    """The same schema with no room for unknown properties, at every level."""
    result = dict(schema)
    if "properties" in result:
        result["properties"] = {name: _closed(sub) for name, sub in result["properties"].items()}
        result["additionalProperties"] = False
    if isinstance(result.get("items"), dict):
        result["items"] = _closed(result["items"])
    return result


# OrderPaid and OrderShipped (plain JSON only: one schema per topic leaves no room for them).
V1_STATUS_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "OrderStatusChanged",
    "type": "object",
    "properties": {
        "orderId": {"type": "string"},
        "customerId": {"type": "string"},
        "timestamp": {"type": "string"},
    },
    "required": ["orderId", "customerId", "timestamp"],
}
ORDER_CREATED = "OrderCreated"
STRICT_CONTRACT = _closed(V1_JSON_SCHEMA)
STRICT_STATUS_CONTRACT = _closed(V1_STATUS_JSON_SCHEMA)
_V1_AVRO_PARSED = fastavro.parse_schema(V1_AVRO)


# --- Decoding ----------------------------------------------------------------------------


def frame(schema_id: int, payload: bytes) -> bytes:
    """Confluent's wire format for a payload written with schema `schema_id`."""
    return struct.pack(">bI", MAGIC_BYTE, schema_id) + payload


def schema_id_of(value: bytes | None) -> int | None:
    """The schema id of a Confluent-framed value, or None when it does not start with the magic byte."""
    if not value or len(value) < FRAME_HEADER_BYTES or value[0] != MAGIC_BYTE:
        return None
    return struct.unpack(">I", value[1:FRAME_HEADER_BYTES])[0]


def decode(value: bytes | None, lookup: SchemaLookup) -> Decoded:
    """The value as its writer wrote it; raises ReadFailure when it cannot be read at all."""
    if not value:
        raise ReadFailure(Failure.NOT_DECODABLE, "the record has no value")
    if len(value) > MAX_VALUE_BYTES:
        raise ReadFailure(Failure.NOT_DECODABLE, f"the value is {len(value)} bytes, more than a reader parses")
    schema_id = schema_id_of(value)
    if schema_id is None:
        return Decoded("json", None, _json(value, what="the value"))
    schema_type, schema_text = _writer_schema(schema_id, lookup)
    payload = value[FRAME_HEADER_BYTES:]
    if schema_type == AVRO:
        return Decoded("avro", schema_id, _avro(payload, schema_text, None), schema_text)
    if schema_type == JSON:
        return Decoded("json-schema", schema_id, _json(payload, what="the payload after the schema id"), schema_text)
    raise ReadFailure(Failure.NOT_DECODABLE, f"schema {schema_id} is {schema_type}, which this reader cannot read")


def _writer_schema(schema_id: int, lookup: SchemaLookup) -> tuple[str, str]:
    try:
        return lookup(schema_id)
    except LookupError:
        raise ReadFailure(Failure.UNKNOWN_SCHEMA, f"the registry has no schema with id {schema_id}") from None
    except ConnectionError as exc:
        raise ReadFailure(Failure.REGISTRY_DOWN, f"could not ask the registry for schema {schema_id}: {exc}") from None


def _json(raw: bytes, *, what: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ReadFailure(Failure.NOT_DECODABLE, f"{what} is not JSON") from None


def _avro(payload: bytes, writer_text: str, reader: dict | None) -> object:
    try:
        writer = fastavro.parse_schema(json.loads(writer_text))
    except (ValueError, TypeError, fastavro.schema.SchemaParseException) as exc:
        raise ReadFailure(Failure.NOT_DECODABLE, f"the writer's schema is not valid Avro: {exc}") from None
    stream = io.BytesIO(payload)
    try:
        value = fastavro.schemaless_reader(stream, writer, reader)
    except fastavro.read.SchemaResolutionError as exc:
        raise ReadFailure(Failure.CONTRACT, f"Avro schema resolution failed: {exc}") from None
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise ReadFailure(Failure.NOT_DECODABLE, f"the Avro payload does not fit the writer's schema: {exc}") from None
    if stream.tell() != len(payload):
        raise ReadFailure(Failure.NOT_DECODABLE, "the Avro payload has bytes the writer's schema does not account for")
    return value


# --- Reading -----------------------------------------------------------------------------


def read_order(reader: Reader, value: bytes | None, lookup: SchemaLookup, *, event_type: str | None = None) -> dict:
    """The event as `reader` understands it; raises ReadFailure when the record is poison to it.

    `event_type` is the record's event-type header: OrderPaid and OrderShipped carry no items.
    Without one, the record is taken for an OrderCreated."""
    created = event_type in (None, "", ORDER_CREATED)
    decoded = decode(value, lookup)
    if reader == Reader.STRICT:
        contract = STRICT_CONTRACT if created else STRICT_STATUS_CONTRACT
        _validate(decoded.value, contract, against="its contract (version 1, no unknown fields)")
        return decoded.value
    if reader == Reader.TOLERANT:
        return _needed_fields(decoded.value, created=created)
    if decoded.schema_id is None:
        raise ReadFailure(
            Failure.NO_SCHEMA_ID,
            "the value does not start with the magic byte 0 and a schema id: it was not written through a registry",
        )
    if decoded.encoding == "avro":
        # Decode again, resolving the writer's schema into the reader's own version 1.
        payload = value[FRAME_HEADER_BYTES:]
        return _needed_fields(_avro(payload, decoded.writer_schema, _V1_AVRO_PARSED), created=created)
    _validate(decoded.value, _json_schema(decoded.writer_schema), against=f"the writer's schema {decoded.schema_id}")
    return _needed_fields(decoded.value, created=created)


def _json_schema(text: str) -> dict:
    try:
        schema = json.loads(text)
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except (ValueError, jsonschema.SchemaError) as exc:
        raise ReadFailure(Failure.NOT_DECODABLE, f"the writer's JSON Schema is not valid: {exc}") from None
    return schema


def _validator(schema: dict):
    # The readers' own contracts are checked on every record: build their validators once.
    found = _BUILT_VALIDATORS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    return jsonschema.validators.validator_for(schema)(schema)


def _validate(value: object, schema: dict, *, against: str) -> None:
    validator = _validator(schema)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except RecursionError:
        raise ReadFailure(Failure.CONTRACT, f"the value is nested too deeply to check against {against}") from None
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        raise ReadFailure(Failure.CONTRACT, f"fails {against} at {where}: {error.message}")


_NEEDED_FOR_STATUS = {
    "type": "object",
    "properties": {"orderId": {"type": "string"}, "customerId": {"type": "string"}},
    "required": ["orderId", "customerId"],
}
_NEEDED_FOR_CREATED = {
    "type": "object",
    "properties": {**_NEEDED_FOR_STATUS["properties"], "items": {"type": "array", "items": _V1_ITEM_JSON}},
    "required": ["orderId", "customerId", "items"],
}


def _needed_fields(value: object, *, created: bool) -> dict:
    """What the email needs, whatever else the value holds."""
    if created:
        _validate(value, _NEEDED_FOR_CREATED, against="what the email needs (orderId, customerId, items)")
    else:
        _validate(value, _NEEDED_FOR_STATUS, against="what the email needs (orderId, customerId)")
    return value


_BUILT_VALIDATORS = {
    id(schema): (schema, jsonschema.validators.validator_for(schema)(schema))
    for schema in (STRICT_CONTRACT, STRICT_STATUS_CONTRACT, _NEEDED_FOR_CREATED, _NEEDED_FOR_STATUS)
}
