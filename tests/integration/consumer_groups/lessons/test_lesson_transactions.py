"""Lesson 7, walked on a real lab: a transaction's records are in the log before it commits; a
read_committed consumer waits at the LSO; a read_uncommitted one emails an order that is then
aborted; a commit's marker takes an offset and the committed order is emailed. Every number an
explanation shows is checked against what Kafka acknowledged."""

from __future__ import annotations

from tests.integration.consumer_groups.lessons.support import LessonWalk, flat
from tests.integration.consumer_groups.support import PARTITIONS, GroupView, Lab, LabSocket, wait_for

SLUG = "transactions"
ALL = list(range(PARTITIONS))
# Long enough that the broker never aborts a transaction of the walk on its own.
TIMEOUT_MS = 120_000


def transaction(lab: Lab, action: str) -> None:
    response = lab.browser.post(lab.url(f"transaction/{action}/"))
    assert response.status == 200, response.text[:1000]


def start_alone(lab: Lab, group: GroupView, isolation: str) -> str:
    name = lab.add_consumer(isolation_level=isolation)
    group.wait_assignment(lambda a: a == {name: ALL}, f"{name} reading every partition")
    return name


def stop(lab: Lab, name: str) -> None:
    assert lab.act(name, "stop").status == 200
    lab.wait_status(name, "stopped")


def emailed(lab: Lab, name: str) -> int:
    """How many emails `name` sent (state.json's consumers)."""
    return lab.consumers()[name]["emailed"]


def test_transactions_step_by_step(lab: Lab, page: LabSocket, group: GroupView):
    # The open page keeps the lab watched: its lesson is checked live.
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert walk.statuses() == {
        "open": "current",
        "held-back": "pending",
        "aborted-emailed": "pending",
        "committed": "pending",
    }
    response = lab.browser.post(lab.url("transaction/timeout/"), {"timeout_ms": TIMEOUT_MS})
    assert response.status == 200, response.text[:1000]

    # 1. Begin, one order, left open: it is in the log, past the LSO.
    walk.predict("open", 1)
    transaction(lab, "begin")
    partition, offset = lab.order()
    why = flat(walk.wait_passed("open"))
    assert f"partition {partition} at offset(s) {offset}" in why, why
    assert f"last stable offset (LSO) is {offset} while its log ends at {offset + 1}" in why, why

    # 2. A read_committed consumer waits at the LSO while the transaction stays open.
    walk.predict("held-back", 1)
    waiting = start_alone(lab, group, "read_committed")
    why = flat(walk.wait_passed("held-back"))
    assert f"{waiting} reads with read_committed, so its position stays at {offset}" in why, why
    assert emailed(lab, waiting) == 0, "nothing past the LSO"
    transaction(lab, "commit")
    wait_for(lambda: emailed(lab, waiting) == 1, "the committed order emailed")

    # 3. A read_uncommitted consumer emails an order whose transaction is then aborted.
    walk.predict("aborted-emailed", 1)
    stop(lab, waiting)
    reckless = start_alone(lab, group, "read_uncommitted")
    transaction(lab, "begin")
    partition, offset = lab.order()
    wait_for(lambda: emailed(lab, reckless) == 1, "the open order emailed at once")
    transaction(lab, "abort")
    why = flat(walk.wait_passed("aborted-emailed"))
    assert f"{reckless} emailed order" in why and f"(partition {partition}, offset {offset})" in why, why
    assert f"an ABORT marker now sits at offset {offset + 1}" in why, why
    assert lab.state()["outbox"]["never_happened"] == 1

    # 4. Commit: the marker takes the next offset, and a read_committed consumer emails the order.
    stop(lab, reckless)
    committed_reader = start_alone(lab, group, "read_committed")
    transaction(lab, "begin")
    partition, offset = lab.order()
    transaction(lab, "commit")
    why = flat(walk.wait_passed("committed"))
    assert f"The records at {offset} of partition {partition}" in why, why
    assert f"COMMIT marker was written at offset {offset + 1}: {committed_reader} emailed" in why, why
    stop(lab, committed_reader)
