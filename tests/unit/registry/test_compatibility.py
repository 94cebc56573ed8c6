"""Compatibility rules: Avro through Apache Avro's checker, JSON Schema through Confluent's rules."""

from __future__ import annotations

import json

import pytest

from kafkalab.registry.compatibility import compatibility_problems, level_parse
from kafkalab.registry.errors import InvalidSchema
from kafkalab.registry.schemas import schema_parse

BASE_FIELDS = [{"name": "orderId", "type": "string"}, {"name": "customerId", "type": "string"}]


def avro(*fields: dict, name: str = "OrderCreated"):
    return schema_parse("AVRO", json.dumps({"type": "record", "name": name, "fields": list(fields)}))


V1 = avro(*BASE_FIELDS, {"name": "total", "type": "int"})
CHANGES = {
    "add with default": avro(
        *BASE_FIELDS, {"name": "total", "type": "int"}, {"name": "sku", "type": "string", "default": ""}
    ),
    "add without default": avro(*BASE_FIELDS, {"name": "total", "type": "int"}, {"name": "sku", "type": "string"}),
    "remove": avro(BASE_FIELDS[0], {"name": "total", "type": "int"}),
    "rename with alias": avro(
        BASE_FIELDS[0],
        {"name": "clientId", "type": "string", "aliases": ["customerId"]},
        {"name": "total", "type": "int"},
    ),
    "rename without alias": avro(
        BASE_FIELDS[0], {"name": "clientId", "type": "string"}, {"name": "total", "type": "int"}
    ),
    "int to long": avro(*BASE_FIELDS, {"name": "total", "type": "long"}),
}

# change → (BACKWARD: the new schema reads old data, FORWARD: the old schema reads new data)
EXPECTED = {
    "add with default": (True, True),
    "add without default": (False, True),
    "remove": (True, False),
    "rename with alias": (True, False),
    "rename without alias": (False, False),
    "int to long": (True, False),
}


@pytest.mark.parametrize("change", sorted(EXPECTED))
def test_avro_matrix(change: str) -> None:
    new = CHANGES[change]
    backward, forward = EXPECTED[change]
    verdict = {
        level: not compatibility_problems(new, [(1, V1)], level=level)
        for level in ("NONE", "BACKWARD", "FORWARD", "FULL")
    }
    assert verdict == {"NONE": True, "BACKWARD": backward, "FORWARD": forward, "FULL": backward and forward}


def test_refusal_names_the_field_and_the_version() -> None:
    [problem] = compatibility_problems(CHANGES["add without default"], [(3, V1)], level="BACKWARD")
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in problem and "sku" in problem and "version 3" in problem


def test_transitive_levels_check_every_version_the_others_only_the_latest() -> None:
    v2 = avro(*BASE_FIELDS, {"name": "total", "type": "int"}, {"name": "sku", "type": "string", "default": ""})
    # v3 drops `sku`'s default: it still reads v2's data, but not v1's (no sku there).
    v3 = avro(*BASE_FIELDS, {"name": "total", "type": "int"}, {"name": "sku", "type": "string"})
    assert compatibility_problems(v3, [(1, V1), (2, v2)], level="BACKWARD") == []
    assert compatibility_problems(v3, [(1, V1), (2, v2)], level="BACKWARD_TRANSITIVE") != []


def test_a_change_of_schema_type_is_incompatible() -> None:
    as_json = schema_parse("JSON", '{"type": "object"}')
    assert compatibility_problems(as_json, [(1, V1)], level="BACKWARD") != []
    assert compatibility_problems(as_json, [(1, V1)], level="NONE") == []


def jsonschema(properties: dict, *, required: tuple[str, ...] = (), closed: bool = False):
    schema: dict = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema_parse("JSON", json.dumps(schema))


ORDER = {"orderId": {"type": "string"}, "customerId": {"type": "string"}}


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"),
    [
        # Open content model: old data may already carry any other property, with any value.
        (jsonschema(ORDER), jsonschema({**ORDER, "sku": {"type": "string"}}), False, True),
        (jsonschema(ORDER), jsonschema({"orderId": {"type": "string"}}), True, False),
        # Closed content model: no other property can appear.
        (jsonschema(ORDER, closed=True), jsonschema({**ORDER, "sku": {"type": "string"}}, closed=True), True, False),
        (jsonschema(ORDER, closed=True), jsonschema({"orderId": {"type": "string"}}, closed=True), False, True),
        # Required properties.
        (jsonschema(ORDER), jsonschema(ORDER, required=("customerId",)), False, True),
        # Type changes: integer widens to number, string to number does not.
        (jsonschema({"n": {"type": "integer"}}), jsonschema({"n": {"type": "number"}}), True, False),
        (jsonschema({"n": {"type": "string"}}), jsonschema({"n": {"type": "number"}}), False, False),
    ],
    ids=["open add", "open remove", "closed add", "closed remove", "required added", "integer→number", "string→number"],
)
def test_json_schema_rules(old, new, backward: bool, forward: bool) -> None:
    assert (compatibility_problems(new, [(1, old)], level="BACKWARD") == []) is backward
    assert (compatibility_problems(new, [(1, old)], level="FORWARD") == []) is forward


@pytest.mark.parametrize(
    ("schema_type", "text"),
    [
        ("AVRO", "not json"),
        ("AVRO", '{"type": "record"}'),
        ("AVRO", '{"type": "nope"}'),
        ("AVRO", ""),
        ("JSON", "[1, 2]"),
        ("JSON", '{"properties": []}'),
        ("JSON", '{"required": "orderId"}'),
        ("PROTOBUF", "syntax = 'proto3';"),
    ],
)
def test_invalid_schemas(schema_type: str, text: str) -> None:
    with pytest.raises(InvalidSchema):
        schema_parse(schema_type, text)


def test_whitespace_does_not_make_a_new_schema() -> None:
    spaced = schema_parse("AVRO", '{ "type" : "record", "name": "R", "fields": [ ] }')
    assert spaced.canonical == schema_parse("AVRO", '{"type":"record","name":"R","fields":[]}').canonical


def test_levels_parse_in_any_case() -> None:
    assert level_parse("full_transitive") == "FULL_TRANSITIVE"
    assert level_parse("SIDEWAYS") is None
    assert level_parse(7) is None
