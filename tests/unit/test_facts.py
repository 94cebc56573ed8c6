"""The numbers a learner reads (lag, duplicates, missed, a rebalance's duration), computed once."""

from __future__ import annotations

from kafkalab.labs import facts


def test_lag_is_what_the_group_has_not_committed():
    assert facts.lag(log_end=10, committed=7) == 3
    assert facts.lag(log_end=10, committed=10) == 0


def test_lag_is_unknown_until_both_ends_are_known():
    assert facts.lag(log_end=None, committed=3) is None
    assert facts.lag(log_end=5, committed=None) is None


def test_lag_is_never_negative_while_the_log_end_catches_up():
    # The probe's log end may be a poll behind a commit that already counts a newer record.
    assert facts.lag(log_end=4, committed=5) == 0


def test_each_extra_email_of_a_record_is_one_duplicate():
    assert facts.duplicates({(0, 1): 1, (0, 2): 3, (1, 0): 2}) == 3
    assert facts.duplicates({}) == 0


def test_missed_are_records_committed_past_and_never_emailed():
    records = [(0, 0, "a"), (0, 1, "b"), (0, 2, "c"), (1, 0, "d"), (1, 1, "e")]
    found = facts.missed(records=records, committed={0: 2, 1: 1}, emailed={(0, 0)}, in_flight=set())

    assert found == [facts.Missed(0, 1, "b"), facts.Missed(1, 0, "d")]


def test_a_record_being_emailed_right_now_is_not_missed():
    found = facts.missed(records=[(0, 0, "a")], committed={0: 1}, emailed=set(), in_flight={(0, 0)})

    assert found == []


def test_nothing_is_missed_in_a_partition_the_group_never_committed():
    found = facts.missed(records=[(3, 0, None), (3, 1, None)], committed={}, emailed=set(), in_flight=set())

    assert found == []


def test_missed_records_are_listed_in_partition_and_offset_order():
    records = [(1, 5, None), (0, 9, None), (1, 2, None)]
    found = facts.missed(records=records, committed={0: 10, 1: 10}, emailed=set(), in_flight=set())

    assert [(m.partition, m.offset) for m in found] == [(0, 9), (1, 2), (1, 5)]


def test_a_rebalance_lasts_from_its_cause_to_its_last_change():
    assert facts.duration_ms(started_at=100.0, ended_at=106.5) == 6500
    assert facts.duration_ms(started_at=100.0, ended_at=None) is None, "still in progress"
