"""Who may change the registry: the hook for the classroom rule.

SCHEMA_REGISTRY_WRITE_CHECK names a function `(request, subject) -> bool` (subject None for the
global config). The default, `open_writes`, leaves the REST API open, as a local Confluent
registry is on a self-study install. A classroom sets `lab_subjects_only`: a learner changes
only their own lab's subjects (`lab-<id>.…`), with the HTTP basic auth credentials their lab
shows; a staff user (the instructor, logged in) changes anything. Reads stay open.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from kafkalab.registry.credentials import lab_of_basic_auth
from kafkalab.registry.errors import CredentialsRequired


def open_writes(request: HttpRequest, subject: str | None) -> bool:
    return True


def write_allowed(request: HttpRequest, subject: str | None) -> bool:
    return bool(import_string(settings.SCHEMA_REGISTRY_WRITE_CHECK)(request, subject))


def lab_subjects_only(request: HttpRequest, subject: str | None) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    lab_id = lab_of_basic_auth(request.headers.get("Authorization"))
    if lab_id is None:
        raise CredentialsRequired(
            "Changing the registry needs your lab's credentials (HTTP basic auth; the lab page shows them)"
        )
    return subject is not None and subject.startswith(f"lab-{lab_id}.")
