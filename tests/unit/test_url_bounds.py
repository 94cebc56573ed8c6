"""Numbers in lab URLs too big for the database or Kafka are a 404, decided by the URL resolver."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import Resolver404, resolve, reverse

from kafkalab.routing import websocket_urlpatterns

LAB_ID_MAX = 2**63 - 1  # SQLite and Postgres bigint
PARTITION_MAX = 2**31 - 1  # librdkafka's int32
OFFSET_MAX = 2**63 - 1  # Kafka's int64

TOO_BIG = [
    f"/labs/{LAB_ID_MAX + 1}/",
    f"/labs/{LAB_ID_MAX + 1}/state.json",
    f"/labs/{LAB_ID_MAX + 1}/events/0/0/",
    f"/labs/1/events/{PARTITION_MAX + 1}/0/",
    f"/labs/1/events/0/{OFFSET_MAX + 1}/",
    "/labs/" + "9" * 5000 + "/",  # more digits than int() takes from a string
]
LARGEST = [
    (f"/labs/{LAB_ID_MAX}/", "labs:detail", {"lab_id": LAB_ID_MAX}),
    (f"/labs/{LAB_ID_MAX}/state.json", "labs:state", {"lab_id": LAB_ID_MAX}),
    (
        f"/labs/{LAB_ID_MAX}/events/{PARTITION_MAX}/{OFFSET_MAX}/",
        "labs:event",
        {"lab_id": LAB_ID_MAX, "partition": PARTITION_MAX, "offset": OFFSET_MAX},
    ),
]


@pytest.mark.parametrize("path", TOO_BIG)
def test_a_number_out_of_range_matches_no_url(path):
    with pytest.raises(Resolver404):
        resolve(path)


@pytest.mark.parametrize(("path", "name", "kwargs"), LARGEST)
def test_the_largest_numbers_still_resolve(path, name, kwargs):
    match = resolve(path)
    assert (match.view_name, match.kwargs) == (name, kwargs)
    assert reverse(name, kwargs=kwargs) == path


@pytest.mark.django_db
@pytest.mark.parametrize("path", TOO_BIG)
def test_get_with_a_number_out_of_range_is_a_404(path):
    # The test client re-raises a view's exception, so an overflow would fail here, not pass as a 500.
    assert Client().get(path).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name", "kwargs"), LARGEST)
def test_get_of_an_unknown_lab_with_the_largest_numbers_is_a_404(path, name, kwargs):
    assert Client().get(path).status_code == 404


def test_the_lab_websocket_route_is_bounded_too():
    lab_route = next(p for p in websocket_urlpatterns if "lab_id" in str(p.pattern))
    assert lab_route.pattern.match(f"ws/labs/{LAB_ID_MAX + 1}/") is None
    assert lab_route.pattern.match(f"ws/labs/{LAB_ID_MAX}/") == ("", (), {"lab_id": LAB_ID_MAX})
