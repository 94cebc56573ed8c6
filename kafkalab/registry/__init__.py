"""An embedded schema registry that speaks Confluent Schema Registry's REST API, at /registry/."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

EMBEDDED_PATH = "/registry"


def registry_url(request: HttpRequest | None = None) -> str:
    """The registry clients should use: SCHEMA_REGISTRY_URL when set, else the embedded one.

    With a request, the embedded registry's address is the one the app was reached at (for the
    page); without one it is SITE_URL's (for consumer processes and the app's own client)."""
    if settings.SCHEMA_REGISTRY_URL:
        return settings.SCHEMA_REGISTRY_URL.rstrip("/")
    if request is None:
        return settings.SITE_URL + EMBEDDED_PATH
    return request.build_absolute_uri(EMBEDDED_PATH)


def is_embedded() -> bool:
    return not settings.SCHEMA_REGISTRY_URL
