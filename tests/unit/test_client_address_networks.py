"""Which client asked, when LAB_TRUSTED_PROXIES names networks as well as addresses (compose gives
its proxy an address from its network's range): the per-address caps (labs, wrong join codes)
count the client, never the proxy, and never an address a client made up."""

from __future__ import annotations

from django.test import RequestFactory

from kafkalab.labs.client_address import client_address

COMPOSE_NETWORK = "172.28.0.0/16"


def request_from(remote: str, forwarded_for: str | None = None):
    headers = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    return RequestFactory().post("/classroom/join/", REMOTE_ADDR=remote, **headers)


def test_without_trusted_proxies_the_header_is_never_believed(settings):
    settings.LAB_TRUSTED_PROXIES = []

    assert client_address(request_from("192.0.2.10", "203.0.113.7")) == "192.0.2.10"


def test_a_trusted_proxy_address_gives_the_nearest_untrusted_address_in_the_header(settings):
    settings.LAB_TRUSTED_PROXIES = ["10.0.0.1"]

    assert client_address(request_from("10.0.0.1", "198.51.100.66, 203.0.113.7, 10.0.0.1")) == "203.0.113.7"


def test_a_proxy_anywhere_in_a_trusted_network_is_trusted(settings):
    settings.LAB_TRUSTED_PROXIES = [COMPOSE_NETWORK]

    assert client_address(request_from("172.28.0.5", "203.0.113.7")) == "203.0.113.7"


def test_through_proxies_of_a_trusted_network_the_client_is_the_first_address_outside_it(settings):
    settings.LAB_TRUSTED_PROXIES = [COMPOSE_NETWORK]

    assert client_address(request_from("172.28.0.5", "198.51.100.1, 172.28.0.9")) == "198.51.100.1"


def test_an_address_outside_the_trusted_network_is_the_client_whatever_it_forwards(settings):
    settings.LAB_TRUSTED_PROXIES = [COMPOSE_NETWORK]

    assert client_address(request_from("172.29.0.5", "203.0.113.7")) == "172.29.0.5"


def test_a_network_written_with_host_bits_set_is_still_the_network(settings):
    settings.LAB_TRUSTED_PROXIES = ["172.28.0.1/16"]

    assert client_address(request_from("172.28.200.3", "203.0.113.7")) == "203.0.113.7"


def test_addresses_and_networks_can_be_trusted_together(settings):
    settings.LAB_TRUSTED_PROXIES = ["10.0.0.1", COMPOSE_NETWORK, "2001:db8::/32"]

    assert client_address(request_from("10.0.0.1", "203.0.113.7, 172.28.0.9")) == "203.0.113.7"
    assert client_address(request_from("2001:db8::5", "203.0.113.8")) == "203.0.113.8"


def test_changing_the_trusted_proxies_takes_effect_at_once(settings):
    settings.LAB_TRUSTED_PROXIES = [COMPOSE_NETWORK]
    assert client_address(request_from("172.28.0.5", "203.0.113.7")) == "203.0.113.7"

    settings.LAB_TRUSTED_PROXIES = ["10.0.0.1"]
    assert client_address(request_from("172.28.0.5", "203.0.113.7")) == "172.28.0.5"


def test_a_remote_address_that_is_not_an_address_is_never_trusted(settings):
    settings.LAB_TRUSTED_PROXIES = [COMPOSE_NETWORK, "0.0.0.0/0"]

    assert client_address(request_from("unix:/run/daphne.sock", "203.0.113.7")) == "unix:/run/daphne.sock"
    assert client_address(request_from("", "203.0.113.7")) == ""


def test_a_forwarded_entry_that_is_not_an_address_is_not_skipped_as_a_proxy(settings):
    settings.LAB_TRUSTED_PROXIES = [COMPOSE_NETWORK]

    # Only a real address inside the network is a proxy; anything else is what the client sent.
    assert client_address(request_from("172.28.0.5", "203.0.113.7, unknown")) == "unknown"
