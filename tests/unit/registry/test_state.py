"""The registry state built from `_schemas` records: what every process agrees on."""

from __future__ import annotations

from kafkalab.registry.state import ID_WATERMARK_KEY, RegistryState, SchemaVersion, config_key, encode, schema_key


def put(state: RegistryState, version: SchemaVersion) -> None:
    state.apply(schema_key(version.subject, version.version), encode(version.as_record()))


def test_versions_ids_and_configs() -> None:
    state = RegistryState()
    put(state, SchemaVersion("a-value", 1, 1, "AVRO", '"string"'))
    put(state, SchemaVersion("b-value", 1, 1, "AVRO", '"string"'))
    state.apply(config_key("a-value"), encode({"compatibilityLevel": "FULL"}))
    assert state.subjects() == ["a-value", "b-value"]
    assert state.schema_of_id(1) == ("AVRO", '"string"')
    assert state.id_of("AVRO", '"string"') == 1
    assert (state.level("a-value"), state.level("b-value")) == ("FULL", "BACKWARD")
    state.apply(config_key("a-value"), None)
    assert state.level("a-value") == "BACKWARD"


def test_the_first_record_wins_a_race() -> None:
    state = RegistryState()
    put(state, SchemaVersion("s", 1, 1, "AVRO", '"string"'))
    put(state, SchemaVersion("s", 1, 2, "AVRO", '"int"'))  # same version, another schema: ignored
    put(state, SchemaVersion("t", 1, 1, "AVRO", '"long"'))  # same id, another schema: ignored
    assert state.versions["s"][1].schema == '"string"'
    assert "t" not in state.versions
    assert state.max_id == 1


def test_soft_delete_keeps_the_id_hard_delete_forgets_it_but_not_the_watermark() -> None:
    state = RegistryState()
    put(state, SchemaVersion("s", 1, 5, "AVRO", '"string"'))
    put(state, SchemaVersion("s", 1, 5, "AVRO", '"string"', deleted=True))
    assert state.subjects() == [] and state.subjects(deleted=True) == ["s"]
    assert state.schema_of_id(5) is not None
    state.apply(ID_WATERMARK_KEY, encode({"id": 5}))
    state.apply(schema_key("s", 1), None)
    assert state.schema_of_id(5) is None and state.subjects(deleted=True) == []

    rebuilt = RegistryState()  # after compaction only the watermark remains
    rebuilt.apply(ID_WATERMARK_KEY, encode({"id": 5}))
    assert rebuilt.max_id == 5


def test_foreign_or_broken_records_are_ignored() -> None:
    state = RegistryState()
    for key, value in [
        (None, b"{}"),
        (b"not json", b"{}"),
        (b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', b"not json"),
        (b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', b'{"subject":"s","version":1,"id":"x"}'),
        (b'{"keytype":"NOOP","magic":0}', b"{}"),
        (b'{"keytype":"CONFIG","subject":null,"magic":0}', b'{"compatibilityLevel":"SIDEWAYS"}'),
    ]:
        state.apply(key, value)
    assert state.versions == {} and state.global_level() == "BACKWARD"
