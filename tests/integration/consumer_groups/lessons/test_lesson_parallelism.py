"""Lesson 3, walked on a real lab: a group's members share the partitions, one reader per
partition; a member beyond the partition count waits, and steps in when another one leaves."""

from __future__ import annotations

from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import GroupView, Lab, LabSocket

SLUG = "parallelism"


def described(assignment: dict[str, list[int]]) -> str:
    """An assignment as the explanation writes it: `c1: P0, P1; c2: P2, P3`."""
    return "; ".join(f"{name}: {', '.join(f'P{p}' for p in sorted(ps))}" for name, ps in sorted(assignment.items()))


def test_parallelism_step_by_step(lab: Lab, page: LabSocket, group: GroupView):
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert walk.statuses() == {
        "one-reads-all": "current",
        "two-share": "pending",
        "four-share": "pending",
        "fifth-is-idle": "pending",
        "idle-steps-in": "pending",
    }

    first = lab.add_consumer()
    why = walk.wait_passed("one-reads-all")
    assert f"{first}: P0, P1, P2, P3" in why, why

    # One consumer reading everything is not yet "two consumers share".
    walk.predict("two-share", 1)
    walk.still_current("two-share")
    second = lab.add_consumer()
    why = walk.wait_passed("two-share")
    kafka_says = group.wait_assignment(lambda a: set(a) == {first, second}, "Kafka's view of two members")
    assert "2 members now split the 4 partitions" in why, why
    assert described(kafka_says) in why, (why, kafka_says)
    assert "You predicted that." in why, why

    third, fourth = lab.add_consumer(), lab.add_consumer()
    why = walk.wait_passed("four-share")
    kafka_says = group.wait_assignment(lambda a: len(a) == 4, "Kafka's view of four members")
    assert all(len(partitions) == 1 for partitions in kafka_says.values()), kafka_says
    assert described(kafka_says) in why, (why, kafka_says)
    assert {first, second, third, fourth} == set(kafka_says)

    walk.predict("fifth-is-idle", 1)
    fifth = lab.add_consumer()
    why = walk.wait_passed("fifth-is-idle")
    kafka_says = group.wait_assignment(lambda a: len(a) == 5, "Kafka's view of five members")
    idle = [name for name, partitions in kafka_says.items() if not partitions]
    assert len(idle) == 1 and fifth in kafka_says, kafka_says
    assert f"The group has 5 members but the topic has 4 partitions, so {idle[0]} got" in why, why
    page.wait(lambda shown: idle[0] in shown.cards and shown.cards[idle[0]].partitions == [], "the idle card, pushed")

    busy = sorted(name for name, partitions in kafka_says.items() if partitions)[0]
    assert lab.act(busy, "stop").status == 200
    why = walk.wait_passed("idle-steps-in")
    kafka_says = group.wait_assignment(lambda a: busy not in a and len(a) == 4, "Kafka's view after the stop")
    taken = ", ".join(f"P{p}" for p in kafka_says[idle[0]])
    assert taken, kafka_says
    assert f"When {busy} left, the group rebalanced and {idle[0]}, idle until then, now reads {taken}" in why, why
    assert "Lesson complete" in walk.page()
