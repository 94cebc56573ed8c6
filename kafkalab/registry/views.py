"""Confluent Schema Registry's REST API, as confluent-kafka's SchemaRegistryClient calls it.

Thin views: parse the request, call a selector or service, answer JSON with Confluent's content
type. Every failure is a RegistryError, answered as `{"error_code", "message"}`; none is a 500.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from kafkalab.labs.concurrency import registry_view
from kafkalab.registry import lab_events, selectors, services
from kafkalab.registry.compatibility import LEVELS, level_parse
from kafkalab.registry.errors import (
    BadRequest,
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    RegistryError,
    SchemaNotFound,
    WriteForbidden,
)
from kafkalab.registry.permissions import write_allowed
from kafkalab.registry.schemas import SCHEMA_TYPES, ParsedSchema, schema_parse
from kafkalab.registry.state import SchemaVersion

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_SUBJECT_LENGTH = 255


def respond(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data), status=status, content_type=CONTENT_TYPE)


def error_response(status: int, error_code: int, message: str) -> HttpResponse:
    return respond({"error_code": error_code, "message": message}, status=status)


def registry_api(*methods: str):
    """CSRF-exempt (an API, not a form), run in the registry's own pool, errors as Confluent's."""

    def decorate(view):
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                return error_response(405, 405, "HTTP 405 Method Not Allowed")
            subject = kwargs.get("subject")
            if subject is not None and (len(subject) > MAX_SUBJECT_LENGTH or not subject.isprintable()):
                return error_response(422, 42208, "Invalid subject: at most 255 printable characters")
            try:
                return view(request, *args, **kwargs)
            except RegistryError as exc:
                response = error_response(exc.status, exc.error_code, exc.message)
                if exc.status == 401:
                    response["WWW-Authenticate"] = 'Basic realm="kafkalab schema registry"'
                return response

        return csrf_exempt(registry_view(guarded))

    return decorate


# --- request parts ---------------------------------------------------------------------------
def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "").strip().lower() in {"true", "1", "yes"}


def _body(request: HttpRequest) -> dict:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > settings.SCHEMA_REGISTRY_MAX_REQUEST_BYTES:
        raise _TooLarge()
    raw = request.read(settings.SCHEMA_REGISTRY_MAX_REQUEST_BYTES + 1)
    if len(raw) > settings.SCHEMA_REGISTRY_MAX_REQUEST_BYTES:
        raise _TooLarge()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"The request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    return body


class _TooLarge(RegistryError):
    status, error_code = 413, 413

    def __init__(self) -> None:
        super().__init__(f"Request too large: at most {settings.SCHEMA_REGISTRY_MAX_REQUEST_BYTES} bytes")


def _schema(request: HttpRequest) -> ParsedSchema:
    body = _body(request)
    if body.get("references"):
        raise InvalidSchema("Invalid schema: schema references are not supported by this registry")
    schema_type = body.get("schemaType") or "AVRO"
    if not isinstance(schema_type, str):
        raise InvalidSchema("Invalid schema: 'schemaType' must be a string")
    return schema_parse(schema_type, body.get("schema"))


def _schema_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise SchemaNotFound(f"Schema {text} not found")
    return int(text)


def _check_write(request: HttpRequest, subject: str | None) -> None:
    if not write_allowed(request, subject):
        raise WriteForbidden("You may not change this subject")


def _registered(version: SchemaVersion) -> dict[str, object]:
    found: dict[str, object] = {"subject": version.subject, "version": version.version, "id": version.id}
    if version.schema_type != "AVRO":
        found["schemaType"] = version.schema_type
    found["schema"] = version.schema
    return found


def _level(body: dict) -> str:
    raw = body.get("compatibility", body.get("compatibilityLevel"))
    level = level_parse(raw)
    if level is None:
        raise InvalidCompatibilityLevel(
            f"Invalid compatibility level {raw!r}. Valid values are {', '.join(level.lower() for level in LEVELS)}"
        )
    return level


# --- endpoints -------------------------------------------------------------------------------
@registry_api("GET")
def root(request: HttpRequest) -> HttpResponse:
    return respond({})


@registry_api("GET")
def subjects(request: HttpRequest) -> HttpResponse:
    deleted = _flag(request, "deleted") or _flag(request, "deletedOnly")
    found = selectors.subject_list(deleted=deleted, prefix=request.GET.get("subjectPrefix", ""))
    if _flag(request, "deletedOnly"):
        live = set(selectors.subject_list())
        found = [subject for subject in found if subject not in live]
    return respond(found)


@registry_api("POST", "DELETE")
def subject(request: HttpRequest, subject: str) -> HttpResponse:
    if request.method == "POST":  # lookup: is this schema registered under the subject?
        found = selectors.schema_lookup(subject=subject, schema=_schema(request), deleted=_flag(request, "deleted"))
        return respond(_registered(found))
    _check_write(request, subject)
    return respond(services.subject_delete(subject=subject, permanent=_flag(request, "permanent")))


@registry_api("GET", "POST")
def subject_versions(request: HttpRequest, subject: str) -> HttpResponse:
    if request.method == "GET":
        return respond(selectors.subject_version_numbers(subject=subject, deleted=_flag(request, "deleted")))
    _check_write(request, subject)
    # `normalize` is accepted: schemas are always stored in one compact form.
    try:
        registered = services.schema_register(subject=subject, schema=_schema(request))
    except IncompatibleSchema as exc:
        level = selectors.compatibility_level(subject=subject, default_to_global=True)
        lab_events.announce(subject, "refused", level=level, message=exc.message)
        raise
    lab_events.announce(subject, "registered", version=registered.version, schema_id=registered.id)
    return respond(_registered(registered))


@registry_api("GET", "DELETE")
def subject_version(request: HttpRequest, subject: str, version: str) -> HttpResponse:
    if request.method == "GET":
        return respond(
            _registered(selectors.version_get(subject=subject, version=version, deleted=_flag(request, "deleted")))
        )
    _check_write(request, subject)
    return respond(services.version_delete(subject=subject, version=version, permanent=_flag(request, "permanent")))


@registry_api("GET")
def subject_version_schema(request: HttpRequest, subject: str, version: str) -> HttpResponse:
    found = selectors.version_get(subject=subject, version=version, deleted=_flag(request, "deleted"))
    return HttpResponse(found.schema, content_type=CONTENT_TYPE)


@registry_api("GET")
def schema_types(request: HttpRequest) -> HttpResponse:
    return respond(list(SCHEMA_TYPES))


@registry_api("GET")
def schema_by_id(request: HttpRequest, schema_id: str) -> HttpResponse:
    schema_type, schema = selectors.schema_by_id(schema_id=_schema_id(schema_id))
    found: dict[str, object] = {"schema": schema}
    if schema_type != "AVRO":
        found["schemaType"] = schema_type
    return respond(found)


@registry_api("GET")
def schema_by_id_raw(request: HttpRequest, schema_id: str) -> HttpResponse:
    _, schema = selectors.schema_by_id(schema_id=_schema_id(schema_id))
    return HttpResponse(schema, content_type=CONTENT_TYPE)


@registry_api("GET")
def schema_id_versions(request: HttpRequest, schema_id: str) -> HttpResponse:
    found = selectors.schema_id_versions(schema_id=_schema_id(schema_id), deleted=_flag(request, "deleted"))
    return respond([{"subject": v.subject, "version": v.version} for v in found])


@registry_api("GET")
def schema_id_subjects(request: HttpRequest, schema_id: str) -> HttpResponse:
    found = selectors.schema_id_versions(schema_id=_schema_id(schema_id), deleted=_flag(request, "deleted"))
    return respond(sorted({v.subject for v in found}))


@registry_api("GET", "PUT", "DELETE")
def config(request: HttpRequest, subject: str | None = None) -> HttpResponse:
    if request.method == "GET":
        level = selectors.compatibility_level(subject=subject, default_to_global=_flag(request, "defaultToGlobal"))
        return respond({"compatibilityLevel": level})
    _check_write(request, subject)
    if request.method == "PUT":
        level = services.config_set(subject=subject, level=_level(_body(request)))
        lab_events.announce(subject, "level", level=level)
        return respond({"compatibility": level})
    return respond({"compatibilityLevel": services.config_delete(subject=subject)})


@registry_api("POST")
def compatibility(request: HttpRequest, subject: str, version: str | None = None) -> HttpResponse:
    problems = selectors.compatibility_check(subject=subject, version=version, schema=_schema(request))
    answer: dict[str, object] = {"is_compatible": not problems}
    if _flag(request, "verbose"):
        answer["messages"] = problems
    return respond(answer)


def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(404, 404, "HTTP 404 Not Found")
