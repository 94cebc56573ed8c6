"""A partition's lag over the last minutes: a bounded ring of one sample a second, handed out as
at most 90 points. The clock is passed in: no waiting here."""

from __future__ import annotations

from kafkalab.runner.lag_history import LagHistory


def sampled(lags: list[int | None], *, start: float = 1000.0, every: float = 1.0, **history) -> LagHistory:
    ring = LagHistory(**history)
    for second, lag in enumerate(lags):
        ring.sample(lag, now=start + second * every)
    return ring


def test_one_sample_a_second_counts_whatever_the_number_of_looks():
    ring = LagHistory(span_seconds=10, points=10)

    kept = [ring.sample(lag, now=at) for lag, at in [(3, 100.0), (9, 100.5), (4, 101.0), (5, 101.9)]]

    assert kept == [True, False, True, False], "the first look in each second"
    assert ring.points() == [3, 4]
    assert ring.as_data()["now"] == 4


def test_an_unknown_lag_is_not_kept():
    ring = sampled([None, None, 2])

    assert ring.points() == [2]
    assert sampled([None]).as_data() == {
        "span_seconds": 180,
        "seconds_per_point": 2.0,
        "points": [],
        "now": None,
        "peak": None,
    }


def test_the_ring_is_bounded_to_its_span():
    ring = sampled(list(range(1000)), span_seconds=180, points=180)

    assert ring.points() == list(range(820, 1000)), "the last 180 seconds"


def test_a_long_history_is_at_most_90_points_each_the_highest_lag_of_its_stretch():
    lags = [0] * 180
    lags[101] = 40  # a one-second spike: never averaged away
    ring = sampled(lags, start=1000.0)

    data = ring.as_data()
    assert len(data["points"]) == 90 and data["seconds_per_point"] == 2.0
    assert data["points"][50] == 40 and data["peak"] == 40
    assert sum(data["points"]) == 40, "the spike once"


def test_points_are_aligned_on_the_clock_so_a_finished_one_never_changes():
    ring = sampled([1, 2, 3, 4], start=1000.0, span_seconds=20, points=10)
    assert ring.points() == [2, 4], "seconds 1000-1001 and 1002-1003"

    ring.sample(0, now=1004.0)
    assert ring.points() == [2, 4, 0], "a new stretch begins; the finished ones stay"


def test_seconds_the_observer_missed_keep_the_last_lag_seen():
    ring = LagHistory(span_seconds=10, points=10)
    ring.sample(5, now=100.0)
    ring.sample(7, now=104.2)

    assert ring.points() == [5, 5, 5, 5, 7], "the time axis stays true"

    ring.sample(1, now=10_000.0)
    assert ring.points() == [7] * 9 + [1], "a long gap fills the ring at most"
