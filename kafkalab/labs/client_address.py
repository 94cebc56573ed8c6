"""Which client asked, for the per-address caps (labs, wrong join codes).

The connection's own address, unless it comes from a proxy listed in LAB_TRUSTED_PROXIES: then
the nearest address in X-Forwarded-For that is not one of those proxies. Trusting the header
from anyone else would let every client pick its own address. An entry is an address or a
network (`172.28.0.0/16`): compose gives its proxy an address from its network's range.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    if not _trusted(remote):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _trusted(address):
            return address[:45]
    return remote


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.LAB_TRUSTED_PROXIES)))


@lru_cache(maxsize=4)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
