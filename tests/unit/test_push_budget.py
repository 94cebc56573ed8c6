"""The observer's push budget: records go out at once until the lab pushes faster than its rate."""

from __future__ import annotations

from kafkalab.runner.lab_observer import PushBudget


def test_a_few_pushes_go_at_once_then_one_per_token():
    budget = PushBudget(rate=10.0, burst=2.0)
    now = 100.0
    budget._updated = now  # a fresh bucket, full

    for _ in range(2):
        assert budget.wait(now) == 0
        budget.spend(now)
    assert abs(budget.wait(now) - 0.1) < 1e-9, "the third waits for a token: 1/rate"
    assert budget.wait(now + 0.1) == 0


def test_a_steady_pace_below_the_rate_never_waits():
    budget = PushBudget(rate=25.0, burst=3.0)
    now = budget._updated
    for step in range(200):  # 20 a second
        now += 0.05
        assert budget.wait(now) == 0, step
        budget.spend(now)
