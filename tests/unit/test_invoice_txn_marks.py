"""Transaction marks on the invoices lanes, judged as the orders lanes' are: the observer's model
(lanes and state.json) and what a page is sent. No Kafka here: the offsets are what the two
readers would get of an exactly-once BillingService killed mid-batch (its transaction at 2–3
aborted by the next instance, the ABORT marker at 4; a committed batch at 0 with its COMMIT
marker at 1). tests/integration/consumer_groups/test_billing.py checks the same on the cluster."""

from __future__ import annotations

import re

from kafkalab.kafka.tail import TailRecord
from kafkalab.labs.access import Role
from kafkalab.labs.live_view import Viewer, ViewerPage
from kafkalab.runner import model
from kafkalab.runner.lab_observer import COMMITTED, UNCOMMITTED, LabObserver
from kafkalab.runner.live import LabLive
from kafkalab.runner.txn_marks import PartitionTxnMarks

ORDERS, DLQ, INVOICES = "lab-7.orders", "lab-7.orders.dlq", "lab-7.invoices"


def invoice(partition: int, offset: int) -> dict:
    return {"partition": partition, "offset": offset, "key": f"o{offset}", "event_type": "InvoiceIssued", "timestamp_ms": 1}  # fmt: skip


def invoices_view(records: list[dict], *, aborted=(), opened=(), markers=(), last_stable=5, log_end=5) -> dict:
    lane = model.log_lane_data(view="invoices", partition=0, state={"log_start": 0}, log_end=log_end)
    lane.update(
        last_stable=last_stable,
        txn={"open": list(opened), "aborted": list(aborted)},
        markers=[{"offset": o, "control": c} for o, c in markers],
        records=list(records),
    )
    return model.view_data(view="invoices", topic=INVOICES, lanes=[lane])


def dlq_view() -> dict:
    lane = model.log_lane_data(view="dlq", partition=0, state={"log_start": 0}, log_end=1)
    lane["records"] = [invoice(0, 0)]
    return model.view_data(view="dlq", topic=DLQ, lanes=[lane])


def orders_lane(records: list[dict] = ()) -> dict:
    return {
        "view": "orders", "partition": 0, "leader": 1, "isr": [1], "log_start": 0, "log_end": 10, "last_stable": 10,
        "committed": None, "lag": None, "owner": None, "owner_colour": None, "position": None, "positions": [],
        "blocked_at": None, "txn": {"open": [], "aborted": []}, "markers": [], "records": list(records),
    }  # fmt: skip


def lab_model(views: list[dict], orders: list[dict] = ()) -> dict:
    return {
        "lab": {"topic": ORDERS, "dlq_topic": DLQ, "invoices_topic": INVOICES},
        "lanes": [orders_lane(orders)],
        "views": views,
        "poison": [],
        "groups": [{"id": "g", "state": None, "state_label": None, "protocol": None, "assignor": None, "members": [], "committed": {}, "lag": {}, "error": None}],
        "consumers": [],
        "rebalances": [],
        "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "missed_records": [], "recent": []},
    }  # fmt: skip


def owner_page() -> ViewerPage:
    return ViewerPage(Viewer(lab_id=7, role=Role.OWNER))


def topic_element(html: str, topic: str) -> str:
    """The element carrying data-topic=`topic`, up to the next topic's (or the end)."""
    start = html.index(f'data-topic="{topic}"')
    following = html.find("data-topic=", start + 1)
    return html[start : following if following != -1 else len(html)]


# --- The last stable offset without a probe ------------------------------------------------------


def test_without_a_probe_the_last_stable_offset_is_the_read_committed_readers_only_once_it_caught_up():
    marks = PartitionTxnMarks()
    assert marks.last_stable(None) is None, "neither reader has begun"
    marks.begin(0)
    assert marks.last_stable(None) is None, "no position yet: not 0"

    marks.positions(uncommitted=5, committed=3, committed_at_end=False)
    assert marks.last_stable(None) is None, "still reading: 3 is only a floor"
    assert marks.last_stable(2) == 3, "with a probe, as before: the newer of the two"

    marks.positions(uncommitted=5, committed=5, committed_at_end=True)
    assert marks.last_stable(None) == 5
    marks.positions(uncommitted=8, committed=7, committed_at_end=False)
    assert marks.last_stable(None) is None, "read further, not at the end again yet"


# --- The observer's model --------------------------------------------------------------------------


def observer_with_a_killed_batch() -> LabObserver:
    """Both tails read invoices partition 0 from offset 0: committed 0, COMMIT 1, aborted 2–3, ABORT 4."""
    observer = LabObserver(lab_id=7, topic=ORDERS, group_id="g", live=LabLive(7), loop=None, layer=None)
    invoices, dlq = observer._views[INVOICES], observer._views[DLQ]
    lane = invoices.lane(0)
    lane.state = {"partition": 0, "leader": 1, "replicas": [1], "isr": [1], "log_start": 0, "log_end": 5, "last_stable": None}  # fmt: skip
    lane.started(UNCOMMITTED, 0)
    lane.started(COMMITTED, 0)
    for offset in (0, 2, 3):
        observer._add_to_view(
            invoices, TailRecord(INVOICES, 0, offset, f"o{offset}".encode(), b"{}", (), 1), shown=True
        )
    lane.txn.saw_committed(0)
    lane.txn.positions(uncommitted=5, committed=5, committed_at_end=True)
    lane.txn.judge()
    observer._add_to_view(dlq, TailRecord(DLQ, 0, 0, b"x", b"{}", (), 1), shown=True)
    return observer


def test_the_invoices_lanes_and_topic_carry_transaction_marks_as_the_orders_do():
    lab = observer_with_a_killed_batch().model()

    dlq, invoices = lab["views"]
    [lane] = invoices["lanes"]
    assert lane["last_stable"] == 5
    assert lane["txn"] == {"open": [], "aborted": [2, 3]}
    assert lane["markers"] == [{"offset": 1, "control": "commit"}, {"offset": 4, "control": "abort"}]
    [partition] = next(t for t in lab["topics"] if t["role"] == "invoices")["partitions"]
    assert (partition["last_stable"], partition["aborted"]) == (5, [2, 3])
    assert partition["markers"] == lane["markers"]


def test_the_dead_letter_lanes_get_no_transaction_marks():
    lab = observer_with_a_killed_batch().model()

    dlq = lab["views"][0]
    assert dlq["view"] == "dlq" and [r["offset"] for r in dlq["lanes"][0]["records"]] == [0]
    assert not {"last_stable", "txn", "markers"} & set(dlq["lanes"][0])
    [partition] = next(t for t in lab["topics"] if t["role"] == "dlq")["partitions"]
    assert not {"aborted", "markers"} & set(partition)


# --- What a page is sent ---------------------------------------------------------------------------


def test_the_page_a_viewer_opens_marks_the_aborted_invoices_and_their_markers_in_the_invoices_lanes():
    view = invoices_view(
        [invoice(0, 0), invoice(0, 2), invoice(0, 3)], aborted=[2, 3], markers=[(1, "commit"), (4, "abort")]
    )
    html = owner_page().model(lab_model([dlq_view(), view], orders=[invoice(0, 2)]))

    invoices = topic_element(html, INVOICES)
    assert re.findall(r'data-offset="(\d+)" [^>]*data-txn="aborted"', invoices) == ["2", "3"]
    markers = re.findall(r'data-control="(\w+)" data-partition="0" data-offset="(\d+)"', invoices)
    assert markers == [("commit", "1"), ("abort", "4")]
    assert invoices.index('data-offset="1"') < invoices.index('data-offset="2"'), "in offset order"
    assert 'id="invoices-lane-0-meta"' in invoices and 'data-lso="5"' in invoices
    orders, dlq = topic_element(html, ORDERS), topic_element(html, DLQ)
    assert "data-txn=" not in orders and "data-control=" not in orders, "the orders box at 0@2 is not aborted"
    assert "data-txn=" not in dlq and "data-lso" not in dlq and "lane-marks" not in dlq


def test_an_invoices_lane_behind_its_log_end_shows_its_lso_and_the_open_stretch():
    view = invoices_view([invoice(0, 0), invoice(0, 1)], opened=[1], last_stable=1, log_end=2)
    html = owner_page().model(lab_model([view]))

    assert 'data-lso="1"' in html and 'class="lso is-behind"' in html
    marks = html[html.index('id="invoices-lane-0-marks"') :]
    assert 'data-marker="lso" data-offset="1"' in marks and 'class="open-band" data-offset="1"' in marks
    assert re.search(r'data-offset="1" [^>]*data-txn="open"', html)


def test_an_invoice_drawn_open_is_redrawn_aborted_in_its_own_lane_and_its_marker_inserted():
    page = owner_page()
    page.model(lab_model([invoices_view([invoice(0, 0), invoice(0, 2)], opened=[2], last_stable=2, log_end=3)]))

    [lane] = invoices_view([], aborted=[2], markers=[(3, "abort")], last_stable=4, log_end=4)["lanes"]
    html = page.records(appends=[], lanes=[{k: v for k, v in lane.items() if k != "records"}])

    [box] = re.findall(r"<a [^>]*>", html)
    assert 'data-offset="2"' in box and 'data-txn="aborted"' in box and "view=invoices" in box
    assert "hx-swap-oob=\"outerHTML:#invoices-lane-0-events [data-offset='2']\"" in box
    assert '<div hx-swap-oob="beforeend:#invoices-lane-0-events"><span class="txn-marker txn-marker--abort' in html
    assert 'id="invoices-lane-0-meta"' in html and 'data-lso="4"' in html
    assert "#lane-0-events" not in html, "the orders lane is untouched"
    again = page.records(appends=[], lanes=[{k: v for k, v in lane.items() if k != "records"}])
    assert again.strip() == "", "redrawn and inserted once"


def test_invoices_appended_after_their_marks_are_known_come_marked_and_the_panels_carry_new_markers():
    page = owner_page()
    page.model(lab_model([invoices_view([invoice(0, 0)], last_stable=1, log_end=1)]))

    grown = invoices_view([invoice(0, 0), invoice(0, 1)], aborted=[1], markers=[(2, "abort")], last_stable=3, log_end=3)
    panels = page.panels(lab_model([grown]))
    appended = page.records(appends=[{"view": "invoices", "partition": 0, "records": [invoice(0, 1)]}], lanes=[])

    assert "beforeend:#invoices-lane-0-events" in panels and 'data-control="abort"' in panels
    assert 'id="invoices-lane-0-events" hx-swap-oob="beforeend"' in appended
    assert re.search(r'data-offset="1" [^>]*data-txn="aborted"', appended)
