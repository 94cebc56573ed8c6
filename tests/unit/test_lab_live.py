"""LabLive: how the runner groups the processes' assignment reports into rebalances, and counts
the outbox. No Kafka here: the reports are what the processes would send."""

from __future__ import annotations

from kafkalab.runner.live import PALETTE, Email, LabLive

QUIET = 0.5  # well inside the quiet period that closes a rebalance
LONG_QUIET = 30.0  # well past it


def email(partition: int, offset: int, consumer: str = "c1") -> Email:
    return Email(consumer, partition, offset, order_id=f"order-{partition}-{offset}", event_type="OrderCreated", at=1.0)


def test_the_changes_a_join_causes_are_one_rebalance_named_after_the_join():
    live = LabLive(1)
    live.expect_rebalance("c2 joined the group", at=100.0, starts_now=True)

    live.note_assignment_change("c1", "revoked", [0, 1, 2, 3], at=100.2)
    live.note_assignment_change("c1", "assigned", [0, 1], at=100.3)
    live.note_assignment_change("c2", "assigned", [2, 3], at=100.3)

    [rebalance] = live.rebalances
    assert rebalance.trigger == "c2 joined the group"
    assert rebalance.started_at == 100.0, "the clock starts when the consumer joins"
    assert rebalance.as_changes() == [
        {"consumer": "c1", "revoked": [0, 1, 2, 3], "assigned": [0, 1], "lost": []},
        {"consumer": "c2", "revoked": [], "assigned": [2, 3], "lost": []},
    ]


def test_a_rebalance_stays_open_while_reports_come_and_closes_once_quiet():
    live = LabLive(1)
    live.expect_rebalance("c1 joined the group", at=100.0, starts_now=True)
    rebalance = live.note_assignment_change("c1", "assigned", [0, 1, 2, 3], at=100.4)

    live.close_quiet_rebalance(now=100.4 + QUIET)
    assert live.open_rebalance is rebalance
    assert live.take_closed_rebalances() == []
    assert rebalance.duration_ms is None, "in progress"

    live.close_quiet_rebalance(now=100.4 + LONG_QUIET)
    assert live.open_rebalance is None
    assert live.take_closed_rebalances() == [rebalance]
    assert live.take_closed_rebalances() == [], "each closed rebalance is handed over once, to be saved"
    assert rebalance.ended_at == 100.4, "it ended with its last change, not when it was noticed"
    assert rebalance.duration_ms == 400


def test_a_new_cause_closes_the_open_rebalance_and_names_the_next():
    live = LabLive(1)
    live.expect_rebalance("c2 joined the group", at=100.0, starts_now=True)
    joined = live.note_assignment_change("c2", "assigned", [2, 3], at=100.1)

    live.expect_rebalance("c2 stopped and left the group", at=100.2, starts_now=True)
    stopped = live.note_assignment_change("c2", "revoked", [2, 3], at=100.3)
    live.note_assignment_change("c1", "assigned", [0, 1, 2, 3], at=101.0)

    assert joined is not stopped
    assert live.take_closed_rebalances() == [joined]
    assert [r.trigger for r in live.rebalances] == ["c2 stopped and left the group", "c2 joined the group"]
    assert stopped.as_changes() == [
        {"consumer": "c1", "revoked": [], "assigned": [0, 1, 2, 3], "lost": []},
        {"consumer": "c2", "revoked": [2, 3], "assigned": [], "lost": []},
    ]


def test_a_kill_starts_the_clock_at_the_kill_not_when_the_group_notices():
    live = LabLive(1)
    live.expect_rebalance("c2 was killed; the group waited for its session timeout (6 s)", at=100.0, starts_now=True)

    live.note_assignment_change("c1", "revoked", [0, 1], at=106.25)
    rebalance = live.note_assignment_change("c1", "assigned", [0, 1, 2, 3], at=106.5)
    live.close_quiet_rebalance(now=106.5 + LONG_QUIET)

    assert rebalance.started_at == 100.0
    assert rebalance.duration_ms == 6500, "the session timeout is part of the heal time"


def test_a_change_nobody_caused_is_the_group_changing_from_its_first_report():
    live = LabLive(1)
    live.expect_rebalance("c1 crashed", at=100.0)  # no clock: it starts with the first change

    crashed = live.note_assignment_change("c2", "assigned", [0], at=103.0)
    live.close_quiet_rebalance(now=103.0 + LONG_QUIET)
    unexplained = live.note_assignment_change("c2", "revoked", [0], at=200.0)

    assert (crashed.trigger, crashed.started_at) == ("c1 crashed", 103.0)
    assert (unexplained.trigger, unexplained.started_at) == ("the group changed", 200.0)


def test_a_cause_long_past_is_not_blamed_for_a_later_rebalance():
    live = LabLive(1)
    live.expect_rebalance("c1 joined the group", at=100.0, starts_now=True)

    rebalance = live.note_assignment_change("c1", "assigned", [0], at=400.0)

    assert rebalance.trigger == "the group changed"


def test_repeated_reports_of_a_partition_are_counted_once():
    live = LabLive(1)
    live.note_assignment_change("c1", "lost", [1, 0], at=1.0)
    rebalance = live.note_assignment_change("c1", "lost", [0, 2], at=1.1)

    assert rebalance.as_changes() == [{"consumer": "c1", "revoked": [], "assigned": [], "lost": [0, 1, 2]}]


def test_an_order_emailed_twice_is_one_duplicate():
    live = LabLive(1)
    first, other, again = email(0, 5), email(1, 3), email(0, 5, consumer="c2")

    for sent in (first, other, again):
        live.note_email(sent)

    assert live.emails_sent == 3
    assert live.duplicates == 1
    assert (first.duplicate, other.duplicate, again.duplicate) == (False, False, True)
    assert list(live.recent_emails) == [again, other, first], "newest first"
    assert live.take_unsaved_emails() == [first, other, again]
    assert live.take_unsaved_emails() == []


def test_every_extra_email_of_an_order_is_a_duplicate():
    live = LabLive(1)
    for _ in range(3):
        live.note_email(email(2, 7))

    assert live.duplicates == 2


def test_duplicates_are_judged_against_emails_of_earlier_runs():
    live = LabLive(1)
    live.load_emails([(0, 5), (0, 6)])

    repeat = email(0, 5)
    live.note_email(repeat)

    assert repeat.duplicate
    assert (live.emails_sent, live.duplicates) == (3, 1)


def test_a_reset_forgets_rebalances_and_emails():
    live = LabLive(1)
    live.note_assignment_change("c1", "assigned", [0], at=1.0)
    live.note_email(email(0, 0))
    live.note_email(email(0, 0))

    live.reset()

    assert list(live.rebalances) == [] and live.open_rebalance is None
    assert live.take_closed_rebalances() == []
    assert (live.emails_sent, live.duplicates, list(live.recent_emails)) == (0, 0, [])
    assert live.take_unsaved_emails() == []


def test_partitions_belong_to_live_consumers_by_their_own_reports():
    live = LabLive(1)
    reader, killed = live.consumer("c1", {}), live.consumer("c2", {})
    reader.status, reader.assigned = "running", [0, 2]
    killed.status, killed.assigned = "killed", [1, 3]

    assert live.owners() == {0: reader, 2: reader}
    assert reader.partitions_attr == "0,2"


def test_each_of_eight_consumers_has_a_colour_of_its_own():
    live = LabLive(1)
    colours = [live.consumer(f"c{n}", {}).colour for n in range(1, 9)]

    assert colours == PALETTE
    assert live.consumer("c1").colour == PALETTE[0], "a consumer keeps its colour"
