"""OrderService's contract: its encoding, the schema it writes with, and changes to that schema.

The registry has its say before anything is written: a schema becomes the lab's writer schema
only once the registry accepted it, and a refused one leaves the lab as it was. Every call to the
registry goes through confluent-kafka's client (kafkalab.kafka.schema_client), on the lab's behalf
(kafkalab.registry.registry_url_for_lab: with its credentials, which a classroom's registry asks
for), so SCHEMA_REGISTRY_URL switches to another registry with no other change.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kafkalab.kafka import contracts, schema_client
from kafkalab.kafka.contracts import ContractError, Encoding, ReaderVerdict
from kafkalab.kafka.schema_client import RegistryRefused, RegistryUnavailable, SerializeFailed
from kafkalab.labs import contract_selectors, events
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab
from kafkalab.registry import is_embedded, lab_events, registry_url_for_lab

# Previews build their sample order from one seed, so the same change always shows the same order.
PREVIEW_SEED = 9
CONTENT_TYPES = {
    Encoding.PLAIN_JSON: "application/json",
    # Confluent's REST Proxy names for records in the registry's wire format.
    Encoding.JSON_SCHEMA: "application/vnd.kafka.jsonschema.v2+json",
    Encoding.AVRO: "application/vnd.kafka.avro.v2+json",
}


class ContractInvalid(LabError):
    """A schema OrderService can't write with, or a level that does not exist: nothing changed."""


class ContractRefused(LabError):
    """The registry refused the schema (409 incompatible, 422 invalid); nothing changed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- Writing orders under the contract ----------------------------------------------------------


def order_writer(*, lab: Lab) -> Callable[[dict], bytes]:
    """value(payload) for OrderCreated bodies (version 1 facts) under the lab's current contract;
    built once per request, so a burst parses its schema once. Raises LabError when an order
    can't be written (the registry is down or no longer knows the schema): nothing is sent then."""
    encoding = Encoding(lab.encoding)
    if encoding == Encoding.PLAIN_JSON and not lab.writer_schema:
        return events.encode  # version 1, byte for byte as before contracts existed
    schema = json.loads(lab.writer_schema_text)

    def plain(payload: dict) -> bytes:
        return contracts.json_bytes(contracts.payload_shape(encoding, schema, payload))

    def framed(payload: dict) -> bytes:
        shaped = contracts.payload_shape(encoding, schema, payload)
        return _serialize(lab, encoding, shaped)

    return plain if encoding == Encoding.PLAIN_JSON else framed


def _serialize(lab: Lab, encoding: Encoding, payload: dict) -> bytes:
    try:
        return schema_client.serialize(
            registry_url_for_lab(lab.pk),
            topic=lab.orders_topic,
            schema_type=encoding.schema_type,
            text=lab.writer_schema_text,
            schema_id=lab.writer_schema_id,
            payload=payload,
        )
    except RegistryUnavailable as exc:
        raise LabError(f"{exc} OrderService needs it to write {encoding.label}; nothing was written.") from exc
    except RegistryRefused as exc:
        raise LabError(
            f"The registry does not know OrderService's schema under {lab.value_subject} ({exc.message}). "
            "Was the subject deleted? Switch the encoding again to register version 1. Nothing was written."
        ) from exc
    except SerializeFailed as exc:
        raise LabError(f"OrderService could not write this order with its schema: {exc}. Nothing was written.") from exc


def order_headers(*, lab: Lab, event_type: str) -> list[tuple[str, bytes]]:
    return events.headers_for(event_type, content_type=CONTENT_TYPES[Encoding(lab.encoding)])


def lifecycle_refusal(*, lab: Lab, event_type: str) -> str | None:
    """Why `event_type` can't be written under the lab's encoding, or None when it can."""
    encoding = Encoding(lab.encoding)
    if not encoding.uses_registry:
        return None
    return (
        f"{event_type} can't be written in {encoding.label}: with the topic name strategy the topic has one "
        f"subject, {lab.value_subject}, and it holds OrderCreated's schema; an {event_type} is another record. "
        "Real systems give each event type a subject of its own (RecordNameStrategy) or put them in one union. "
        "Switch OrderService to plain JSON to send lifecycle events."
    )


# --- The encoding lever ---------------------------------------------------------------------


def contract_encoding_set(*, lab: Lab, encoding: Encoding) -> str:
    """Switch OrderService to `encoding`, writing version 1: registered (or found) under the lab's
    subject for a registry encoding. The lab changes only once the registry accepted it."""
    text = contracts.schema_text(contracts.v1_schema(encoding))
    if not encoding.uses_registry:
        _writer_set(lab, encoding=encoding, text="", schema_id=None, version=None)
        return "OrderService writes plain JSON again: version 1, no schema id, no registry."
    try:
        registered = _register(lab, encoding, text)
    except RegistryUnavailable as exc:
        raise LabError(f"{exc} OrderService still writes {Encoding(lab.encoding).label}.") from exc
    except RegistryRefused as exc:
        raise ContractRefused(exc.status, _switch_refusal(lab, encoding, exc)) from exc
    _writer_set(lab, encoding=encoding, text=text, schema_id=registered.schema_id, version=registered.version)
    return (
        f"OrderService writes {encoding.label} now: version {registered.version} of {lab.value_subject}, "
        f"schema id {registered.schema_id}. Each record starts with the magic byte 0 and that id."
    )


def _switch_refusal(lab: Lab, encoding: Encoding, exc: RegistryRefused) -> str:
    text = f"The registry refused version 1 under {lab.value_subject} ({exc.status}): {exc.message}"
    if exc.status == 409:
        text += (
            f" A subject holds one kind of schema: this one already has versions in another language than "
            f"{encoding.language}. Reset the lab to start the subject afresh, or set its compatibility to NONE."
        )
    return text + f" OrderService still writes {Encoding(lab.encoding).label}."


def _writer_set(lab: Lab, *, encoding: Encoding, text: str, schema_id: int | None, version: int | None) -> None:
    lab.encoding, lab.writer_schema, lab.writer_schema_id, lab.writer_version = encoding, text, schema_id, version
    Lab.objects.filter(pk=lab.pk).update(
        encoding=encoding, writer_schema=text, writer_schema_id=schema_id, writer_version=version
    )


# --- Changes, previewed -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryVerdict:
    """What the registry says of a candidate schema now: under which level, and why not."""

    used: bool  # False for plain JSON: no registry checks anything
    compatible: bool | None = None
    level: str = ""
    level_is_subjects_own: bool = False
    meaning: str = ""
    messages: list[str] = field(default_factory=list)
    error: str = ""  # the registry could not be asked


@dataclass(frozen=True)
class ContractPreview:
    encoding: Encoding
    schema_text: str
    change: contracts.Change | None
    sample: str  # the order OrderService would write, as JSON
    readers: list[ReaderVerdict]
    registry: RegistryVerdict

    @property
    def failing_readers(self) -> list[str]:
        return [verdict.reader for verdict in self.readers if not verdict.reads]


def contract_preview(*, lab: Lab, text: str | None = None, change: str | None = None) -> ContractPreview:
    """What `text` (or the one-click `change` to the current schema) would do, before anything is
    sent: to each reader (computed offline) and at the registry (its own compatibility check)."""
    encoding = Encoding(lab.encoding)
    chosen = contracts.CHANGES.get(change or "")
    try:
        if change is not None:
            schema = contracts.change_apply(encoding, contracts.schema_load(encoding, lab.writer_schema_text), change)
            text = contracts.schema_text(schema)
        else:
            schema = contracts.schema_load(encoding, text or "")
        payload, verdicts = _sample_verdicts(encoding, schema)
        in_use = _sample_verdicts(encoding, contracts.schema_load(encoding, lab.writer_schema_text))[1]
    except ContractError as exc:
        raise ContractInvalid(str(exc)) from exc
    return ContractPreview(
        encoding=encoding,
        schema_text=text,
        change=chosen,
        sample=json.dumps(payload, indent=2, default=str, ensure_ascii=False),
        readers=contracts.verdicts_against(in_use, verdicts),
        registry=_registry_verdict(lab, encoding, text),
    )


def _sample_verdicts(encoding: Encoding, schema: dict) -> tuple[dict, list[contracts.ReaderVerdict]]:
    """A sample order written with `schema`, and what each reader makes of it (offline)."""
    payload = contracts.payload_shape(encoding, schema, events.sample_order(random.Random(PREVIEW_SEED)))
    value = contracts.encode_offline(encoding, schema, payload)
    return payload, contracts.reader_verdicts(value, contracts.offline_lookup(encoding, schema))


def _registry_verdict(lab: Lab, encoding: Encoding, text: str) -> RegistryVerdict:
    if not encoding.uses_registry:
        return RegistryVerdict(used=False)
    url = registry_url_for_lab(lab.pk)
    try:
        level, own = schema_client.compatibility_get(url, lab.value_subject)
        answer = schema_client.compatibility_check(url, lab.value_subject, encoding.schema_type, text)
    except RegistryUnavailable as exc:
        return RegistryVerdict(used=True, error=str(exc))
    except RegistryRefused as exc:  # 422: the registry finds the schema itself invalid
        return RegistryVerdict(used=True, compatible=False, messages=[f"{exc.status}: {exc.message}"])
    return RegistryVerdict(
        used=True,
        compatible=answer.compatible,
        level=level,
        level_is_subjects_own=own,
        meaning=contracts.LEVEL_MEANINGS.get(level, ""),
        messages=answer.messages,
    )


# --- Register and use ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractUsed:
    encoding: Encoding
    version: int | None  # None for plain JSON (nothing registered)
    schema_id: int | None
    previous_version: int | None


def contract_use(*, lab: Lab, text: str) -> ContractUsed:
    """Make `text` OrderService's writer schema: registered first for a registry encoding (a
    refusal raises ContractRefused and changes nothing), then used for every order."""
    encoding = Encoding(lab.encoding)
    try:
        schema = contracts.schema_load(encoding, text)
        # A schema OrderService can't write an order with is refused before the registry sees it.
        payload = contracts.payload_shape(encoding, schema, events.sample_order(random.Random(PREVIEW_SEED)))
        contracts.encode_offline(encoding, schema, payload)
    except ContractError as exc:
        raise ContractInvalid(str(exc)) from exc
    previous = lab.writer_version
    if not encoding.uses_registry:
        _writer_set(lab, encoding=encoding, text=text, schema_id=None, version=None)
        return ContractUsed(encoding, None, None, previous)
    try:
        registered = _register(lab, encoding, text)
    except RegistryUnavailable as exc:
        raise LabError(f"{exc} Nothing was registered; OrderService still writes version {previous}.") from exc
    except RegistryRefused as exc:
        raise ContractRefused(exc.status, exc.message) from exc
    _writer_set(lab, encoding=encoding, text=text, schema_id=registered.schema_id, version=registered.version)
    return ContractUsed(encoding, registered.version, registered.schema_id, previous)


# --- Compatibility level, and forgetting the subject ------------------------------------------


def _register(lab: Lab, encoding: Encoding, text: str) -> schema_client.RegisteredVersion:
    url = registry_url_for_lab(lab.pk)
    try:
        registered = schema_client.schema_register(url, lab.value_subject, encoding.schema_type, text)
    except RegistryRefused as exc:
        if exc.status == 409:
            _announce(lab, "refused", message=exc.message, level=_level_or_none(url, lab.value_subject))
        raise
    _announce(lab, "registered", version=registered.version, schema_id=registered.schema_id)
    return registered


def _announce(lab: Lab, action: str, **fields: object) -> None:
    """The embedded registry tells the lab's runner what it did itself (for any client); another
    registry can't, so the app tells it what that registry answered the app."""
    contract_selectors.registry_subject_changed(lab.value_subject)
    if not is_embedded():
        lab_events.announce(lab.value_subject, action, **fields)


def _level_or_none(url: str, subject: str) -> str | None:
    try:
        return schema_client.compatibility_get(url, subject)[0]
    except (RegistryUnavailable, RegistryRefused):
        return None


def contract_compatibility_set(*, lab: Lab, level: str) -> str:
    """Set the lab subject's own compatibility level (the global one is left alone)."""
    parsed = contracts.level_parse(level)
    if parsed is None:
        raise ContractInvalid(
            f"{str(level)[:40]!r} is not a compatibility level. The registry knows: {', '.join(contracts.LEVELS)}."
        )
    try:
        schema_client.compatibility_set(registry_url_for_lab(lab.pk), lab.value_subject, parsed)
        _announce(lab, "level", level=parsed)
    except RegistryUnavailable as exc:
        raise LabError(f"{exc} The level was not changed.") from exc
    except RegistryRefused as exc:
        raise ContractInvalid(f"The registry refused the level ({exc.status}): {exc.message}") from exc
    return f"{lab.value_subject} now checks new versions under {parsed}. {contracts.LEVEL_MEANINGS[parsed]}"


def contract_forget(*, lab: Lab) -> str | None:
    """On a reset or expiry: OrderService goes back to plain JSON version 1, and the lab's subject
    is deleted for good. Returns what could not be done (the registry down), or None."""
    _writer_set(lab, encoding=Encoding.PLAIN_JSON, text="", schema_id=None, version=None)
    contract_selectors.registry_subject_changed(lab.value_subject)
    try:
        schema_client.subject_forget(registry_url_for_lab(lab.pk), lab.value_subject)
    except (RegistryUnavailable, RegistryRefused) as exc:
        return (
            f"The registry's subject {lab.value_subject} was not deleted ({exc}); OrderService writes plain JSON again."
        )
    return None
