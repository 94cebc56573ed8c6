"""Per-lab credentials for the embedded registry's REST API in a classroom.

A lab's user is its prefix (`lab-<id>`) and its password an HMAC of that name under the app's
secret key: nothing to store, nothing to rotate by hand, and a learner who knows their own
password learns nothing about another lab's. Confluent's clients send them as HTTP basic auth
(`basic.auth.credentials.source=USER_INFO`, `basic.auth.user.info=<user>:<password>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from django.conf import settings

LAB_USER = re.compile(r"lab-([1-9][0-9]{0,18})")
PASSWORD_BYTES = 18  # 24 characters of URL-safe base64


def lab_password(lab_id: int) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"registry:lab-{lab_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:PASSWORD_BYTES]).decode()


def lab_credentials(lab_id: int) -> tuple[str, str]:
    return f"lab-{lab_id}", lab_password(lab_id)


def lab_user_info(lab_id: int) -> str:
    """As Confluent's clients take it: `basic.auth.user.info`."""
    return ":".join(lab_credentials(lab_id))


def lab_of_basic_auth(header: str | None) -> int | None:
    """The lab whose credentials an Authorization header carries, or None."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    match = LAB_USER.fullmatch(user)
    if match is None:
        return None
    lab_id = int(match.group(1))
    return lab_id if hmac.compare_digest(password, lab_password(lab_id)) else None
