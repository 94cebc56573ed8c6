"""LabLive's poison records and blocked partitions, as the supervisor feeds them from reports."""

from __future__ import annotations

from kafkalab.labs import facts
from kafkalab.runner.live import POISON_KEPT, Email, LabLive, Poison, PoisonAction


def poison(partition: int, offset: int, action: PoisonAction, *, consumer: str = "c1", at: float = 1.0) -> Poison:
    return Poison(consumer, partition, offset, "contract", "fails its contract", str(action), at)


def test_a_crash_blocks_its_partition_until_a_consumer_reads_past_the_record():
    live = LabLive(1)
    live.consumer("c1")

    live.note_poison(poison(2, 7, PoisonAction.CRASHED))
    live.note_received("c1", 2, 7)  # the restarted process reads it again: still stuck

    assert live.blocked == {2: 7}
    live.note_received("c2", 2, 8)
    assert live.blocked == {}


def test_skipping_or_dead_lettering_the_record_unblocks_its_partition():
    for action in (PoisonAction.SKIPPED, PoisonAction.DEAD_LETTERED):
        live = LabLive(1)
        live.note_poison(poison(0, 3, PoisonAction.CRASHED))

        live.note_poison(poison(0, 3, action, consumer="c2"))

        assert live.blocked == {}, action
        assert live.poison[(0, 3)].action == action, "the newest report of a record wins"


def test_stopping_the_crashing_consumer_unblocks_only_its_partitions():
    live = LabLive(1)
    live.note_poison(poison(0, 3, PoisonAction.CRASHED, consumer="c1"))
    live.note_poison(poison(1, 5, PoisonAction.CRASHED, consumer="c2"))

    live.unblock_consumer("c1")

    assert live.blocked == {1: 5}


def test_poison_records_are_bounded_newest_kept():
    live = LabLive(1)
    for offset in range(POISON_KEPT + 20):
        live.note_poison(poison(0, offset, PoisonAction.SKIPPED))
    live.note_poison(poison(0, 25, PoisonAction.RETRYING))  # seen again: now the newest

    assert len(live.poison) == POISON_KEPT
    assert (0, 0) not in live.poison
    assert list(live.poison)[-1] == (0, 25)


def test_a_skipped_record_is_a_missed_email_with_its_reason_and_is_not_counted_as_sent():
    live = LabLive(1)

    live.note_email(Email("c1", 0, 4, None, None, 1.0, missed=True, reason="contract"))

    assert live.emails_sent == 0
    assert (0, 4) not in live.email_counts
    assert live.recent_emails[0].reason == "contract"
    assert live.take_unsaved_emails()[0].missed
    found = facts.missed(records=[(0, 4, "k")], committed={0: 5}, emailed=live.email_counts, in_flight=live.in_flight())
    assert [(m.partition, m.offset) for m in found] == [(0, 4)], "committed past and never emailed"


def test_a_dead_lettered_record_is_not_a_missed_email():
    live = LabLive(1)

    live.note_poison(poison(0, 4, PoisonAction.DEAD_LETTERED))

    found = facts.missed(records=[(0, 4, "k")], committed={0: 5}, emailed=live.email_counts, in_flight=live.in_flight())
    assert found == [], "it waits in the dead-letter topic, to be replayed"


def test_getting_past_the_crash_record_ends_the_crash_loop():
    live = LabLive(1)
    consumer = live.consumer("c1")
    consumer.crashes, consumer.crash_streak, consumer.crashed_on = 3, 3, (1, 9)

    assert consumer.failure_data()["crash_looping"]
    live.note_received("c1", 1, 9)
    assert consumer.crash_streak == 3
    live.note_passed("c1", 1, 9)
    assert consumer.crash_streak == 0 and consumer.crashes == 3
    assert not consumer.failure_data()["crash_looping"]


def test_the_card_counts_down_to_the_restart():
    live = LabLive(1)
    consumer = live.consumer("c1")
    consumer.restart_at = 100.0

    assert consumer.failure_data(now=96.5)["restart_in_s"] == 4
    assert consumer.failure_data(now=101.0)["restart_in_s"] == 0


def test_a_reset_forgets_poison_and_blocks():
    live = LabLive(1)
    live.note_poison(poison(0, 1, PoisonAction.CRASHED))
    live.note_poison(poison(0, 2, PoisonAction.DEAD_LETTERED))

    live.reset()

    assert (live.poison, live.blocked, live.in_flight()) == ({}, {}, set())
