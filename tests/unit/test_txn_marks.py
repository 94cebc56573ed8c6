"""Judging transactions from what a read_uncommitted and a read_committed reader of a partition got.

The offsets here follow what Kafka did on the real cluster (tests/integration/test_txn_marks_live.py
checks the same against brokers): a committed transaction of two records at 0–1 has its COMMIT
marker at 2; an aborted one at 3–4 its ABORT marker at 5; both readers' positions move past
markers and aborted records once they are decided.
"""

from __future__ import annotations

from kafkalab.runner.txn_marks import ABORT, ABORTED, COMMIT, OPEN, OPEN_AFTER_SECONDS, Marker, PartitionTxnMarks


def read(marks: PartitionTxnMarks, *, uncommitted: list[int], committed: list[int], at: float = 0.0) -> None:
    for offset in uncommitted:
        marks.saw(offset, now=at)
    for offset in committed:
        marks.saw_committed(offset)


def test_a_committed_then_an_aborted_transaction_give_their_markers_and_the_aborted_records():
    marks = PartitionTxnMarks()
    marks.begin(0)
    read(marks, uncommitted=[0, 1, 3, 4], committed=[0, 1])
    marks.positions(uncommitted=6, committed=6, committed_at_end=True)

    assert marks.judge() == [Marker(2, COMMIT), Marker(5, ABORT)]
    assert list(marks.aborted) == [3, 4]
    assert [marks.txn_of(o) for o in (0, 1, 3, 4)] == [None, None, ABORTED, ABORTED]
    assert marks.judge() == [], "each offset is judged once"


def test_records_past_where_a_caught_up_read_committed_reader_waits_are_open_once_it_had_time_to_fetch():
    marks = PartitionTxnMarks()
    marks.begin(0)
    read(marks, uncommitted=[0, 1], committed=[0, 1], at=10.0)
    marks.positions(uncommitted=3, committed=3, committed_at_end=True)  # COMMIT marker at 2
    read(marks, uncommitted=[3, 4], committed=[], at=10.0)
    marks.positions(uncommitted=5, committed=3, committed_at_end=True)

    assert marks.judge() == [Marker(2, COMMIT)]
    assert marks.txn_of(3, now=10.0) is None, "just read: the committed reader may simply not have fetched it"
    assert marks.txn_of(3, now=10.0 + OPEN_AFTER_SECONDS) == OPEN
    assert marks.last_stable(probed=2) == 3, "the reader's position is newer than the probe's answer"

    # The transaction commits: its marker at 5, and the committed reader gets both records.
    read(marks, uncommitted=[], committed=[3, 4])
    marks.positions(uncommitted=6, committed=6, committed_at_end=True)
    assert marks.judge() == [Marker(5, COMMIT)]
    assert marks.txn_of(3, now=20.0) is None and marks.txn_of(4, now=20.0) is None
    assert not marks.aborted


def test_nothing_is_open_while_the_committed_reader_is_still_catching_up():
    marks = PartitionTxnMarks()
    marks.begin(0)
    read(marks, uncommitted=[0, 1, 2], committed=[0], at=0.0)
    marks.positions(uncommitted=3, committed=1, committed_at_end=False)
    assert marks.txn_of(2, now=5.0) is None


def test_offsets_before_both_readers_began_are_never_judged():
    marks = PartitionTxnMarks()
    marks.begin(10)
    read(marks, uncommitted=[8, 9, 10, 11], committed=[11])
    marks.positions(uncommitted=12, committed=12, committed_at_end=True)
    assert marks.judge() == []
    assert list(marks.aborted) == [10], "offset 10 was read uncommitted only: aborted"


def test_an_offset_is_judged_only_once_both_readers_passed_it():
    marks = PartitionTxnMarks()
    marks.begin(0)
    read(marks, uncommitted=[0], committed=[])
    marks.positions(uncommitted=1, committed=None, committed_at_end=False)
    assert marks.judge() == [] and not marks.aborted, "the committed reader has not passed offset 0 yet"


def test_memory_stays_bounded():
    marks = PartitionTxnMarks(remembered=10)
    marks.begin(0)
    offsets = list(range(0, 100, 2))  # every other offset aborted, a marker after each
    read(marks, uncommitted=offsets, committed=[])
    marks.positions(uncommitted=100, committed=100, committed_at_end=True)
    marks.judge()
    assert len(marks.aborted) == 10 and len(marks.markers) == 10
    assert min(marks.aborted) == 80 and marks.aborted_since(90) == [90, 92, 94, 96, 98]
