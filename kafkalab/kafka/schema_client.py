"""The app's way to the schema registry: confluent-kafka's own SchemaRegistryClient and its Avro
and JSON Schema serializers, one client per registry URL.

Nothing here knows which registry it talks to (the embedded one under the app's /registry, or
Confluent's when SCHEMA_REGISTRY_URL names it): only the REST API is used, so either works.
Errors come out as two kinds: the registry answered no (RegistryRefused, with its status, error
code and message), or it could not be asked (RegistryUnavailable).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroSerializer

# The HTTP library the client itself uses (httpx2, or httpx on older Pythons): its transport errors.
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from kafkalab.kafka import readers

# A registry that is down should be reported in about a second, not after the client's default
# three retries with up to 20 s of backoff; one retry still covers a dropped connection.
CLIENT_CONFIG = {"max.retries": 1, "retries.wait.ms": 100, "retries.max.wait.ms": 500, "timeout": 10}
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_CONFIG_NOT_FOUND = 40408


class RegistryUnavailable(Exception):
    """The registry could not be asked (connection refused, timeout, or a 5xx answer)."""


class RegistryRefused(Exception):
    """The registry answered with an error: `status` (409, 422, 404…) and its own code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RegisteredVersion:
    subject: str
    version: int
    schema_id: int
    schema_type: str
    schema: str


@dataclass(frozen=True)
class CompatibilityAnswer:
    compatible: bool
    messages: list[str]


_clients: dict[str, SchemaRegistryClient] = {}
_clients_lock = threading.Lock()


def registry_client(url: str) -> SchemaRegistryClient:
    """One client per registry URL and process: it caches ids and schemas, and holds a connection pool."""
    with _clients_lock:
        if url not in _clients:
            _clients[url] = SchemaRegistryClient({"url": url, **CLIENT_CONFIG})
        return _clients[url]


class SerializeFailed(ValueError):
    """The payload could not be written with the schema (not a registry problem)."""


def _without_credentials(url: str) -> str:
    """The URL as a message may show it: a lab's credentials in it stay out of the page."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@contextlib.contextmanager
def _asking(url: str) -> Iterator[None]:
    """Turn the client's errors into RegistryRefused / RegistryUnavailable."""
    url = _without_credentials(url)
    try:
        yield
    except SerializeFailed:
        raise
    except SchemaRegistryError as exc:
        if exc.http_status_code >= 500 or exc.http_status_code < 0:
            raise RegistryUnavailable(f"The schema registry at {url} failed: {exc.error_message}") from exc
        raise RegistryRefused(exc.http_status_code, exc.error_code, exc.error_message) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise RegistryUnavailable(
            f"The schema registry at {url} did not answer ({exc or type(exc).__name__})."
        ) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Something answered, but not as a registry does (an HTML page, say): SCHEMA_REGISTRY_URL may be wrong.
        raise RegistryUnavailable(f"{url} did not answer as a schema registry does ({exc}).") from exc


def schema_register(url: str, subject: str, schema_type: str, text: str) -> RegisteredVersion:
    """Register `text` under `subject` (or find it there): its id and version. RegistryRefused 409
    when the subject's compatibility level refuses it, 422 when the registry finds it invalid."""
    client = registry_client(url)
    schema = Schema(text, schema_type)
    with _asking(url):
        client.register_schema(subject, schema)
        # Confluent's registry answers a registration with the id alone; the lookup gives the version too.
        found = client.lookup_schema(subject, schema)
    return RegisteredVersion(subject, found.version, found.schema_id, schema_type, found.schema.schema_str or text)


def compatibility_check(url: str, subject: str, schema_type: str, text: str) -> CompatibilityAnswer:
    """Would the registry accept `text` under `subject` now, and if not, why? Asked of the
    registry's own check against the versions the subject's level compares with."""
    client = registry_client(url)
    # SchemaRegistryClient.test_compatibility_all_versions returns the verdict alone, without the
    # registry's reasons, so the same request goes through the client's REST layer with verbose on.
    path = f"compatibility/subjects/{quote(subject, safe='')}/versions?verbose=true"
    with _asking(url):
        try:
            answer = client._rest_client.post(path, body=Schema(text, schema_type).to_dict())
        except SchemaRegistryError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return CompatibilityAnswer(True, ["The subject has no version yet: there is nothing to compare with."])
            raise
    return CompatibilityAnswer(bool(answer.get("is_compatible")), [str(m) for m in answer.get("messages") or []])


def subject_versions(url: str, subject: str) -> list[RegisteredVersion]:
    """Every live version of `subject`, oldest first; empty when the subject does not exist."""
    client = registry_client(url)
    with _asking(url):
        try:
            numbers = client.get_versions(subject)
        except SchemaRegistryError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return []
            raise
        found = [client.get_version(subject, number) for number in numbers]
    return [
        RegisteredVersion(subject, v.version, v.schema_id, v.schema.schema_type or readers.AVRO, v.schema.schema_str)
        for v in found
    ]


def compatibility_get(url: str, subject: str) -> tuple[str, bool]:
    """(level, whether the subject has a level of its own) — else the registry's global level applies."""
    client = registry_client(url)
    with _asking(url):
        try:
            return client.get_compatibility(subject), True
        except SchemaRegistryError as exc:
            if exc.error_code not in (SUBJECT_CONFIG_NOT_FOUND, SUBJECT_NOT_FOUND):
                raise
        return client.get_compatibility(), False


def compatibility_set(url: str, subject: str, level: str) -> str:
    """Set the subject's own level (never the global one)."""
    client = registry_client(url)
    with _asking(url):
        answer = client.set_compatibility(subject_name=subject, level=level)
    return answer.get("compatibility", level) if isinstance(answer, dict) else level


def subject_forget(url: str, subject: str) -> bool:
    """Delete the subject for good: a soft delete, then the permanent one Confluent allows only
    after it. False when there was nothing to delete."""
    client = registry_client(url)
    deleted = False
    with _asking(url):
        for permanent in (False, True):
            try:
                client.delete_subject(subject, permanent=permanent)
                deleted = True
            except SchemaRegistryError as exc:
                # Nothing live to soft-delete (already soft-deleted), or nothing left at all.
                if exc.error_code not in (SUBJECT_NOT_FOUND, 40404, 40405):
                    raise
        # Its own compatibility level goes too, so a lab reset starts from the registry's default.
        try:
            client.delete_config(subject)
        except SchemaRegistryError as exc:
            if exc.error_code not in (SUBJECT_CONFIG_NOT_FOUND, SUBJECT_NOT_FOUND):
                raise
    client.clear_caches()
    return deleted


def versions_of_id(url: str, schema_id: int) -> list[tuple[str, int]]:
    """(subject, version) of every subject that registered the schema with this id."""
    client = registry_client(url)
    with _asking(url):
        return [(v.subject, v.version) for v in client.get_schema_versions(schema_id)]


# --- Serializers -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _serializer(url: str, schema_type: str, text: str, schema_id: int | None):
    """One serializer per schema: it looks the schema's id up once and caches it. The id is in the
    key because a subject deleted and registered again may give the same schema another id."""
    # The learner registers schemas explicitly: a serializer only looks up the id of one that is there.
    config = {"auto.register.schemas": False}
    if schema_type == readers.AVRO:
        return AvroSerializer(registry_client(url), text, conf=config)
    return JSONSerializer(text, registry_client(url), conf=config)


def serialize(url: str, *, topic: str, schema_type: str, text: str, schema_id: int | None, payload: dict) -> bytes:
    """`payload` in Confluent's wire format, written with the registered schema `text`."""
    serializer = _serializer(url, schema_type, text, schema_id)
    with _asking(url):
        try:
            return serializer(payload, SerializationContext(topic, MessageField.VALUE))
        except (SerializationError, ValueError, TypeError) as exc:
            raise SerializeFailed(str(exc)) from exc
