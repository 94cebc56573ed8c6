"""Parsing a submitted schema into the one string the registry stores and compares.

AVRO is parsed by the Apache Avro library; JSON (JSON Schema) must be a JSON object. The stored
form is compact JSON, so that whitespace alone never makes a "new" schema or a new version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.schema

from kafkalab.registry.errors import InvalidSchema

AVRO = "AVRO"
JSON = "JSON"
SCHEMA_TYPES = (AVRO, JSON)


@dataclass(frozen=True)
class ParsedSchema:
    schema_type: str
    canonical: str
    parsed: Any  # avro.schema.Schema for AVRO, the decoded object for JSON


def schema_parse(schema_type: str | None, text: object) -> ParsedSchema:
    """The schema in its stored form, or InvalidSchema (42201) saying what is wrong."""
    schema_type = (schema_type or AVRO).upper()
    if schema_type not in SCHEMA_TYPES:
        raise InvalidSchema(f"Invalid schema type {schema_type}: this registry accepts {', '.join(SCHEMA_TYPES)}")
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchema("Invalid schema: 'schema' must be a non-empty string")
    try:
        decoded = json.loads(text)
    except ValueError as exc:
        raise InvalidSchema(f"Invalid schema: not JSON ({exc})") from exc
    if schema_type == JSON:
        return _json_schema(decoded)
    return _avro_schema(text)


def _avro_schema(text: str) -> ParsedSchema:
    try:
        parsed = avro.schema.parse(text)
        canonical = json.dumps(parsed.to_json(), separators=(",", ":"))
    except Exception as exc:  # the avro library raises many kinds (parse, name, type errors) on bad input
        raise InvalidSchema(f"Invalid schema: {exc}") from exc
    return ParsedSchema(AVRO, canonical, parsed)


def _json_schema(decoded: object) -> ParsedSchema:
    if not isinstance(decoded, dict):
        raise InvalidSchema("Invalid schema: a JSON Schema must be a JSON object")
    for key in ("properties", "definitions", "$defs", "patternProperties"):
        if key in decoded and not isinstance(decoded[key], dict):
            raise InvalidSchema(f"Invalid schema: '{key}' must be an object")
    if "required" in decoded and not (
        isinstance(decoded["required"], list) and all(isinstance(name, str) for name in decoded["required"])
    ):
        raise InvalidSchema("Invalid schema: 'required' must be a list of property names")
    if "type" in decoded and not isinstance(decoded["type"], str | list):
        raise InvalidSchema("Invalid schema: 'type' must be a string or a list of strings")
    return ParsedSchema(JSON, json.dumps(decoded, separators=(",", ":")), decoded)
