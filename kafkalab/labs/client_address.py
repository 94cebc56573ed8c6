"""Which client asked, for the per-address lab cap.

The connection's own address, unless it comes from a proxy listed in LAB_TRUSTED_PROXIES: then
the nearest address in X-Forwarded-For that is not one of those proxies. Trusting the header
from anyone else would let every client pick its own address.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = set(settings.LAB_TRUSTED_PROXIES)
    if remote not in trusted:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if address not in trusted:
            return address[:45]
    return remote
