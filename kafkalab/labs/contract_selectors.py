"""Reading a lab's contract: its registry subject (versions, diff, level), state.json's
`schema_registry` block, and what the inspector says about one record's encoding.

Every answer holds the registry's failure as text rather than raising it: a registry that is
down makes the panel, state.json and the inspector say so, never fail.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

from kafkalab.kafka import contracts, readers, schema_client
from kafkalab.kafka.contracts import DiffLine, Encoding, ReaderVerdict, WireFormat
from kafkalab.kafka.schema_client import RegisteredVersion, RegistryRefused, RegistryUnavailable
from kafkalab.kafka.schema_lookup import asked_once, registry_lookup
from kafkalab.labs import events, records
from kafkalab.labs.models import Lab
from kafkalab.registry import is_embedded, registry_url
from kafkalab.registry import selectors as registry_selectors
from kafkalab.registry.errors import StoreUnavailable

ENCODING_LABELS = {e.value: e.label for e in Encoding}


def editor_context(*, lab: Lab) -> dict:
    """What the schema editor shows: the writer schema in its language, and the one-click changes."""
    return {
        "encoding": Encoding(lab.encoding),
        "schema_text": lab.writer_schema_text,
        "changes": list(contracts.CHANGES.values()),
    }


@dataclass(frozen=True)
class SubjectView:
    url: str  # the registry as a learner's own client reaches it
    subject: str
    versions: list[RegisteredVersion] = field(default_factory=list)
    level: str = ""
    level_is_subjects_own: bool = False
    error: str = ""

    @property
    def meaning(self) -> str:
        return contracts.LEVEL_MEANINGS.get(self.level, "")

    def version(self, number: int | None) -> RegisteredVersion | None:
        return next((v for v in self.versions if v.version == number), None)


def registry_subject(*, lab: Lab, client_url: str) -> SubjectView:
    """The lab's subject as the registry holds it now."""
    url, subject = registry_url(), lab.value_subject
    try:
        versions = schema_client.subject_versions(url, subject)
        level, own = schema_client.compatibility_get(url, subject)
    except RegistryUnavailable as exc:
        return SubjectView(client_url, subject, error=str(exc))
    except RegistryRefused as exc:
        return SubjectView(client_url, subject, error=f"The registry answered {exc.status}: {exc.message}")
    return SubjectView(client_url, subject, versions, level, own)


@dataclass(frozen=True)
class VersionDiff:
    old: RegisteredVersion
    new: RegisteredVersion
    lines: list[DiffLine]


def version_diff(view: SubjectView, old: int | None, new: int | None) -> VersionDiff | None:
    """A line diff between two versions of the subject (by default the last two)."""
    if len(view.versions) < 2 and (old is None or new is None):
        return None
    older = view.version(old) if old is not None else view.versions[-2]
    newer = view.version(new) if new is not None else view.versions[-1]
    if older is None or newer is None:
        return None
    return VersionDiff(older, newer, contracts.schema_diff(older.schema, newer.schema))


# state.json is polled (tools, tests, a dashboard): its registry block is asked of the registry
# at most once a second per lab and process, and forgotten at once when this process changes it.
SUBJECT_FRESH_SECONDS = 1.0
SUBJECTS_REMEMBERED = 1000
_recent_subjects: dict[tuple[str, str], tuple[float, SubjectView]] = {}


def _recent_subject(*, lab: Lab, client_url: str) -> SubjectView:
    key = (client_url, lab.value_subject)
    found = _recent_subjects.get(key)
    if found is not None and time.monotonic() - found[0] < SUBJECT_FRESH_SECONDS:
        return found[1]
    view = _embedded_subject(lab, client_url) if is_embedded() else registry_subject(lab=lab, client_url=client_url)
    if len(_recent_subjects) >= SUBJECTS_REMEMBERED:
        _recent_subjects.clear()
    _recent_subjects[key] = (time.monotonic(), view)
    return view


def _embedded_subject(lab: Lab, client_url: str) -> SubjectView:
    """The embedded registry lives in this process: read its copy, rather than ask it over HTTP
    three times (versions, the subject's level, the global one) for every state.json."""
    try:
        found, level, own = registry_selectors.subject_summary(subject=lab.value_subject, max_age=SUBJECT_FRESH_SECONDS)
    except StoreUnavailable as exc:
        return SubjectView(client_url, lab.value_subject, error=exc.message)
    versions = [RegisteredVersion(v.subject, v.version, v.id, v.schema_type, v.schema) for v in found]
    return SubjectView(client_url, lab.value_subject, versions, level, own)


def registry_subject_changed(subject: str) -> None:
    """This process changed `subject`: the next state.json asks the registry again."""
    for key in [key for key in _recent_subjects if key[1] == subject]:
        _recent_subjects.pop(key, None)


def registry_state(*, lab_id: int, client_url: str) -> dict:
    """state.json's `schema_registry`: where it is, and the lab's subject with its versions and level."""
    lab = Lab.objects.filter(pk=lab_id).first() or Lab(pk=lab_id)
    block: dict = {
        "url": client_url,
        "writer": {
            "encoding": lab.encoding,
            "subject": lab.value_subject if Encoding(lab.encoding).uses_registry else None,
            "version": lab.writer_version,
            "schema_id": lab.writer_schema_id,
        },
        "subjects": [],
    }
    view = _recent_subject(lab=lab, client_url=client_url)
    if view.error:
        block["error"] = view.error
    elif view.versions or view.level_is_subjects_own:
        block["subjects"].append(
            {
                "subject": view.subject,
                "versions": [v.version for v in view.versions],
                "schema_ids": [v.schema_id for v in view.versions],
                "schema_type": view.versions[-1].schema_type if view.versions else None,
                "compatibility": view.level,
                "compatibility_is_subjects_own": view.level_is_subjects_own,
            }
        )
    return block


# --- The inspector ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordContract:
    """One record as the contract sees it."""

    encoding: str  # plain JSON, Avro, JSON Schema or not decodable
    decodable: bool
    wire: WireFormat | None
    schema_id: int | None = None
    subject_versions: list[tuple[str, int]] = field(default_factory=list)
    decoded: str = ""  # the value as its writer wrote it, as JSON
    why_not: str = ""  # why it can't be decoded at all
    registry_note: str = ""  # the registry could not say which subject and version
    readers: list[ReaderVerdict] = field(default_factory=list)

    @property
    def some_reader_fails(self) -> bool:
        return any(not verdict.reads for verdict in self.readers)


def event_type_header(headers) -> str | None:
    """The record's event-type header, as the readers take it (None without one)."""
    for name, raw in headers or ():
        if name == events.EVENT_TYPE_HEADER and raw:
            return raw[: events.EVENT_TYPE_CHARS * 4].decode("utf-8", errors="replace")
    return None


def record_contract(*, value: bytes | None, event_type: str | None, subject: str) -> RecordContract:
    """Encoding, schema id, subject and version, decoded value, wire bytes, and each reader's verdict.
    `subject` is the lab's: the same schema registered by other labs shares its id, and only when
    the lab's subject does not hold it are the others named."""
    url = registry_url()
    lookup = asked_once(registry_lookup(url))
    verdicts = contracts.reader_verdicts(value, lookup, event_type=event_type)
    wire = contracts.wire_format(value)
    try:
        decoded = readers.decode(value, lookup)
    except readers.ReadFailure as failure:
        schema_id = readers.schema_id_of(value)
        return RecordContract("not decodable", False, wire, schema_id, why_not=failure.message, readers=verdicts)
    shown = records.display_text(
        json.dumps(decoded.value, indent=2, ensure_ascii=False, default=str).encode(),
        limit=records.INSPECTOR_VALUE_BYTES,
    )
    found = RecordContract(
        ENCODING_LABELS[decoded.encoding], True, wire, decoded.schema_id, decoded=shown, readers=verdicts
    )
    if decoded.schema_id is None:
        return found
    try:
        users = schema_client.versions_of_id(url, decoded.schema_id)
    except (RegistryUnavailable, RegistryRefused) as exc:
        return dataclasses.replace(found, registry_note=str(exc))
    own = [(name, version) for name, version in users if name == subject]
    return dataclasses.replace(found, subject_versions=own or users)
