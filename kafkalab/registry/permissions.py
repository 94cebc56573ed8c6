"""Who may change the registry: the hook for the classroom rule.

SCHEMA_REGISTRY_WRITE_CHECK names a function `(request, subject) -> bool` (subject None for the
global config). The default leaves the REST API open, as a local Confluent registry is on a
self-study install; a classroom deployment points it at a check that lets a learner change only
their own lab's subjects (`lab-<id>.orders-value`), e.g. from HTTP basic auth credentials.
Reads stay open.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string


def open_writes(request: HttpRequest, subject: str | None) -> bool:
    return True


def write_allowed(request: HttpRequest, subject: str | None) -> bool:
    return bool(import_string(settings.SCHEMA_REGISTRY_WRITE_CHECK)(request, subject))
