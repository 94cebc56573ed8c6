"""Delivery semantics, out of the real clients: each scenario is one real consumer process,
killed (SIGKILL) at a moment the test picks by watching Kafka and the page, then restarted.

Nothing is simulated: duplicates and losses come from what the process had committed, as Kafka's
coordinator reports it, when it died.
"""

from __future__ import annotations

import pytest

from tests.integration.consumer_groups.support import PARTITIONS, GroupView, Lab, LabSocket, wait_for

ALL = list(range(PARTITIONS))
SESSION_TIMEOUT_MS = 3000  # the restarted consumer waits this long for its dead self to leave


def outbox(lab: Lab) -> dict:
    return lab.state()["outbox"]


def missed(outbox: dict) -> list[tuple[int, int]]:
    return [(m["partition"], m["offset"]) for m in outbox["missed_records"]]


def wait_outbox(lab: Lab, **expected: int) -> dict:
    return wait_for(
        lambda: (counts := outbox(lab)) and all(counts[k] == v for k, v in expected.items()) and counts,
        f"the outbox showing {expected}",
    )


def start_alone(lab: Lab, group: GroupView, **config: object) -> str:
    name = lab.add_consumer(session_timeout_ms=SESSION_TIMEOUT_MS, **config)
    group.wait_assignment(lambda a: a == {name: ALL}, f"{name} owning every partition")
    return name


def kill(lab: Lab, name: str) -> None:
    assert lab.act(name, "kill").status == 200
    assert lab.wait_status(name, "killed")["pid"] is None


def restart(lab: Lab, group: GroupView, name: str) -> None:
    assert lab.act(name, "restart").status == 200
    lab.wait_status(name, "running")
    group.wait_assignment(lambda a: a == {name: ALL}, f"{name} back in the group with every partition")


def test_auto_commit_then_kill_before_the_next_commit_emails_every_order_twice(
    lab: Lab, group: GroupView, page: LabSocket
):
    orders = 20
    name = start_alone(lab, group, commit_mode="auto", auto_commit_interval_ms=60_000)
    lab.burst(orders)
    wait_outbox(lab, sent=orders, duplicates=0)
    assert group.committed() == {}, "emailed every order, committed none yet"

    kill(lab, name)
    restart(lab, group, name)

    counts = wait_outbox(lab, sent=2 * orders)
    assert (counts["duplicates"], counts["missed"]) == (orders, 0), "every order emailed twice, none lost"
    page.wait(lambda shown: shown.outbox == (2 * orders, orders, 0), "the outbox counting the duplicates")


AT_MOST_ONCE = {
    "auto-commit-storing-offsets-on-poll": {
        "commit_mode": "auto",
        "auto_commit_interval_ms": 300,
        "enable_auto_offset_store": True,
        "processing_delay_ms": 8000,
    },
    "manual-commit-before-processing": {"commit_mode": "before", "processing_delay_ms": 8000},
}


@pytest.mark.parametrize("config", AT_MOST_ONCE.values(), ids=AT_MOST_ONCE.keys())
def test_committed_before_processing_then_killed_mid_processing_loses_the_order(
    lab: Lab, group: GroupView, page: LabSocket, config: dict
):
    name = start_alone(lab, group, **config)
    partition, offset = lab.order()
    wait_for(lambda: group.committed().get(partition) == offset + 1, "the group committing past the order")

    kill(lab, name)  # while it still "processes" the order: it was committed, not emailed

    # state.json's model sees the commit within a probe round of Kafka.
    state = wait_for(lambda: (counts := outbox(lab))["missed"] and counts, "the order counted as missed")
    assert state["sent"] == 0, "killed mid-processing: no email went out"
    assert missed(state) == [(partition, offset)]
    restart(lab, group, name)
    # Another order shows the restarted consumer at work; the first one it never reads again.
    lab.order()
    counts = wait_outbox(lab, sent=1)
    assert missed(counts) == [(partition, offset)], "it stays missed"
    assert counts["duplicates"] == 0
    page.wait(lambda shown: shown.outbox == (1, 0, 1), "the outbox flagging the missed order")


def test_manual_commit_after_processing_then_killed_mid_processing_emails_the_order_once_later(
    lab: Lab, group: GroupView, page: LabSocket
):
    name = start_alone(lab, group, commit_mode="after", processing_delay_ms=4000)
    partition, offset = lab.order()
    page.wait(lambda shown: shown.positions.get(partition) == offset + 1, f"{name} receiving the order")

    kill(lab, name)  # mid-processing: nothing emailed, nothing committed

    assert group.committed().get(partition, 0) <= offset
    assert outbox(lab)["sent"] == 0
    restart(lab, group, name)
    wait_for(lambda: group.committed().get(partition) == offset + 1, "the group committing after the email")
    counts = outbox(lab)
    assert (counts["sent"], counts["duplicates"], counts["missed"]) == (1, 0, 0), "emailed exactly once, none lost"
