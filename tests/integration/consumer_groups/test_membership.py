"""Who reads which partition: real NotificationService processes joining, leaving and dying in a
lab's consumer group, checked against Kafka's own description of the group."""

from __future__ import annotations

import time

from kafkalab.kafka.consumer_config import ConsumerConfig
from tests.integration.consumer_groups.support import (
    PARTITIONS,
    GroupView,
    Lab,
    LabSocket,
    processes_of,
    split_evenly,
    wait_for,
)

ALL = list(range(PARTITIONS))


def test_two_consumers_split_four_partitions_two_and_two(lab: Lab, group: GroupView, page: LabSocket):
    first, second = lab.add_consumer(), lab.add_consumer()

    assignment = group.wait_assignment(split_evenly({first, second}), "the group splitting 4 partitions 2 and 2")

    cards = page.wait(
        lambda shown: (
            {c.name: c.partitions for c in shown.cards.values() if c.status == "running"} == assignment and shown.cards
        ),
        f"cards with the group's assignment {assignment}",
    )
    assert set(cards) == {first, second}
    # state.json answers from the live model, whose group view is at most one probe round old.
    state = wait_for(
        lambda: (state := lab.state())["groups"][0]["state"] == "STABLE" and state, "state.json's group Stable"
    )
    [described] = state["groups"]
    assert {m["consumer"]: m["partitions"] for m in described["members"]} == assignment
    pids = {c["name"]: c["pid"] for c in state["consumers"] if c["status"] == "running"}
    assert set(pids) == {first, second}
    assert {p.name: p.pid for p in processes_of(lab)} == pids, "each card is a process of its own"


def test_a_graceful_stop_rebalances_at_once(lab: Lab, group: GroupView):
    session_timeout_s = 30  # long, so "at once" and "after the session timeout" can't be confused
    first, second = (lab.add_consumer(session_timeout_ms=session_timeout_s * 1000) for _ in range(2))
    split = group.wait_assignment(split_evenly({first, second}), "the group splitting 4 partitions 2 and 2")

    asked = time.monotonic()
    assert lab.act(second, "stop").status == 200
    group.wait_assignment(lambda a: a == {first: ALL}, f"{first} owning every partition", timeout=session_timeout_s)
    healed_after = time.monotonic() - asked

    assert healed_after < session_timeout_s / 2, f"healed after {healed_after:.1f}s, not at once"
    print(f"stop → {first} owns all partitions: {healed_after:.2f}s (session timeout {session_timeout_s}s)")
    rebalance = lab.wait_rebalance(f"{second} stopped")
    changes = {c["consumer"]: c for c in rebalance["changes"]}
    assert changes[second]["revoked"] == split[second]
    assert set(split[second]) <= set(changes[first]["assigned"])
    stopped = lab.wait_status(second, "stopped")
    assert stopped["pid"] is None
    assert [p.name for p in processes_of(lab)] == [first]


def test_a_kill_heals_only_after_the_session_timeout(lab: Lab, group: GroupView):
    session_timeout_ms = 6000
    config = {"session_timeout_ms": session_timeout_ms, "auto_commit_interval_ms": 300}
    # The coordinator counts the timeout from the last heartbeat, which may precede the kill.
    slack_ms = ConsumerConfig(**config).heartbeat_interval_ms
    survivor, victim = lab.add_consumer(**config), lab.add_consumer(**config)
    split = group.wait_assignment(split_evenly({survivor, victim}), "the group splitting 4 partitions 2 and 2")
    lab.burst(40)
    ends = wait_for(
        lambda: (ends := group.log_ends()) and group.committed() == ends and ends, "every partition read and committed"
    )
    assert all(ends[p] > 0 for p in ALL), "the burst reached every partition"

    killed = time.monotonic()
    assert lab.act(victim, "kill").status == 200
    lab.burst(40)
    time.sleep(max(0.0, killed + 3 - time.monotonic()))
    during = group.describe()
    committed, ends_now = group.committed(), group.log_ends()

    assert time.monotonic() - killed < (session_timeout_ms - slack_ms) / 1000, "sampled too late to tell"
    assert {m.client_id for m in during.members} == {survivor, victim}, "the dead member is still listed"
    assert {m.client_id: m.partitions for m in during.members}[survivor] == split[survivor]
    orphaned_lag = {p: ends_now[p] - committed[p] for p in split[victim]}
    assert orphaned_lag == {p: ends_now[p] - ends[p] for p in split[victim]}, "nobody reads the dead one's partitions"
    assert sum(orphaned_lag.values()) > 0, "and their lag grows"

    group.wait_assignment(lambda a: a == {survivor: ALL}, f"{survivor} owning every partition")
    healed_after = time.monotonic() - killed
    print(f"kill → heal: {healed_after:.2f}s (session timeout {session_timeout_ms / 1000:g}s)")
    assert healed_after > (session_timeout_ms - slack_ms) / 1000, "healed before the session timeout"
    wait_for(lambda: group.committed() == group.log_ends(), f"{survivor} catching up on the orphaned partitions")
    rebalance = lab.wait_rebalance(f"{victim} was killed")
    assert set(split[victim]) <= set({c["consumer"]: c for c in rebalance["changes"]}[survivor]["assigned"])
    assert lab.wait_status(victim, "killed")["pid"] is None


def test_a_fifth_consumer_on_four_partitions_is_idle(lab: Lab, group: GroupView, page: LabSocket):
    names = {lab.add_consumer(session_timeout_ms=3000) for _ in range(5)}

    assignment = group.wait_assignment(
        lambda a: set(a) == names and sorted(len(parts) for parts in a.values()) == [0, 1, 1, 1, 1],
        "five members, one partition each for four of them",
    )

    [idle] = [name for name, parts in assignment.items() if not parts]
    cards = page.wait(
        lambda shown: {c.name: c.partitions for c in shown.cards.values()} == assignment and shown.cards,
        f"cards with the group's assignment {assignment}",
    )
    assert cards[idle].status == "running"
    assert "idle: no partition left for it" in cards[idle].html
    assert all("idle" not in card.html for name, card in cards.items() if name != idle)


def join_one_by_one(lab: Lab, group: GroupView, strategy: str, count: int = 3) -> list[dict]:
    """Add `count` consumers one at a time; for each join, the assignment before and after and
    what each consumer revoked and was assigned in the rebalances that join caused."""
    joins = []
    before: dict[str, list[int]] = {}
    for number in range(1, count + 1):
        started = time.time()
        name = lab.add_consumer(assignment_strategy=strategy, session_timeout_ms=6000)
        after = group.wait_assignment(
            lambda a, n=number, name=name: (
                name in a
                and len(a) == n
                and sorted(p for parts in a.values() for p in parts) == ALL
                and max(map(len, a.values())) - min(map(len, a.values())) <= 1
            ),
            f"{name} joining a balanced group",
        )
        changes = wait_for(
            lambda a=after, name=name, t=started: (
                (c := lab.changes_since(t)).get(name, {}).get("assigned") == a[name] and c
            ),
            f"the rebalance {name}'s join caused, on the timeline",
        )
        joins.append({"joined": name, "before": before, "after": after, "changes": changes})
        before = after
    return joins


def test_cooperative_sticky_revokes_only_the_partitions_that_move(lab: Lab, group: GroupView):
    joins = join_one_by_one(lab, group, "cooperative-sticky")

    for join in joins[1:]:
        before, after, changes = join["before"], join["after"], join["changes"]
        moved = set(after[join["joined"]])
        for member, had in before.items():
            revoked = set(changes.get(member, {}).get("revoked", []))
            assert revoked == set(had) - set(after[member]), f"{member} revoked only what moved"
            assert not changes.get(member, {}).get("assigned"), f"{member} was given nothing back"
        assert set().union(*(changes.get(m, {}).get("revoked", []) for m in before)) == moved
        assert any(set(had) & set(after[m]) for m, had in before.items()), "someone kept partitions throughout"
    assert group.describe().assignor == "cooperative-sticky"


def test_range_revokes_every_partition_when_a_consumer_joins(lab: Lab, group: GroupView):
    joins = join_one_by_one(lab, group, "range")

    for join in joins[1:]:
        before, after, changes = join["before"], join["after"], join["changes"]
        for member, had in before.items():
            assert changes[member]["revoked"] == had, f"{member} gave up everything (eager)"
            assert changes[member]["assigned"] == after[member], f"{member} was assigned its share afresh"
    assert group.describe().assignor == "range"


def test_consumers_on_the_consumer_protocol_split_partitions_too(lab: Lab, group: GroupView, page: LabSocket):
    first, second = (lab.add_consumer(group_protocol="consumer") for _ in range(2))

    assignment = group.wait_assignment(split_evenly({first, second}), "the group splitting 4 partitions 2 and 2")

    assert group.describe().protocol == "CONSUMER", "KIP-848: the broker assigns"
    [described] = lab.state()["groups"]
    assert described["protocol"] == "CONSUMER"
    page.wait(
        lambda shown: {c.name: c.partitions for c in shown.cards.values()} == assignment,
        f"cards with the group's assignment {assignment}",
    )
