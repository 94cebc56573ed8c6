"""The lab's topics as lane groups (the orders topic, the dead-letter topic), poison marks on the
orders boxes and blocked lanes: the model's shapes and what each page is sent. No Kafka here: the
records and headers are what the observer would read."""

from __future__ import annotations

import re

from kafkalab.kafka import dead_letters
from kafkalab.labs import live_view, selectors
from kafkalab.labs.access import Role
from kafkalab.labs.live_view import RecordsBacklog, Viewer, ViewerPage
from kafkalab.runner import model
from kafkalab.runner.live import Poison

ORDERS, DLQ = "lab-7.orders", "lab-7.orders.dlq"


def record(partition: int, offset: int, key: str = "k") -> dict:
    return {"partition": partition, "offset": offset, "key": key, "event_type": "OrderCreated", "timestamp_ms": 1}


def letter_headers(partition: int, offset: int, *, reason: str = "contract", consumer: str = "c1") -> list:
    return [
        ("event-type", b"OrderCreated"),
        (dead_letters.TOPIC, ORDERS.encode()),
        (dead_letters.PARTITION, str(partition).encode()),
        (dead_letters.OFFSET, str(offset).encode()),
        (dead_letters.REASON, reason.encode()),
        (dead_letters.ERROR, b"'customerId' is missing"),
        (dead_letters.CONSUMER, consumer.encode()),
        (dead_letters.TIME, b"1700000000000"),
    ]


def dead_letter(dlq_offset: int, partition: int, offset: int) -> dict:
    letter = model.dead_letter_data(letter_headers(partition, offset))
    return {**record(0, dlq_offset, key="order-1"), "dead_letter": letter}


def orders_lane(partition: int, records: list[dict] = (), **meta) -> dict:
    return {
        "view": "orders", "partition": partition, "leader": 1, "isr": [1], "log_start": 0, "log_end": 10,
        "last_stable": 10, "committed": None, "lag": None, "owner": None, "owner_colour": None, "position": None,
        "positions": [], "blocked_at": None, "records": list(records), **meta,
    }  # fmt: skip


def dlq_view(letters: list[dict] = ()) -> dict:
    lanes = [model.log_lane_data(view="dlq", partition=0, state={"log_start": 0}, log_end=len(letters))]
    lanes[0]["records"] = list(letters)
    return model.view_data(view="dlq", topic=DLQ, lanes=lanes)


def lab_model(lanes: list[dict], *, views: list[dict] | None = None, poison: list[dict] = ()) -> dict:
    return {
        "lab": {"topic": ORDERS, "dlq_topic": DLQ},
        "lanes": lanes,
        "views": [dlq_view()] if views is None else views,
        "poison": list(poison),
        "groups": [{"id": "g", "state": None, "state_label": None, "protocol": None, "assignor": None, "members": [], "committed": {}, "lag": {}, "error": None}],
        "consumers": [],
        "rebalances": [],
        "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "missed_records": [], "recent": []},
    }  # fmt: skip


def mark(partition: int, offset: int, *, action: str = "crashed", reason: str = "not-decodable") -> dict:
    return {"partition": partition, "offset": offset, "reason": reason, "message": "bad bytes", "consumer": "c2", "action": action}  # fmt: skip


def owner_page() -> ViewerPage:
    return ViewerPage(Viewer(lab_id=7, role=Role.OWNER))


def element(html: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>', html)
    assert match, f"no #{element_id} in {html[:400]}"
    return match.group(0)


# --- The model -----------------------------------------------------------------------------------


def test_a_dead_letter_says_where_it_came_from_and_why():
    letter = model.dead_letter_data(letter_headers(2, 17))

    assert letter == {
        "topic": ORDERS, "partition": 2, "offset": 17, "reason": "contract", "error": "'customerId' is missing",
        "consumer": "c1", "at_ms": 1700000000000,
    }  # fmt: skip
    assert model.dead_letter_data([("event-type", b"OrderCreated")]) is None, "a foreign record: no dead letter"


def test_whatever_a_dead_letters_headers_hold_it_is_read_without_failing():
    headers = [
        (dead_letters.PARTITION, b"\xff\xfe"),
        (dead_letters.OFFSET, b"12" * 100),
        (dead_letters.REASON, "<b>é</b>".encode() * 100),
        (dead_letters.ERROR, None),
    ]

    letter = model.dead_letter_data(headers)

    assert (letter["partition"], letter["offset"], letter["error"], letter["consumer"]) == (None, None, "", "")
    assert letter["reason"].startswith("<b>é</b>") and len(letter["reason"]) < 80, "bounded, escaped when drawn"


def test_poison_comes_from_the_consumers_reports_and_from_the_dead_letters_with_kafka_having_the_last_word():
    reported = {
        (0, 3): Poison(consumer="c1", partition=0, offset=3, reason="contract", message="x", action="retrying", at=5.0),
        (1, 4): Poison(consumer="c2", partition=1, offset=4, reason="not-decodable", message="y", action="crashed", at=6.0),
    }  # fmt: skip
    # Set aside by another app: the consumers never reported it, Kafka's dead-letter topic says so.
    foreign = model.dead_letter_data(letter_headers(0, 3, reason="handler", consumer="billing"))

    poison = model.poison_data(reported=reported, dead_lettered={(0, 3): foreign})

    assert poison == [
        {"partition": 0, "offset": 3, "reason": "handler", "message": "'customerId' is missing", "consumer": "billing", "action": "dead-lettered"},
        {"partition": 1, "offset": 4, "reason": "not-decodable", "message": "y", "consumer": "c2", "action": "crashed"},
    ]  # fmt: skip


def test_the_poison_list_is_bounded_to_the_newest():
    reported = {
        (0, o): Poison(consumer="c1", partition=0, offset=o, reason="r", message="", action="skipped", at=float(o))
        for o in range(model.POISON_LISTED + 50)
    }

    poison = model.poison_data(reported=reported, dead_lettered={})

    assert len(poison) == model.POISON_LISTED
    assert poison[0]["offset"] == 50 and poison[-1]["offset"] == model.POISON_LISTED + 49


def test_a_topics_records_are_its_log_ends_minus_its_log_starts():
    lanes = [
        model.log_lane_data(view="dlq", partition=0, state={"log_start": 2}, log_end=7),
        model.log_lane_data(view="dlq", partition=1, state=None, log_end=None),
    ]

    assert model.view_data(view="dlq", topic=DLQ, lanes=lanes)["records"] == 5


# --- What a page is sent ----------------------------------------------------------------------


def test_each_topics_lanes_sit_in_an_element_naming_the_topic():
    html = owner_page().model(lab_model([orders_lane(0, [record(0, 4)])], views=[dlq_view([dead_letter(0, 0, 4)])]))

    assert f'data-topic="{ORDERS}"' in element(html, "lanes")
    assert f'data-topic="{DLQ}"' in element(html, "dlq-lanes")
    assert html.count('data-lane="0"') == 1, "the orders lanes alone are .lane[data-lane]"
    assert 'data-dlq-lane="0"' in html
    assert re.search(r'id="dlq-count"[^>]*>([^<]*)<', html).group(1) == "1 record"


def test_a_dead_letter_box_shows_its_origin_and_reason_and_opens_in_the_inspector():
    from django.urls import reverse

    for viewer in (Viewer(lab_id=7, role=Role.OWNER), Viewer(lab_id=7, role=Role.OBSERVER, share_token="tok")):
        html = ViewerPage(viewer).records(
            appends=[{"view": "dlq", "partition": 0, "records": [dead_letter(3, 2, 17)]}], lanes=[]
        )
        box = re.search(r'<a class="event event--dead-letter[^>]*>.*?</a>', html).group(0)

        assert 'id="dlq-lane-0-events"' in html
        assert 'data-origin="P2@17"' in box and 'data-reason="contract"' in box
        assert ">P2@17<" in box and ">contract<" in box
        assert (
            "partition 2, offset 17 of lab-7.orders, set aside by c1 (contract: &#x27;customerId&#x27; is missing)"
            in box
        )
        url = reverse("labs:event", args=(7, 0, 3))
        assert f'href="{url}{viewer.query + "&amp;" if viewer.query else "?"}view=dlq"' in box


def test_a_box_drawn_before_it_turned_out_poison_is_redrawn_marked_in_place():
    page = owner_page()
    page.model(lab_model([orders_lane(1, [record(1, 4), record(1, 5)])]))

    html = page.panels(lab_model([orders_lane(1)], poison=[mark(1, 5)]))

    [box] = re.findall(r"<a [^>]*>", html)
    assert 'data-offset="5"' in box and 'data-poison="not-decodable"' in box
    assert "hx-swap-oob=\"outerHTML:#lane-1-events [data-offset='5']\"" in box
    assert 'title="Poison: c2 crashed on it (not-decodable: bad bytes)"' in box
    assert 'id="lanes"' not in html and 'lane-1-events" hx-swap-oob' not in html, "not a redraw of the lane"
    assert page.panels(lab_model([orders_lane(1)], poison=[mark(1, 5)])) == "", "marked once"

    again = page.panels(lab_model([orders_lane(1)], poison=[mark(1, 5, action="dead-lettered")]))
    assert "set it aside on the dead-letter topic" in again, "a changed mark is redrawn"


def test_a_poison_mark_for_a_box_the_page_no_longer_shows_sends_nothing():
    page = owner_page()
    page.model(lab_model([orders_lane(0, [record(0, o) for o in range(40, 40 + page.window)])]))

    assert page.panels(lab_model([orders_lane(0)], poison=[mark(0, 3)])) == ""
    assert page.panels(lab_model([orders_lane(0)], poison=[mark(0, 3), mark(0, 41)])).count("data-poison=") == 1


def test_boxes_drawn_after_their_mark_is_known_come_marked():
    page = owner_page()
    page.model(lab_model([orders_lane(0)], poison=[mark(0, 7)]))

    html = page.records(appends=[{"view": "orders", "partition": 0, "records": [record(0, 6), record(0, 7)]}], lanes=[])
    boxes = re.findall(r"<a [^>]*>", html)

    assert ["data-poison" in box for box in boxes] == [False, True]
    assert "hx-swap-oob" not in boxes[1], "appended with the others"


def test_the_page_a_viewer_opens_has_the_poison_marks_on_its_boxes():
    html = owner_page().model(lab_model([orders_lane(2, [record(2, 0), record(2, 1)])], poison=[mark(2, 1)]))

    assert len(re.findall(r'data-offset="1" [^>]*data-poison="not-decodable"', html)) == 1
    assert "☠ not-decodable" in html


def test_a_blocked_lane_says_where_it_is_stuck_until_it_is_not():
    page = owner_page()
    page.model(lab_model([orders_lane(3)]))

    blocked = page.panels(lab_model([orders_lane(3, blocked_at=12)]))
    cleared = page.panels(lab_model([orders_lane(3, blocked_at=None)]))

    assert 'data-blocked="12"' in element(blocked, "lane-3-meta") and "blocked at offset 12" in blocked
    assert 'data-marker="blocked" data-offset="12"' in blocked
    assert "data-blocked" not in element(cleared, "lane-3-meta") and "blocked at" not in cleared


def test_the_dead_letter_count_and_lanes_update_apart_from_the_orders_lanes():
    page = owner_page()
    page.model(lab_model([orders_lane(0)]))

    grown = dlq_view([dead_letter(0, 0, 1), dead_letter(1, 0, 2)])
    pushed = page.records(appends=[{"view": "dlq", "partition": 0, "records": grown["lanes"][0]["records"]}], lanes=[
        {k: v for k, v in grown["lanes"][0].items() if k != "records"}
    ])  # fmt: skip
    panels = page.panels(lab_model([orders_lane(0)], views=[grown]))

    assert 'id="dlq-lane-0-meta"' in pushed and "end 2" in pushed and 'id="lane-0-meta"' not in pushed
    assert "2 records" in panels and 'id="dlq-lane-0-meta"' not in panels, "each once"


def test_records_of_two_topics_wait_for_the_browser_apart():
    backlog = RecordsBacklog(window=3)
    backlog.add(
        appends=[
            {"view": "orders", "partition": 0, "records": [record(0, 1)]},
            {"view": "dlq", "partition": 0, "records": [record(0, 9)]},
        ],
        lanes=[],
    )

    appends, _ = backlog.take()

    assert sorted((a["view"], [r["offset"] for r in a["records"]]) for a in appends) == [("dlq", [9]), ("orders", [1])]


def test_appends_of_two_topics_with_the_same_partition_are_each_new():
    page = owner_page()
    page.model(lab_model([orders_lane(0, [record(0, 5)])], views=[dlq_view([dead_letter(5, 0, 1)])]))

    html = page.records(
        appends=[
            {"view": "orders", "partition": 0, "records": [record(0, 5), record(0, 6)]},
            {"view": "dlq", "partition": 0, "records": [dead_letter(5, 0, 1), dead_letter(6, 0, 2)]},
        ],
        lanes=[],
    )

    assert re.findall(r'id="((?:dlq-)?lane-0-events)"', html) == ["lane-0-events", "dlq-lane-0-events"]
    assert re.findall(r'data-offset="(\d+)"', html) == ["6", "6"], "only what each lane lacks"


# --- state.json -------------------------------------------------------------------------------


def test_state_json_lists_the_dead_letter_topic_the_poison_records_and_blocked_partitions():
    orders = {"name": ORDERS, "role": "orders", "partitions": [{"partition": 0, "log_end": 3, "blocked_at": 2}], "error": None}  # fmt: skip
    dlq = {"name": DLQ, "role": "dlq", "partitions": [{"partition": 0, "log_start": 0, "log_end": 1}], "records": 1}
    state = selectors.lab_state({**lab_model([orders_lane(0)], poison=[mark(0, 2)]), "topics": [orders, dlq]})

    assert state["topics"] == [orders, dlq], "the orders topic first, as before"
    assert state["dlq"] == {"topic": DLQ, "partitions": dlq["partitions"], "records": 1}
    assert state["poison"] == [mark(0, 2)]


def test_dom_prefixes_keep_the_orders_lanes_ids():
    assert live_view.dom_prefix("orders") == ""
    assert live_view.dom_prefix("dlq") == "dlq-"


# --- The observer's model ----------------------------------------------------------------------


def test_the_observers_model_marks_what_a_dead_letter_points_at_and_the_lanes_a_crash_blocks():
    from kafkalab.kafka.tail import TailRecord
    from kafkalab.runner.lab_observer import LabObserver
    from kafkalab.runner.live import LabLive

    live = LabLive(7)
    live.blocked = {1: 4}  # as the supervisor notes a crash loop
    observer = LabObserver(lab_id=7, topic=ORDERS, group_id="g", live=live, loop=None, layer=None)
    for partition in (0, 1):
        observer._lane(partition)
    letter = TailRecord(DLQ, 0, 0, b"order-1", b"{}", tuple(letter_headers(0, 2)), 1)
    foreign = TailRecord(DLQ, 0, 1, None, b"junk", (), 2)

    shown = [observer._add_to_view(observer._views[DLQ], record, shown=True) for record in (letter, foreign)]
    lab = observer.model()

    assert [r["dead_letter"] and r["dead_letter"]["offset"] for r in shown] == [2, None]
    assert lab["poison"] == [
        {"partition": 0, "offset": 2, "reason": "contract", "message": "'customerId' is missing", "consumer": "c1", "action": "dead-lettered"}
    ]  # fmt: skip
    assert [lane["blocked_at"] for lane in lab["lanes"]] == [None, 4]
    assert [p["blocked_at"] for p in lab["topics"][0]["partitions"]] == [None, 4]
    dlq, invoices = lab["views"]
    assert invoices["view"] == "invoices" and invoices["records"] == 0
    assert (dlq["topic"], dlq["records"], [r["offset"] for r in dlq["lanes"][0]["records"]]) == (DLQ, 2, [0, 1])
    assert lab["topics"][1]["role"] == "dlq" and lab["lab"]["dlq_topic"] == DLQ
