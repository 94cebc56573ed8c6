"""OrderService's contract: the schema it writes with, the payload that follows from it, and
what a change to it does to each reader. Pure functions: no Kafka, no registry, no Django.

Three encodings: plain JSON (no registry; the writer schema, a JSON Schema, only shapes the
payload), JSON Schema and Avro (both through the registry, in Confluent's wire format).

OrderService builds each payload from the order's facts (the version-1 body: orderId,
customerId, items with productId, quantity and price, timestamp) and its current schema: a field
is filled from the fact of the same name, else of one of its Avro aliases, else of a name that
matches once normalised (`customer_id` is `customerId`, `lineItems` ends in `items`); a field
no fact fills gets its default, else a value of its type. So whatever schema the learner
writes, the orders follow it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import fastavro
import jsonschema

from kafkalab.kafka import readers

MAX_SCHEMA_BYTES = 64 * 1024
# The id a candidate schema is framed with before the registry has given it one.
PREVIEW_SCHEMA_ID = 0
WIRE_BYTES_SHOWN = 16


class Encoding(StrEnum):
    # The values are the ones readers.Decoded.encoding reports.
    PLAIN_JSON = "json"
    JSON_SCHEMA = "json-schema"
    AVRO = "avro"

    @property
    def label(self) -> str:
        return {"json": "plain JSON", "json-schema": "JSON Schema", "avro": "Avro"}[self.value]

    @property
    def uses_registry(self) -> bool:
        return self != Encoding.PLAIN_JSON

    @property
    def schema_type(self) -> str:
        """The registry's name for the schema language (plain JSON describes itself in JSON Schema)."""
        return readers.AVRO if self == Encoding.AVRO else readers.JSON

    @property
    def language(self) -> str:
        return "Avro" if self == Encoding.AVRO else "JSON Schema"


class ContractError(ValueError):
    """A schema OrderService cannot use; the message says why."""


# --- Schemas as text ---------------------------------------------------------------------------


def schema_text(schema: dict) -> str:
    """A schema as the editor shows it (and the diff compares it)."""
    return json.dumps(schema, indent=2, ensure_ascii=False)


def pretty(text: str) -> str:
    """Any stored schema text pretty-printed, or as it is when it is not JSON."""
    try:
        return schema_text(json.loads(text))
    except ValueError:
        return text


def v1_schema(encoding: Encoding) -> dict:
    """Version 1, the article's OrderCreated, in the encoding's schema language."""
    return copy.deepcopy(readers.V1_AVRO if encoding == Encoding.AVRO else readers.V1_JSON_SCHEMA)


def schema_load(encoding: Encoding, text: str) -> dict:
    """The schema in `text`, checked as OrderService needs it; ContractError says what is wrong."""
    size = len(text.encode())
    if size > MAX_SCHEMA_BYTES:
        raise ContractError(
            f"The schema is {size / 1024:.1f} KiB; a schema may be at most {MAX_SCHEMA_BYTES // 1024} KiB."
        )
    if not text.strip():
        raise ContractError("The schema is empty.")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ContractError(f"The schema is not JSON: {exc}.") from None
    except RecursionError:
        raise ContractError("The schema is nested too deeply to read.") from None
    if encoding == Encoding.AVRO:
        _avro_check(schema)
    else:
        _json_schema_check(schema)
    return schema


def _avro_check(schema: object) -> None:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ContractError('Not an Avro schema OrderService can write: an order is a record ({"type": "record", …}).')
    try:
        fastavro.parse_schema(copy.deepcopy(schema))
    except RecursionError:
        raise ContractError("Not a valid Avro schema: it is nested too deeply.") from None
    except Exception as exc:  # fastavro raises many kinds (parse, unknown type, key, type errors) on bad input
        raise ContractError(f"Not a valid Avro schema: {exc}") from None


def _json_schema_check(schema: object) -> None:
    if not isinstance(schema, dict) or not ("properties" in schema or schema.get("type") == "object"):
        raise ContractError('Not a JSON Schema OrderService can write: an order is an object ({"type": "object", …}).')
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ContractError(f"Not a valid JSON Schema: {exc.message}") from None
    except RecursionError:
        raise ContractError("Not a valid JSON Schema: it is nested too deeply.") from None


# --- One-click changes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    name: str
    title: str
    what: str  # what it changes, in a sentence
    avro: Callable[[dict], None]  # edits an Avro record schema in place
    json: Callable[[dict], None]  # edits a JSON Schema in place


def _avro_field(record: dict, name: str) -> dict:
    for field in record.get("fields", []):
        if field.get("name") == name:
            return field
    raise ContractError(f"The current schema has no field {name!r} to change.")


def _avro_item_record(record: dict) -> dict:
    """The record the order's item list holds (under whatever name the list now has)."""
    for field in record.get("fields", []):
        kind = field.get("type")
        items = kind.get("items") if isinstance(kind, dict) and kind.get("type") == "array" else None
        if isinstance(items, dict) and items.get("type") == "record":
            return items
    raise ContractError("The current schema has no list of item records to change.")


def _json_property(schema: dict, name: str) -> dict:
    found = schema.get("properties", {}).get(name)
    if not isinstance(found, dict):
        raise ContractError(f"The current schema has no property {name!r} to change.")
    return found


def _json_item_schema(schema: dict) -> dict:
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict) and prop.get("type") == "array" and isinstance(prop.get("items"), dict):
            return prop["items"]
    raise ContractError("The current schema has no array of item objects to change.")


def _json_rename(schema: dict, old: str, new: str) -> None:
    prop = _json_property(schema, old)
    schema["properties"] = {new if name == old else name: sub for name, sub in schema["properties"].items()}
    schema["properties"][new] = prop
    if old in schema.get("required", []):
        schema["required"] = [new if name == old else name for name in schema["required"]]


def _json_remove(schema: dict, name: str) -> None:
    _json_property(schema, name)
    del schema["properties"][name]
    if name in schema.get("required", []):
        schema["required"] = [other for other in schema["required"] if other != name]


def _json_add(schema: dict, name: str, prop: dict, *, required: bool) -> None:
    if name in schema.setdefault("properties", {}):
        raise ContractError(f"The current schema already has {name!r}.")
    schema["properties"][name] = prop
    if required:
        schema["required"] = [*schema.get("required", []), name]


def _avro_add(record: dict, field: dict) -> None:
    if any(existing.get("name") == field["name"] for existing in record.get("fields", [])):
        raise ContractError(f"The current schema already has {field['name']!r}.")
    record.setdefault("fields", []).append(field)


def _avro_rename(record: dict, old: str, new: str, *, aliases: list[str] | None = None) -> None:
    field = _avro_field(record, old)
    field["name"] = new
    if aliases:
        field["aliases"] = aliases


def _avro_remove(record: dict, name: str) -> None:
    _avro_field(record, name)
    record["fields"] = [field for field in record["fields"] if field.get("name") != name]


def _avro_price_as_string(record: dict) -> None:
    _avro_field(_avro_item_record(record), "price")["type"] = "string"
    _avro_field(_avro_item_record(record), "price").pop("default", None)


def _json_price_as_string(schema: dict) -> None:
    item = _json_item_schema(schema)
    _json_property(item, "price")
    item["properties"]["price"] = {"type": "string"}


CHANGES: dict[str, Change] = {
    change.name: change
    for change in (
        Change(
            "add-sku",
            "Add sku to items",
            "Each item gets a required sku (in Avro: a field with no default), the article's example.",
            avro=lambda s: _avro_add(_avro_item_record(s), {"name": "sku", "type": "string"}),
            json=lambda s: _json_add(_json_item_schema(s), "sku", {"type": "string"}, required=True),
        ),
        Change(
            "add-sku-default",
            "Add sku to items, with a default",
            'Each item gets an sku that defaults to "" when absent, so old data still has one.',
            avro=lambda s: _avro_add(_avro_item_record(s), {"name": "sku", "type": "string", "default": ""}),
            json=lambda s: _json_add(_json_item_schema(s), "sku", {"type": "string", "default": ""}, required=False),
        ),
        Change(
            "rename-customer-id",
            "Rename customerId",
            "customerId becomes customer_id (no alias: old readers look for customerId).",
            avro=lambda s: _avro_rename(s, "customerId", "customer_id"),
            json=lambda s: _json_rename(s, "customerId", "customer_id"),
        ),
        Change(
            "remove-customer-id",
            "Remove customerId",
            "The event no longer carries customerId.",
            avro=lambda s: _avro_remove(s, "customerId"),
            json=lambda s: _json_remove(s, "customerId"),
        ),
        Change(
            "price-as-string",
            "price as a string",
            'Each item\'s price is written as text ("49.00") instead of a number.',
            avro=_avro_price_as_string,
            json=_json_price_as_string,
        ),
        Change(
            "rename-items",
            "items renamed lineItems",
            "The item list is called lineItems (in Avro with the alias items, so a new reader can still read old data).",
            avro=lambda s: _avro_rename(s, "items", "lineItems", aliases=["items"]),
            json=lambda s: _json_rename(s, "items", "lineItems"),
        ),
        Change(
            "add-currency",
            "Add currency, with a default",
            'The order gets a currency that defaults to "EUR": the textbook safe evolution.',
            avro=lambda s: _avro_add(s, {"name": "currency", "type": "string", "default": "EUR"}),
            json=lambda s: _json_add(s, "currency", {"type": "string", "default": "EUR"}, required=False),
        ),
    )
}


def change_apply(encoding: Encoding, schema: dict, name: str) -> dict:
    """A copy of `schema` with the one-click change `name` made; ContractError when it does not apply."""
    change = CHANGES.get(name)
    if change is None:
        raise ContractError(f"There is no change called {name!r}.")
    changed = copy.deepcopy(schema)
    (change.avro if encoding == Encoding.AVRO else change.json)(changed)
    return changed


# --- Payloads that follow the schema -------------------------------------------------------------


class _NoFit(Exception):
    """The fact can't be given the field's type: the field gets its default or a sample instead."""


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _fact_for(names: list[str], facts: dict) -> tuple[bool, object]:
    """(found, value) of the fact a field named `names[0]` (aliases after it) stands for."""
    for name in names:
        if name in facts:
            return True, facts[name]
    wanted = [_normalised(name) for name in names]
    for match in (lambda want, have: want == have, lambda want, have: len(have) >= 4 and want.endswith(have)):
        for key, value in facts.items():
            if any(match(want, _normalised(key)) for want in wanted):
                return True, value
    return False, None


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise _NoFit
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)  # Decimal("49.00") stays "49.00"; an int its digits


def _as_number(value: object, kind: type) -> int | float:
    if isinstance(value, bool) or value is None:
        raise _NoFit
    try:
        number = Decimal(str(value)) if isinstance(value, str) else value
        return kind(number)
    except (InvalidOperation, TypeError, ValueError):
        raise _NoFit from None


def payload_shape(encoding: Encoding, schema: dict, facts: dict) -> dict:
    """The order `facts` (a version-1 body) as the record `schema` describes it."""
    if encoding == Encoding.AVRO:
        return _avro_value(schema, facts, named={}, name=schema.get("name", "order"))
    return _json_value(schema, facts, name="order")


def _avro_value(kind: object, fact: object, *, named: dict, name: str) -> object:
    """`fact` as a value of Avro type `kind` (raises _NoFit when it can't be one)."""
    if isinstance(kind, str):
        if kind in named:
            return _avro_value(named[kind], fact, named=named, name=name)
        return _avro_primitive(kind, fact)
    if isinstance(kind, list):
        return _avro_union(kind, fact, named=named, name=name)
    if not isinstance(kind, dict):
        raise _NoFit
    if kind.get("name"):
        named[kind["name"]] = kind
        if kind.get("namespace"):
            named[f"{kind['namespace']}.{kind['name']}"] = kind
    logical = kind.get("logicalType")
    if logical is not None and isinstance(fact, str | float | int | Decimal):
        converted = _avro_logical(logical, kind, fact)
        if converted is not None:
            return converted
    base = kind.get("type")
    if base == "record":
        return _avro_record(kind, fact if isinstance(fact, dict) else {}, named=named)
    if base == "array":
        if not isinstance(fact, list):
            raise _NoFit
        return [_avro_value(kind["items"], element, named=named, name=name) for element in fact]
    if base == "map":
        if not isinstance(fact, dict):
            raise _NoFit
        return {str(key): _avro_value(kind["values"], value, named=named, name=name) for key, value in fact.items()}
    if base == "enum":
        if fact in kind.get("symbols", []):
            return fact
        raise _NoFit
    if base == "fixed":
        raise _NoFit
    return _avro_value(base, fact, named=named, name=name)


def _avro_logical(logical: str, kind: dict, fact: object) -> object | None:
    if logical == "decimal":
        try:
            return Decimal(str(fact)).quantize(Decimal(1).scaleb(-int(kind.get("scale", 0))))
        except (InvalidOperation, ValueError):
            return None
    if logical.startswith("timestamp-") and isinstance(fact, str):
        try:
            return datetime.fromisoformat(fact.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _avro_primitive(kind: str, fact: object) -> object:
    if kind == "string":
        return _as_text(fact)
    if kind in ("int", "long"):
        return _as_number(fact, int)
    if kind in ("float", "double"):
        return _as_number(fact, float)
    if kind == "boolean" and isinstance(fact, bool):
        return fact
    if kind == "null" and fact is None:
        return None
    if kind == "bytes" and isinstance(fact, str):
        return fact.encode()
    raise _NoFit


def _avro_union(branches: list, fact: object, *, named: dict, name: str) -> object:
    if fact is None and "null" in branches:
        return None
    for branch in branches:
        if branch == "null":
            continue
        try:
            return _avro_value(branch, fact, named=named, name=name)
        except _NoFit:
            continue
    raise _NoFit


def _avro_record(record: dict, facts: dict, *, named: dict) -> dict:
    value = {}
    for field in record.get("fields", []):
        name = field["name"]
        found, fact = _fact_for([name, *field.get("aliases", [])], facts)
        try:
            if not found:
                raise _NoFit
            value[name] = _avro_value(field["type"], fact, named=named, name=name)
        except _NoFit:
            value[name] = _avro_unfilled(field, named=named)
    return value


def _avro_unfilled(field: dict, *, named: dict) -> object:
    """A field no fact fills: its default (as a value of its type), else a sample of its type."""
    if "default" in field:
        kind = field["type"]
        # A union's default is of its first branch.
        first = kind[0] if isinstance(kind, list) and kind else kind
        try:
            return _avro_value(first, field["default"], named=named, name=field["name"])
        except _NoFit:
            return field["default"]
    return _avro_sample(field["type"], name=field["name"], named=named)


def _avro_sample(kind: object, *, name: str, named: dict) -> object:
    if isinstance(kind, list):
        return None if "null" in kind else _avro_sample(kind[0], name=name, named=named)
    if isinstance(kind, str):
        if kind in named:
            return _avro_sample(named[kind], name=name, named=named)
        return _SAMPLES.get(kind, lambda field: None)(name)
    base = kind.get("type")
    if kind.get("name"):
        named[kind["name"]] = kind
        if kind.get("namespace"):
            named[f"{kind['namespace']}.{kind['name']}"] = kind
    if base == "record":
        return _avro_record(kind, {}, named=named)
    if base == "enum":
        return kind.get("default", (kind.get("symbols") or [None])[0])
    if base == "fixed":
        return bytes(int(kind.get("size", 0)))
    if base in ("array", "map"):
        return [] if base == "array" else {}
    if kind.get("logicalType") == "decimal":
        return Decimal(0)
    return _avro_sample(base, name=name, named=named)


_SAMPLES: dict[str, Callable[[str], object]] = {
    "string": lambda name: f"{name}-001",
    "int": lambda name: 1,
    "long": lambda name: 1,
    "float": lambda name: 1.0,
    "double": lambda name: 1.0,
    "boolean": lambda name: False,
    "null": lambda name: None,
    "bytes": lambda name: b"",
    # JSON Schema's names
    "number": lambda name: 1.0,
    "integer": lambda name: 1,
    "array": lambda name: [],
    "object": lambda name: {},
}


def _json_value(schema: object, fact: object, *, name: str) -> object:
    """`fact` as a value `schema` (a JSON Schema) accepts, as far as its shape says."""
    if not isinstance(schema, dict):
        return _plain(fact)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return fact if fact in schema["enum"] else schema["enum"][0]
    types = schema.get("type")
    kinds = [types] if isinstance(types, str) else list(types or [])
    if not kinds:
        kinds = ["object"] if "properties" in schema else []
    if not kinds:
        return _plain(fact)
    for kind in kinds:
        try:
            return _json_of_kind(kind, schema, fact, name=name)
        except _NoFit:
            continue
    raise _NoFit


def _json_of_kind(kind: str, schema: dict, fact: object, *, name: str) -> object:
    if kind == "object":
        return _json_object(schema, fact if isinstance(fact, dict) else {})
    if kind == "array":
        if not isinstance(fact, list):
            raise _NoFit
        return [_json_value(schema.get("items", {}), element, name=name) for element in fact]
    if kind == "string":
        return _as_text(fact)
    if kind == "integer":
        return _as_number(fact, int)
    if kind == "number":
        return _as_number(fact, float)
    if kind == "boolean" and isinstance(fact, bool):
        return fact
    if kind == "null" and fact is None:
        return None
    raise _NoFit


def _json_object(schema: dict, facts: dict) -> dict:
    value = {}
    for name, prop in schema.get("properties", {}).items():
        found, fact = _fact_for([name], facts)
        try:
            if not found:
                raise _NoFit
            value[name] = _json_value(prop, fact, name=name)
        except _NoFit:
            value[name] = _json_unfilled(prop, name=name)
    return value


def _json_unfilled(prop: object, *, name: str) -> object:
    if not isinstance(prop, dict):
        return None
    if "default" in prop:
        return prop["default"]
    if "const" in prop:
        return prop["const"]
    if prop.get("enum"):
        return prop["enum"][0]
    types = prop.get("type")
    kind = types if isinstance(types, str) else (list(types or []) or ["object" if "properties" in prop else "null"])[0]
    if kind == "object":
        return _json_object(prop, {})
    return _SAMPLES.get(kind, lambda field: None)(name)


def _plain(value: object) -> object:
    """A fact as plain JSON (prices are Decimals until they meet a schema)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value


# --- Encoding without a registry (plain JSON, and previews) -----------------------------------


def json_bytes(payload: dict) -> bytes:
    return json.dumps(_plain(payload), separators=(",", ":"), ensure_ascii=False).encode()


def encode_offline(encoding: Encoding, schema: dict, payload: dict, *, schema_id: int = PREVIEW_SCHEMA_ID) -> bytes:
    """The value OrderService would write, framed with `schema_id` for a registry encoding.
    ContractError when the payload can't be written with the schema."""
    if encoding == Encoding.AVRO:
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), payload)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise ContractError(f"OrderService can't write an order with this schema: {exc}") from None
        return readers.frame(schema_id, buffer.getvalue())
    body = json_bytes(payload)
    problem = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(json.loads(body))
    )
    if problem is not None:
        raise ContractError(f"The order OrderService would write does not pass this schema: {problem.message}")
    return body if encoding == Encoding.PLAIN_JSON else readers.frame(schema_id, body)


# --- What a change does to each reader -----------------------------------------------------------


@dataclass(frozen=True)
class ReaderVerdict:
    reader: str
    reads: bool
    message: str  # "reads it" or the reader's failure
    already: bool = False  # it fails the schema in use now too: the change is not the cause


def verdicts_against(now: list[ReaderVerdict], new: list[ReaderVerdict]) -> list[ReaderVerdict]:
    """The new schema's verdicts, each failure marked when the schema in use fails that reader too."""
    failing_now = {v.reader for v in now if not v.reads}
    return [dataclasses.replace(v, already=not v.reads and v.reader in failing_now) for v in new]


def offline_lookup(encoding: Encoding, schema: dict, *, schema_id: int = PREVIEW_SCHEMA_ID) -> readers.SchemaLookup:
    """A registry of one schema, for previews: `schema` under `schema_id`."""
    known = {schema_id: (encoding.schema_type, json.dumps(schema))}

    def lookup(wanted: int) -> tuple[str, str]:
        if wanted not in known:
            raise LookupError(wanted)
        return known[wanted]

    return lookup


def reader_verdicts(
    value: bytes | None, lookup: readers.SchemaLookup, *, event_type: str | None = None
) -> list[ReaderVerdict]:
    """Each NotificationService reader's answer to `value`: "reads it", or why not."""
    verdicts = []
    for reader in readers.Reader:
        try:
            readers.read_order(reader, value, lookup, event_type=event_type)
            verdicts.append(ReaderVerdict(reader.value, True, "reads it"))
        except readers.ReadFailure as failure:
            verdicts.append(ReaderVerdict(reader.value, False, failure.message))
    return verdicts


# --- The registry's levels, the diff, the wire format ---------------------------------------------

LEVEL_MEANINGS = {
    "NONE": "No check: any schema is registered, and the readers find out.",
    "BACKWARD": (
        "A new schema must read data written with the previous version. It protects new readers of "
        "old data (consumers that upgrade first), not the consumers already running against new data."
    ),
    "BACKWARD_TRANSITIVE": "As BACKWARD, against every earlier version, not just the last.",
    "FORWARD": (
        "The previous version must read data written with the new schema: running consumers keep "
        "working when the producer changes first."
    ),
    "FORWARD_TRANSITIVE": "As FORWARD, for every earlier version.",
    "FULL": "Both BACKWARD and FORWARD against the previous version: either side may upgrade first.",
    "FULL_TRANSITIVE": "Both BACKWARD and FORWARD against every earlier version.",
}
LEVELS = tuple(LEVEL_MEANINGS)


def level_parse(value: str) -> str | None:
    level = (value or "").strip().upper()
    return level if level in LEVEL_MEANINGS else None


@dataclass(frozen=True)
class DiffLine:
    mark: str  # "+", "-" or " "
    text: str


def schema_diff(old_text: str, new_text: str) -> list[DiffLine]:
    """A line diff of two schemas, both pretty-printed."""
    lines = difflib.ndiff(pretty(old_text).splitlines(), pretty(new_text).splitlines())
    return [DiffLine(line[0], line[2:]) for line in lines if line[:1] in "+- "]


@dataclass(frozen=True)
class WireFormat:
    """The first bytes of a value, as Confluent's wire format reads them."""

    framed: bool
    magic: str  # byte 0 in hex
    schema_id: int | None
    id_bytes: str  # bytes 1–4 in hex
    payload_head: str  # the first payload bytes in hex
    first_char: str  # byte 0 as a character, for a value that is not framed


def wire_format(value: bytes | None) -> WireFormat | None:
    if not value:
        return None
    schema_id = readers.schema_id_of(value)
    if schema_id is None:
        head = value[:WIRE_BYTES_SHOWN]
        first = chr(value[0]) if 32 <= value[0] < 127 else ""
        return WireFormat(False, f"{value[0]:02x}", None, "", head.hex(" "), first)
    return WireFormat(
        True,
        f"{value[0]:02x}",
        schema_id,
        value[1 : readers.FRAME_HEADER_BYTES].hex(" "),
        value[readers.FRAME_HEADER_BYTES : readers.FRAME_HEADER_BYTES + WIRE_BYTES_SHOWN].hex(" "),
        "",
    )
