"""Reads of the registry, each on the state as of every write made so far."""

from __future__ import annotations

from kafkalab.registry.compatibility import compatibility_problems
from kafkalab.registry.errors import (
    InvalidVersion,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from kafkalab.registry.schemas import ParsedSchema, schema_parse
from kafkalab.registry.state import RegistryState, SchemaVersion
from kafkalab.registry.store import registry


def version_number(text: str) -> int | None:
    """The version a path names: a positive number, or None for "latest" (and -1, its alias)."""
    if text == "latest":
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number == -1:
        return None
    if not 1 <= number <= 2**31 - 1:
        raise InvalidVersion(
            f"The specified version '{text}' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"'
        )
    return number


def version_find(
    state: RegistryState, subject: str, version: str, *, deleted: bool = False, latest_live: bool = True
) -> SchemaVersion:
    """One version of a subject; "latest" is the newest not deleted (unless `latest_live` is off)."""
    number = version_number(version)
    every = state.subject_versions(subject, deleted=True)
    if not every or (not deleted and all(v.deleted for v in every)):
        raise SubjectNotFound(f"Subject '{subject}' not found.")
    if number is None:
        candidates = [v for v in every if not v.deleted] if latest_live else every
        if not candidates:
            raise VersionNotFound(f"Version latest not found for subject '{subject}'.")
        return candidates[-1]
    found = state.versions.get(subject, {}).get(number)
    if found is None or (found.deleted and not deleted):
        raise VersionNotFound(f"Version {number} not found.")
    return found


def version_get(*, subject: str, version: str, deleted: bool = False) -> SchemaVersion:
    with registry().fresh() as state:
        return version_find(state, subject, version, deleted=deleted)


def subject_list(*, deleted: bool = False, prefix: str = "") -> list[str]:
    with registry().fresh() as state:
        return [s for s in state.subjects(deleted=deleted) if s.startswith(prefix)]


def subject_version_numbers(*, subject: str, deleted: bool = False) -> list[int]:
    with registry().fresh() as state:
        found = state.subject_versions(subject, deleted=deleted)
        if not found:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        return [v.version for v in found]


def schema_lookup(*, subject: str, schema: ParsedSchema, deleted: bool = False) -> SchemaVersion:
    """The version of `subject` that holds `schema`."""
    with registry().fresh() as state:
        every = state.subject_versions(subject, deleted=True)
        if not every or (not deleted and all(v.deleted for v in every)):
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        for version in reversed(state.subject_versions(subject, deleted=deleted)):
            if (version.schema_type, version.schema) == (schema.schema_type, schema.canonical):
                return version
        raise SchemaNotFound("Schema not found")


def schema_by_id(*, schema_id: int) -> tuple[str, str]:
    """(schema type, schema) of a global id."""
    with registry().fresh() as state:
        found = state.schema_of_id(schema_id)
        if found is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return found


def schema_id_versions(*, schema_id: int, deleted: bool = False) -> list[SchemaVersion]:
    with registry().fresh() as state:
        if state.schema_of_id(schema_id) is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return [v for v in state.users_of_id(schema_id) if deleted or not v.deleted]


def compatibility_level(*, subject: str | None, default_to_global: bool = False) -> str:
    with registry().fresh() as state:
        if subject is None:
            return state.global_level()
        if subject in state.configs:
            return state.configs[subject]
        if default_to_global:
            return state.global_level()
        raise SubjectConfigNotFound(f"Subject '{subject}' does not have subject-level compatibility configured")


def compatibility_check(*, subject: str, version: str | None, schema: ParsedSchema) -> list[str]:
    """Why `schema` is not compatible with one version (or, version None, with those the
    subject's level checks); an empty list when it is."""
    with registry().fresh() as state:
        level = state.level(subject)
        if version is None:
            live = state.subject_versions(subject)
            return compatibility_problems(
                schema, [(v.version, schema_parse(v.schema_type, v.schema)) for v in live], level=level
            )
        found = version_find(state, subject, version)
        against = [(found.version, schema_parse(found.schema_type, found.schema))]
        return compatibility_problems(schema, against, level=level, whole_history=True)


def subject_summary(*, subject: str, max_age: float) -> tuple[list[SchemaVersion], str, bool]:
    """A subject's live versions, its compatibility level and whether that level is its own,
    from this process's copy of the registry read at most `max_age` seconds ago (no HTTP)."""
    with registry().recent(max_age) as state:
        return state.subject_versions(subject), state.level(subject), subject in state.configs
