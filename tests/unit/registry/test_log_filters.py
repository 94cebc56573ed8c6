"""The registry's expected 404s stay out of the log; everything else is still logged."""

from __future__ import annotations

import logging

from django.test import RequestFactory

from kafkalab.registry.log_filters import RegistryNotFound


def _record(path: str, status: int) -> logging.LogRecord:
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: %s", (path,), None)
    record.request, record.status_code = RequestFactory().get(path), status
    return record


def test_only_the_registrys_404s_are_dropped():
    quiet = RegistryNotFound()
    assert not quiet.filter(_record("/registry/config/lab-1.orders-value", 404))
    assert quiet.filter(_record("/registry/subjects/x/versions", 422))
    assert quiet.filter(_record("/labs/1/events/0/9/", 404))
    assert quiet.filter(_record("/registryx", 404))
