"""Which client asked, for the per-address lab cap: the connection's own address, unless a proxy
listed in LAB_TRUSTED_PROXIES forwarded the request; then the address it says it forwarded for."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from kafkalab.labs.client_address import client_address
from kafkalab.labs.models import Lab

PROXY = "10.0.0.1"
INNER_PROXY = "10.0.0.2"


def request_from(remote: str, forwarded_for: str | None = None):
    headers = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    return RequestFactory().post("/labs/", REMOTE_ADDR=remote, **headers)


@pytest.mark.parametrize("forwarded_for", [None, "203.0.113.7", "203.0.113.7, 198.51.100.2"])
def test_without_trusted_proxies_the_connection_is_the_client(settings, forwarded_for):
    settings.LAB_TRUSTED_PROXIES = []

    assert client_address(request_from("192.0.2.10", forwarded_for)) == "192.0.2.10"


def test_a_forwarded_for_header_from_an_untrusted_address_is_ignored(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY]

    assert client_address(request_from("192.0.2.10", "203.0.113.7")) == "192.0.2.10"


def test_behind_a_trusted_proxy_the_client_is_the_address_it_forwarded_for(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY]

    assert client_address(request_from(PROXY, "203.0.113.7")) == "203.0.113.7"
    assert client_address(request_from(PROXY, "2001:db8::17")) == "2001:db8::17"


def test_what_the_client_itself_put_in_the_header_is_not_believed(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY]

    # The client sent "X-Forwarded-For: 198.51.100.66"; the proxy appended the address it saw.
    assert client_address(request_from(PROXY, "198.51.100.66, 203.0.113.7")) == "203.0.113.7"


def test_through_a_chain_of_trusted_proxies_the_nearest_untrusted_address_is_the_client(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY, INNER_PROXY]

    assert client_address(request_from(INNER_PROXY, f"198.51.100.66, 203.0.113.7, {PROXY}")) == "203.0.113.7"


def test_a_trusted_proxy_without_the_header_is_the_client_itself(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY]

    assert client_address(request_from(PROXY)) == PROXY
    assert client_address(request_from(PROXY, " , ")) == PROXY


def test_spaces_and_empty_entries_in_the_header_do_not_count(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY]

    assert client_address(request_from(PROXY, " 203.0.113.7 ,, ")) == "203.0.113.7"


def test_the_address_always_fits_where_the_lab_keeps_it(settings):
    settings.LAB_TRUSTED_PROXIES = [PROXY]
    column = Lab._meta.get_field("client_address").max_length

    assert len(client_address(request_from(PROXY, "x" * 500))) <= column
