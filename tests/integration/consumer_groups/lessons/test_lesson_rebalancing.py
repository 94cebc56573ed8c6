"""Lesson 4, walked on a real lab: a graceful stop rebalances at once, a kill only after the
session timeout (its partitions orphaned meanwhile), cooperative-sticky revokes only what moves,
and the consumer protocol (KIP-848) lets the broker assign."""

from __future__ import annotations

import time

from tests.integration.consumer_groups.lessons.support import LessonWalk
from tests.integration.consumer_groups.support import PARTITIONS, GroupView, Lab, LabSocket, wait_for

SLUG = "rebalancing"
ALL = list(range(PARTITIONS))
SESSION_TIMEOUT_MS = 6000  # short, so that the kill heals quickly
# Frequent auto-commits, so that the lanes show lag as soon as nobody reads them.
CLASSIC = {"session_timeout_ms": SESSION_TIMEOUT_MS, "auto_commit_interval_ms": 300}
COOPERATIVE = {**CLASSIC, "assignment_strategy": "cooperative-sticky"}


def described(assignment: dict[str, list[int]]) -> str:
    return "; ".join(f"{name}: {', '.join(f'P{p}' for p in sorted(ps))}" for name, ps in sorted(assignment.items()))


def parts(partitions: list[int]) -> str:
    return ", ".join(f"P{p}" for p in sorted(partitions))


def gained(rebalance: dict) -> str:
    """Who gained what in a rebalance, as the explanation writes it."""
    return "; ".join(
        f"{c['consumer']} gained {parts(new)}"
        for c in rebalance["changes"]
        if (new := sorted(set(c["assigned"]) - set(c["revoked"])))
    )


def passed(walk: LessonWalk, step: str) -> str:
    """The step passes; its explanation on one line, as a reader takes it in."""
    return " ".join(walk.wait_passed(step).split())


def seconds(rebalance: dict) -> str:
    return f"{rebalance['duration_ms'] / 1000:.1f}"


def test_rebalancing_step_by_step(lab: Lab, page: LabSocket, group: GroupView):
    # The page is open (its websocket): the runner watches the lab and checks its steps.
    walk = LessonWalk(lab, SLUG)
    walk.begin()
    assert list(walk.statuses()) == ["three-share", "stop-one", "kill-one", "cooperative", "consumer-protocol"]

    # Three range consumers share the four partitions.
    names = [lab.add_consumer(**CLASSIC) for _ in range(3)]
    why = passed(walk, "three-share")
    kafka_says = group.wait_assignment(lambda a: set(a) == set(names), "Kafka's view of three members")
    assert f"Your 3 consumers split the 4 partitions: {described(kafka_says)}" in why, why
    # Enough random keys that every partition has records (and so a committed offset, which the
    # lag of an orphaned partition is counted from, below): 40 leave one empty once in 25,000 runs.
    lab.burst(40)
    wait_for(
        lambda: (ends := group.log_ends()) and all(ends.values()) and group.committed() == ends,
        "every partition read and committed",
    )

    # A graceful stop: the group rebalances at once.
    walk.predict("stop-one", 0)
    walk.still_current("stop-one")
    stopped = max(names, key=lambda n: (len(kafka_says[n]), n))
    asked = time.monotonic()
    assert lab.act(stopped, "stop").status == 200
    why = passed(walk, "stop-one")
    rebalance = lab.wait_rebalance(f"{stopped} stopped")
    assert time.monotonic() - asked < SESSION_TIMEOUT_MS / 1000, "a stop does not wait for the session timeout"
    assert rebalance["duration_ms"] < SESSION_TIMEOUT_MS / 2, rebalance
    assert f"{stopped} said goodbye" in why, why
    assert f"took {seconds(rebalance)} s: {gained(rebalance)}." in why, (why, rebalance)
    changes = {c["consumer"]: c for c in rebalance["changes"]}
    assert changes[stopped]["revoked"] == kafka_says[stopped], rebalance
    survivors = [n for n in names if n != stopped]
    # range is eager: every survivor revoked all it held, even what it got straight back.
    assert all(changes[n]["revoked"] == kafka_says[n] for n in survivors), rebalance
    assert "You predicted that." in why, why

    # A kill: no goodbye; the dead member's partitions wait for its session timeout.
    walk.predict("kill-one", 1)
    before = group.wait_assignment(lambda a: set(a) == set(survivors), "Kafka's view after the stop")
    victim, survivor = (
        max(survivors, key=lambda n: (len(before[n]), n)),
        min(survivors, key=lambda n: (len(before[n]), n)),
    )
    orphaned = before[victim]
    killed = time.monotonic()
    assert lab.act(victim, "kill").status == 200
    lab.burst(40)
    during = wait_for(
        lambda: all((s := lab.state())["groups"][0]["lag"].get(str(p), 0) > 0 for p in orphaned) and s,
        "lag on the orphaned partitions",
        timeout=SESSION_TIMEOUT_MS / 1000,
    )
    assert time.monotonic() - killed < SESSION_TIMEOUT_MS / 1000 - 1, "sampled too late to tell"
    members = {m["consumer"]: m["partitions"] for m in during["groups"][0]["members"]}
    assert members.get(victim) == orphaned, "the dead member still holds them"
    why = passed(walk, "kill-one")
    rebalance = lab.wait_rebalance(f"{victim} was killed")
    assert time.monotonic() - killed > SESSION_TIMEOUT_MS / 1000 - 1, "healed before the session timeout"
    assert rebalance["duration_ms"] > SESSION_TIMEOUT_MS - 1000, rebalance
    assert f"still assigned {parts(orphaned)}" in why, why
    assert f"session.timeout.ms = {SESSION_TIMEOUT_MS / 1000:g} s" in why, why
    assert f"rebalance: {gained(rebalance)}" in why, (why, rebalance)
    assert f"{survivor} gained {parts(orphaned)}" in why, why
    assert f"From the kill to the last new assignment: {seconds(rebalance)} s" in why, why

    # Cooperative-sticky: refused next to a range member, then incremental once alone.
    first = lab.add_consumer(**COOPERATIVE)
    refused = wait_for(
        lambda: "Inconsistent group protocol" in (lab.consumers()[first]["last_error"] or "") and first,
        "the cooperative consumer turned away",
        timeout=20,
    )
    assert group.assignment() == {survivor: ALL}
    assert lab.act(survivor, "stop").status == 200
    group.wait_assignment(lambda a: a == {refused: ALL}, f"{refused} getting in once the group is empty")
    walk.predict("cooperative", 1)
    second = lab.add_consumer(**COOPERATIVE)
    why = passed(walk, "cooperative")
    after = group.wait_assignment(lambda a: set(a) == {first, second}, "Kafka's view of two cooperative members")
    assert group.describe().assignor == "cooperative-sticky"
    assert len(after[first]) == len(after[second]) == 2, after
    assert f"{first} kept {parts(after[first])} throughout" in why, why
    assert f"{first} revoked {parts(after[second])}" in why and f"{second} assigned {parts(after[second])}" in why
    assert f"{second} gained {parts(after[second])}" in why, why

    # The consumer protocol: the broker assigns.
    for name in (first, second):
        assert lab.act(name, "stop").status == 200
    for name in (first, second):
        lab.wait_status(name, "stopped")
    # The broker converts an empty classic group only: wait until Kafka too has no member left.
    wait_for(lambda: (g := group.describe()) is not None and not g.members, "Kafka's view of the group, empty")
    third = lab.add_consumer(group_protocol="consumer")
    try:
        group.wait_assignment(lambda a: a == {third: ALL}, f"{third} alone on the consumer protocol")
    except AssertionError as failed:
        raise AssertionError(f"{failed}; {third}'s last error: {lab.consumers()[third]['last_error']!r}") from None
    fourth = lab.add_consumer(group_protocol="consumer")
    why = passed(walk, "consumer-protocol")
    kafka = group.describe()
    assert kafka.protocol == "CONSUMER"
    after = group.wait_assignment(lambda a: set(a) == {third, fourth}, "Kafka's view of two KIP-848 members")
    assert f"protocol as CONSUMER, with the broker's {kafka.assignor} assignor" in why, why
    assert f"Its 2 members: {described(after)}" in why, why
    assert f"({fourth} joined the group)" in why and f"{fourth} assigned {parts(after[fourth])}" in why, why
    assert "Lesson complete" in walk.page()
