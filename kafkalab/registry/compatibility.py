"""Whether a new schema may follow the ones already registered, under a compatibility level.

BACKWARD: the new schema reads data written with the old one (consumers upgrade first).
FORWARD: the old schema reads data written with the new one (producers upgrade first).
FULL: both. *_TRANSITIVE checks every registered version; the others only the latest.

Avro uses the Apache Avro library's own reader/writer checker. JSON Schema follows Confluent's
documented rules for the common cases (see `_json_read_problems`).
"""

from __future__ import annotations

from collections.abc import Sequence

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from kafkalab.registry.schemas import AVRO, ParsedSchema

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_LEVEL = "BACKWARD"


def level_parse(value: object) -> str | None:
    """The level spelled in any case, or None when it is not one."""
    if not isinstance(value, str):
        return None
    level = value.strip().upper()
    return level if level in LEVELS else None


def compatibility_problems(
    new: ParsedSchema, previous: Sequence[tuple[int, ParsedSchema]], *, level: str, whole_history: bool | None = None
) -> list[str]:
    """Why `new` may not follow `previous` [(version, schema), oldest first]; empty when it may.

    `whole_history` overrides the level's transitivity (a check against one chosen version)."""
    if level == "NONE" or not previous:
        return []
    transitive = level.endswith("_TRANSITIVE") if whole_history is None else whole_history
    against = previous if transitive else previous[-1:]
    backward = level.startswith(("BACKWARD", "FULL"))
    forward = level.startswith(("FORWARD", "FULL"))
    problems: list[str] = []
    for version, old in against:
        if old.schema_type != new.schema_type:
            problems.append(f"Incompatible schema type: version {version} is {old.schema_type}, not {new.schema_type}")
            continue
        if backward:
            problems += [
                f"{p} (the new schema cannot read data written with version {version})"
                for p in _read_problems(new, old)
            ]
        if forward:
            problems += [
                f"{p} (version {version} cannot read data written with the new schema)"
                for p in _read_problems(old, new)
            ]
    return problems


def _read_problems(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    if reader.schema_type == AVRO:
        return _avro_read_problems(reader, writer)
    return _json_read_problems(reader.parsed, writer.parsed, "#")


def _avro_read_problems(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader.parsed, writer.parsed)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted(kind.name.upper() for kind in result.incompatibilities)) or "INCOMPATIBLE"
    where = ", ".join(sorted(result.locations))
    what = "; ".join(sorted(result.messages))
    return [f"{kinds} at {where}: {what}"]


# --- JSON Schema -------------------------------------------------------------------------
# A subset of Confluent's rules: types (integer widens to number), properties under open and
# closed content models, required properties, enums, array items. Not covered: combined schemas
# (oneOf/anyOf/allOf), $ref, numeric and string bounds, patternProperties, dependencies.


def _types(schema: object) -> set[str] | None:
    """The schema's allowed types; None when it allows any."""
    if not isinstance(schema, dict) or "type" not in schema:
        return None
    declared = schema["type"]
    return {declared} if isinstance(declared, str) else {t for t in declared if isinstance(t, str)}


def _is_open(schema: dict) -> bool:
    # additionalProperties absent or true: any other property may appear in the data.
    return schema.get("additionalProperties", True) is not False


def _json_read_problems(reader: object, writer: object, path: str) -> list[str]:
    if not isinstance(reader, dict) or not isinstance(writer, dict):
        return [] if reader == writer or reader in (True, {}) else [f"TYPE_CHANGED at {path}"]
    problems: list[str] = []
    reader_types, writer_types = _types(reader), _types(writer)
    if reader_types is not None:
        widened = reader_types | ({"integer"} if "number" in reader_types else set())
        if writer_types is None or not writer_types <= widened:
            problems.append(f"TYPE_CHANGED at {path}: {sorted(writer_types or ['any'])} → {sorted(reader_types)}")
            return problems
    if "enum" in reader and not set(map(repr, writer.get("enum", [object()]))) <= set(map(repr, reader["enum"])):
        problems.append(f"ENUM_ARRAY_NARROWED at {path}")
    if "object" in (reader_types or set()) or "properties" in reader or "properties" in writer:
        problems += _json_object_problems(reader, writer, path)
    if isinstance(reader.get("items"), dict) and isinstance(writer.get("items"), dict):
        problems += _json_read_problems(reader["items"], writer["items"], f"{path}/items")
    return problems


def _json_object_problems(reader: dict, writer: dict, path: str) -> list[str]:
    problems: list[str] = []
    reader_props, writer_props = reader.get("properties", {}), writer.get("properties", {})
    for name in reader_props.keys() - writer_props.keys():
        # Old data may carry this property with any value when the old model was open.
        if _is_open(writer) and reader_props[name] not in (True, {}):
            problems.append(f"PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at {path}/properties/{name}")
    for name in writer_props.keys() - reader_props.keys():
        if not _is_open(reader):
            problems.append(f"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at {path}/properties/{name}")
    for name in reader_props.keys() & writer_props.keys():
        problems += _json_read_problems(reader_props[name], writer_props[name], f"{path}/properties/{name}")
    for name in sorted(set(reader.get("required", [])) - set(writer.get("required", []))):
        problems.append(f"REQUIRED_PROPERTY_ADDED at {path}/properties/{name}")
    return problems
