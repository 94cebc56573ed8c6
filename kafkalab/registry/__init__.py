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


def registry_url_for_lab(lab_id: int) -> str:
    """The registry as the app uses it on a lab's behalf. For the embedded registry it carries the
    lab's credentials (which a classroom's write rule asks for); never show it on a page."""
    url = registry_url()
    if not is_embedded():
        return url
    from kafkalab.registry.credentials import lab_credentials

    user, password = lab_credentials(lab_id)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}:{password}@{rest}"
