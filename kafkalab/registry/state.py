"""The registry's state, rebuilt by every process from the `_schemas` topic, record by record.

Records follow Confluent's layout (JSON keys with a keytype; the topic is compacted, so the last
value of a key wins and a null value deletes it). Applying them is deterministic, so every
process that has read the same records agrees. When two processes race (same subject version,
or the same id for two different schemas), the record earlier in the log wins and the later one
is ignored; its writer sees that, restores the key's winning value (so compaction keeps it) and
tries again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kafkalab.registry.compatibility import DEFAULT_LEVEL, level_parse
from kafkalab.registry.schemas import AVRO, SCHEMA_TYPES


@dataclass(frozen=True)
class SchemaVersion:
    subject: str
    version: int
    id: int
    schema_type: str
    schema: str
    deleted: bool = False

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {"subject": self.subject, "version": self.version, "id": self.id}
        if self.schema_type != AVRO:  # Confluent leaves schemaType out for Avro
            record["schemaType"] = self.schema_type
        record["schema"] = self.schema
        record["deleted"] = self.deleted
        return record


def encode(document: dict[str, object]) -> bytes:
    # Byte-identical keys for one logical key: compaction matches keys by their bytes.
    return json.dumps(document, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> bytes:
    return encode({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})


def config_key(subject: str | None) -> bytes:
    return encode({"keytype": "CONFIG", "subject": subject, "magic": 0})


# Hard deletes drop records; this keeps the highest id ever given so that none is given twice.
ID_WATERMARK_KEY = encode({"keytype": "KAFKALAB_ID_WATERMARK", "magic": 0})


@dataclass
class RegistryState:
    versions: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    configs: dict[str | None, str] = field(default_factory=dict)  # None: the global level
    max_id: int = 0
    _id_schemas: dict[int, tuple[str, str]] = field(default_factory=dict)  # id → (type, schema)
    _id_users: dict[int, set[tuple[str, int]]] = field(default_factory=dict)

    # --- reading -----------------------------------------------------------------------
    def global_level(self) -> str:
        return self.configs.get(None, DEFAULT_LEVEL)

    def level(self, subject: str) -> str:
        return self.configs.get(subject, self.global_level())

    def subject_versions(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        found = self.versions.get(subject, {}).values()
        return sorted((v for v in found if deleted or not v.deleted), key=lambda v: v.version)

    def subjects(self, *, deleted: bool = False) -> list[str]:
        return sorted(subject for subject in self.versions if self.subject_versions(subject, deleted=deleted))

    def schema_of_id(self, schema_id: int) -> tuple[str, str] | None:
        return self._id_schemas.get(schema_id)

    def id_of(self, schema_type: str, schema: str) -> int | None:
        for schema_id, known in self._id_schemas.items():
            if known == (schema_type, schema):
                return schema_id
        return None

    def users_of_id(self, schema_id: int) -> list[SchemaVersion]:
        users = self._id_users.get(schema_id, set())
        return sorted((self.versions[s][v] for s, v in users), key=lambda v: (v.subject, v.version))

    def next_version(self, subject: str) -> int:
        return max(self.versions.get(subject, {}), default=0) + 1

    # --- applying records --------------------------------------------------------------
    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the topic. Records this code does not know are ignored."""
        key_doc = _decode(key)
        if key_doc is None:
            return
        value_doc = _decode(value) if value is not None else None
        if value is not None and value_doc is None:
            return
        keytype = key_doc.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key_doc, value_doc)
        elif keytype == "CONFIG":
            self._apply_config(key_doc, value_doc)
        elif keytype == "KAFKALAB_ID_WATERMARK" and value_doc and isinstance(value_doc.get("id"), int):
            self.max_id = max(self.max_id, value_doc["id"])

    def _apply_schema(self, key_doc: dict, value_doc: dict | None) -> None:
        subject, version = key_doc.get("subject"), key_doc.get("version")
        if not isinstance(subject, str) or not isinstance(version, int):
            return
        if value_doc is None:
            self._forget(subject, version)
            return
        record = _schema_version(value_doc)
        if record is None or (record.subject, record.version) != (subject, version):
            return
        existing = self.versions.get(subject, {}).get(version)
        if existing is not None and (existing.id, existing.schema_type, existing.schema) != (
            record.id,
            record.schema_type,
            record.schema,
        ):
            return  # a later writer lost the race for this version
        known = self._id_schemas.get(record.id)
        if known is not None and known != (record.schema_type, record.schema):
            return  # a later writer lost the race for this id
        self.versions.setdefault(subject, {})[version] = record
        self._id_schemas[record.id] = (record.schema_type, record.schema)
        self._id_users.setdefault(record.id, set()).add((subject, version))
        self.max_id = max(self.max_id, record.id)

    def _forget(self, subject: str, version: int) -> None:
        record = self.versions.get(subject, {}).pop(version, None)
        if record is None:
            return
        if not self.versions[subject]:
            del self.versions[subject]
        users = self._id_users.get(record.id, set())
        users.discard((subject, version))
        if not users:
            self._id_users.pop(record.id, None)
            self._id_schemas.pop(record.id, None)

    def _apply_config(self, key_doc: dict, value_doc: dict | None) -> None:
        subject = key_doc.get("subject")
        if subject is not None and not isinstance(subject, str):
            return
        if value_doc is None:
            self.configs.pop(subject, None)
            return
        level = level_parse(value_doc.get("compatibilityLevel"))
        if level is not None:
            self.configs[subject] = level


def _decode(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _schema_version(doc: dict) -> SchemaVersion | None:
    subject, version, schema_id, schema = doc.get("subject"), doc.get("version"), doc.get("id"), doc.get("schema")
    schema_type = doc.get("schemaType", AVRO)
    if not (isinstance(subject, str) and isinstance(version, int) and isinstance(schema_id, int)):
        return None
    if not isinstance(schema, str) or schema_type not in SCHEMA_TYPES or version < 1 or schema_id < 1:
        return None
    return SchemaVersion(subject, version, schema_id, schema_type, schema, deleted=doc.get("deleted") is True)
