from __future__ import annotations

from django.test import RequestFactory

from kafkalab.registry import registry_url


def test_embedded_by_default(settings) -> None:
    settings.SCHEMA_REGISTRY_URL = ""
    settings.SITE_URL = "http://127.0.0.1:8123"
    assert registry_url() == "http://127.0.0.1:8123/registry"
    assert registry_url(RequestFactory().get("/labs/1/")) == "http://testserver/registry"


def test_an_external_registry_when_set(settings) -> None:
    settings.SCHEMA_REGISTRY_URL = "http://schema-registry:8081/"
    assert registry_url() == "http://schema-registry:8081"
    assert registry_url(RequestFactory().get("/")) == "http://schema-registry:8081"
