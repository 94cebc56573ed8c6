"""Join codes and rejoin codes: short enough to type from a projector, hard enough to guess.

Both use an alphabet without look-alike characters (no 0/O, 1/I/L), read case-insensitively,
with any spaces or dashes a learner types ignored. A join code opens a classroom to anyone who
holds it (six characters; wrong guesses are rate-limited per address). A rejoin code proves a
display name is yours (eight characters); only its keyed hash is stored.
"""

from __future__ import annotations

import hmac
import secrets

from django.utils.crypto import salted_hmac

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 6
REJOIN_CODE_LENGTH = 8


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalise(text: str) -> str:
    """What a learner typed, as stored: upper case, no spaces or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -\t")


def spaced(code: str) -> str:
    """A code as shown: in groups of three or four, easier to read out and type."""
    size = 3 if len(code) <= 6 else 4
    return "-".join(code[i : i + size] for i in range(0, len(code), size))


def rejoin_digest(learner_key: str, code: str) -> str:
    """The stored form of a rejoin code, keyed with the site's secret and bound to one learner."""
    return salted_hmac("kafkalab.classroom.rejoin", f"{learner_key}:{normalise(code)}", algorithm="sha256").hexdigest()


def rejoin_matches(learner_key: str, code: str, digest: str) -> bool:
    return hmac.compare_digest(rejoin_digest(learner_key, code), digest)
