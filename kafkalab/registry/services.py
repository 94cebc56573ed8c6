"""Changes to the registry. Each one goes to Kafka first; the state follows from the topic."""

from __future__ import annotations

from kafkalab.registry.compatibility import DEFAULT_LEVEL, compatibility_problems
from kafkalab.registry.errors import (
    IncompatibleSchema,
    StoreUnavailable,
    SubjectConfigNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from kafkalab.registry.schemas import ParsedSchema, schema_parse
from kafkalab.registry.selectors import version_find
from kafkalab.registry.state import (
    ID_WATERMARK_KEY,
    RegistryState,
    SchemaVersion,
    config_key,
    encode,
    schema_key,
)
from kafkalab.registry.store import registry

# Writers racing in other processes make a write lose at most a few times in a row.
WRITE_ATTEMPTS = 5


def parsed_versions(versions: list[SchemaVersion]) -> list[tuple[int, ParsedSchema]]:
    return [(v.version, schema_parse(v.schema_type, v.schema)) for v in versions]


def schema_register(*, subject: str, schema: ParsedSchema) -> SchemaVersion:
    """Register `schema` under `subject`: the existing version if it is already there, else a
    new version (with the schema's existing id if another subject has it), if compatible."""
    store = registry()
    with store.fresh() as state:
        for _ in range(WRITE_ATTEMPTS):
            live = state.subject_versions(subject)
            for existing in live:
                if (existing.schema_type, existing.schema) == (schema.schema_type, schema.canonical):
                    return existing
            level = state.level(subject)
            problems = compatibility_problems(schema, parsed_versions(live), level=level)
            if problems:
                raise IncompatibleSchema(
                    f"Schema being registered is incompatible with an earlier schema for subject "
                    f'"{subject}" under compatibility {level}: ' + "; ".join(problems)
                )
            schema_id = state.id_of(schema.schema_type, schema.canonical) or state.max_id + 1
            record = SchemaVersion(
                subject, state.next_version(subject), schema_id, schema.schema_type, schema.canonical
            )
            key = schema_key(subject, record.version)
            store.write(key, encode(record.as_record()))
            if state.versions.get(subject, {}).get(record.version) == record:
                return record
            _restore(store, state, key, subject, record.version)
    raise StoreUnavailable(f"Could not register under {subject}: other writers kept taking its next version")


def _restore(store, state: RegistryState, key: bytes, subject: str, version: int) -> None:
    """Our record lost a race: write the key's winning value again, or a tombstone if none, so
    that compaction (which keeps the last value of a key) keeps what every reader applied."""
    winner = state.versions.get(subject, {}).get(version)
    store.write(key, encode(winner.as_record()) if winner is not None else None)


def subject_delete(*, subject: str, permanent: bool) -> list[int]:
    """Soft delete (versions hidden, ids kept), or hard delete of a soft-deleted subject."""
    store = registry()
    with store.fresh() as state:
        every = state.subject_versions(subject, deleted=True)
        if not every:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        live = [v for v in every if not v.deleted]
        if permanent:
            if live:
                raise SubjectNotSoftDeleted(
                    f"Subject '{subject}' was not deleted first before being permanently deleted"
                )
            _watermark(store, state)
            for version in every:
                store.write(schema_key(subject, version.version), None)
            if subject in state.configs:
                store.write(config_key(subject), None)
            return [v.version for v in every]
        if not live:
            raise SubjectSoftDeleted(f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently")
        for version in live:
            _soft_delete(store, version)
        return [v.version for v in live]


def version_delete(*, subject: str, version: str, permanent: bool) -> int:
    store = registry()
    with store.fresh() as state:
        found = version_find(state, subject, version, deleted=True, latest_live=not permanent)
        if permanent:
            if not found.deleted:
                raise VersionNotSoftDeleted(
                    f"Subject '{subject}' Version {found.version} was not deleted first before being permanently deleted"
                )
            _watermark(store, state)
            store.write(schema_key(subject, found.version), None)
        elif found.deleted:
            raise VersionSoftDeleted(
                f"Subject '{subject}' Version {found.version} was soft deleted. Set permanent=true to delete permanently"
            )
        else:
            _soft_delete(store, found)
        return found.version


def _soft_delete(store, version: SchemaVersion) -> None:
    deleted = SchemaVersion(version.subject, version.version, version.id, version.schema_type, version.schema, True)
    store.write(schema_key(version.subject, version.version), encode(deleted.as_record()))


def _watermark(store, state: RegistryState) -> None:
    """Before records go for good, remember the highest id given, so none is ever given again."""
    store.write(ID_WATERMARK_KEY, encode({"id": state.max_id}))


def config_set(*, subject: str | None, level: str) -> str:
    store = registry()
    with store.fresh():
        store.write(config_key(subject), encode({"compatibilityLevel": level}))
    return level


def config_delete(*, subject: str | None) -> str:
    """Forget a subject's level (it follows the global one again), or reset the global level."""
    store = registry()
    with store.fresh() as state:
        if subject is not None and subject not in state.configs:
            raise SubjectConfigNotFound(f"Subject '{subject}' does not have subject-level compatibility configured")
        previous = state.configs.get(subject, DEFAULT_LEVEL)
        if subject in state.configs:
            store.write(config_key(subject), None)
        return previous
