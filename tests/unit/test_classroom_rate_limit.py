"""Wrong join codes, counted per client address: a guesser must wait, a classroom behind one
router joins freely."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache

from kafkalab.classroom.errors import JoinRefused
from kafkalab.classroom.rate_limit import join_allowed, join_failed

GUESSER = "203.0.113.7"
NEIGHBOUR = "198.51.100.2"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CLASSROOM_JOIN_FAILURES = 3
    settings.CLASSROOM_JOIN_WINDOW_SECONDS = 600
    cache.clear()
    yield
    cache.clear()


def test_an_address_may_send_wrong_codes_up_to_the_limit():
    join_allowed(GUESSER)
    join_failed(GUESSER)
    join_failed(GUESSER)

    join_allowed(GUESSER)


def test_an_address_that_sent_too_many_wrong_codes_must_wait():
    for _ in range(3):
        join_allowed(GUESSER)
        join_failed(GUESSER)

    with pytest.raises(JoinRefused) as refused:
        join_allowed(GUESSER)

    assert refused.value.status == 429
    wait = re.search(r"Wait (\d+) min", str(refused.value))
    assert wait, str(refused.value)
    assert 1 <= int(wait.group(1)) <= 10


def test_another_address_is_not_held_back_by_a_guesser():
    for _ in range(5):
        join_failed(GUESSER)

    join_allowed(NEIGHBOUR)
    with pytest.raises(JoinRefused):
        join_allowed(GUESSER)


def test_checking_an_address_does_not_count_against_it():
    for _ in range(10):
        join_allowed(GUESSER)
