"""The secret key is needed to serve, not to run: cluster commands work without it.

settings.py leaves SECRET_KEY empty when DJANGO_DEBUG is off and DJANGO_SECRET_KEY is unset.
Whatever serves refuses to start then: asgi.py (daphne, runworker) calls require_secret_key(),
`manage.py serve` too, and the system check below stops every command that runs checks.
`manage.py kafka` skips the checks, since it signs nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_MISSING = "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (make run sets DJANGO_DEBUG=1)."
SECRET_KEY_HINT = 'Generate one: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'


def secret_key_missing() -> bool:
    try:
        return not settings.SECRET_KEY
    except ImproperlyConfigured:  # Django's own refusal to hand out an empty key
        return True


def require_secret_key() -> None:
    """Raise ImproperlyConfigured, saying what to set, when there is no key to serve with."""
    if secret_key_missing():
        raise ImproperlyConfigured(SECRET_KEY_MISSING)


def check_secret_key(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    if secret_key_missing():
        return [Error(SECRET_KEY_MISSING, hint=SECRET_KEY_HINT, id="kafkalab.E001")]
    return []
