"""Rendering the live model per viewer: what a page is sent, and what it is not sent twice."""

from __future__ import annotations

from kafkalab.labs import live_view
from kafkalab.labs.access import Role
from kafkalab.labs.live_view import Viewer


def record(partition: int, offset: int) -> dict:
    return {
        "partition": partition,
        "offset": offset,
        "key": f"k{offset}",
        "event_type": "OrderCreated",
        "timestamp_ms": 1,
    }


def test_records_the_page_got_with_the_model_are_not_appended_again():
    shown = live_view.newest_offsets(
        [{"partition": 0, "records": [record(0, 4), record(0, 5)]}, {"partition": 1, "records": []}]
    )

    fresh = live_view.unseen(
        [{"partition": 0, "records": [record(0, 5), record(0, 6)]}, {"partition": 1, "records": [record(1, 0)]}], shown
    )

    assert fresh == [{"partition": 0, "records": [record(0, 6)]}, {"partition": 1, "records": [record(1, 0)]}]
    assert shown == {0: 6, 1: 0}
    assert live_view.unseen([{"partition": 0, "records": [record(0, 6)]}], shown) == [], "each box once"


def consumer(name: str) -> dict:
    return {
        "name": name, "pid": 42, "status": "running", "live": True, "config": {}, "last_error": "",
        "assigned": [0], "positions": {}, "emailed": 0, "colour": "#2b59c3",
    }  # fmt: skip


PANELS = {
    "lanes": [],
    "groups": [{"id": "g", "state": "STABLE", "state_label": "Stable", "protocol": "CLASSIC", "assignor": "range", "members": [], "committed": {}, "lag": {}, "error": None}],
    "consumers": [consumer("c1")],
    "rebalances": [],
    "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "missed_records": [], "recent": []},
}  # fmt: skip


def test_the_owner_gets_the_consumer_buttons_and_an_observer_none():
    owner = live_view.ViewerPage(Viewer(lab_id=7, role=Role.OWNER)).panels(PANELS)
    observer = live_view.ViewerPage(Viewer(lab_id=7, role=Role.OBSERVER, share_token="t")).panels(PANELS)

    assert ">Stop</button>" in owner and ">Kill</button>" in owner
    assert 'data-consumer="c1"' in observer
    assert "<button" not in observer and "<form" not in observer and "csrf" not in observer


def test_a_push_renders_only_what_changed_for_this_page():
    page = live_view.ViewerPage(Viewer(lab_id=7, role=Role.OWNER))
    lane = {"partition": 0, "log_end": 5, "committed": 3, "lag": 2, "owner": None, "position": None}

    first = page.panels({**PANELS, "lanes": [lane]})
    again = page.panels({**PANELS, "lanes": [lane]})
    moved = page.panels({**PANELS, "lanes": [{**lane, "committed": 5, "lag": 0}]})

    assert 'id="lane-0-meta"' in first and 'id="outbox"' in first and 'id="rebalances"' in first
    assert again == "", "nothing changed: nothing to send"
    assert 'id="lane-0-meta"' in moved and 'data-committed="5"' in moved
    assert 'id="outbox"' not in moved and 'id="group-live"' not in moved


def test_records_that_wait_for_the_browser_go_out_together_at_most_a_window_per_lane():
    backlog = live_view.RecordsBacklog(window=3)
    assert backlog.take() is None, "nothing waits"

    backlog.add(
        appends=[{"partition": 0, "records": [record(0, o) for o in range(2)]}], lanes=[{"partition": 0, "v": 1}]
    )
    backlog.add(
        appends=[
            {"partition": 0, "records": [record(0, o) for o in range(2, 5)]},
            {"partition": 1, "records": [record(1, 0)]},
        ],
        lanes=[{"partition": 0, "v": 2}],
    )

    appends, lanes = backlog.take()
    assert [[r["offset"] for r in a["records"]] for a in appends] == [[2, 3, 4], [0]], "the newest three of P0"
    assert lanes == [{"partition": 0, "v": 2}], "the newest offsets"
    assert backlog.take() is None, "taken once"


def test_a_box_links_to_its_record_for_the_owner_and_for_an_observer():
    from django.urls import reverse

    for viewer in (Viewer(lab_id=7, role=Role.OWNER), Viewer(lab_id=7, role=Role.OBSERVER, share_token="tok")):
        html = live_view.ViewerPage(viewer).records(appends=[{"partition": 2, "records": [record(2, 9)]}], lanes=[])
        assert f'href="{reverse("labs:event", args=(7, 2, 9))}{viewer.query}"' in html
