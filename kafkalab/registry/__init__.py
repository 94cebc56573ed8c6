"""An embedded schema registry that speaks Confluent Schema Registry's REST API, at /registry/."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

EMBEDDED_PATH = "/registry"


def registry_url(request: HttpRequest | None = None) -> str:
    """The registry clients should use: SCHEMA_REGISTRY_URL when set, else the embedded one.

    Without a request the embedded registry's address is relative (`/registry`); with one it is
    absolute, as the app was reached."""
    if settings.SCHEMA_REGISTRY_URL:
        return settings.SCHEMA_REGISTRY_URL.rstrip("/")
    if request is None:
        return EMBEDDED_PATH
    return request.build_absolute_uri(EMBEDDED_PATH)


def is_embedded() -> bool:
    return not settings.SCHEMA_REGISTRY_URL
