"""The checks lesson 4 (rebalancing) runs, on plain model dicts shaped like a real lab's
state.json (recorded on Kafka 4.1 with librdkafka consumers): each passes on what Kafka shows
for its step, stays silent before it, and gives the facts the explanation uses."""

from __future__ import annotations

from datetime import UTC, datetime

from lessons import checks

ARMED_AT = 1_000.0


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat()


def change(consumer: str, *, revoked=(), assigned=(), lost=()) -> dict:
    return {"consumer": consumer, "revoked": list(revoked), "assigned": list(assigned), "lost": list(lost)}


def rebalance(trigger: str, started: float, ended: float | None, *changes: dict) -> dict:
    return {
        "trigger": trigger,
        "started_at": iso(started),
        "ended_at": None if ended is None else iso(ended),
        "duration_ms": None if ended is None else round((ended - started) * 1000),
        "changes": list(changes),
    }


def consumer(name: str, status: str = "running", assigned=(), **config) -> dict:
    return {
        "name": name,
        "status": status,
        "live": status in ("starting", "running", "stopping"),
        "assigned": list(assigned),
        "config": {
            "assignment_strategy": "range",
            "group_protocol": "classic",
            "session_timeout_ms": 6000,
            **config,
        },
    }


def model(
    members: dict[str, list[int]],
    consumers: list[dict],
    rebalances: list[dict] = (),
    *,
    assignor: str = "range",
    protocol: str = "CLASSIC",
    state: str = "STABLE",
) -> dict:
    """`rebalances` newest first, as the timeline keeps them."""
    return {
        "lanes": [{"partition": p, "log_end": 10, "log_start": 0, "records": []} for p in range(4)],
        "groups": [
            {
                "state": state,
                "protocol": protocol,
                "assignor": assignor,
                "members": [{"consumer": name, "partitions": ps} for name, ps in sorted(members.items())],
            }
        ],
        "consumers": consumers,
        "rebalances": list(rebalances),
        "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "recent": [], "missed_records": []},
    }


def run(name: str, now: dict, before: dict, **params) -> dict | None:
    armed = checks.arm(before, now=ARMED_AT)
    return checks.evaluate(name, checks.REGISTRY[name].bind(params), model=now, armed=armed, now=ARMED_AT + 30)


# --- a graceful stop -----------------------------------------------------------------------------

THREE = {"c1": [0, 1], "c2": [2], "c3": [3]}
THREE_RUNNING = [consumer(n, assigned=ps) for n, ps in THREE.items()]
# Recorded: c1 stopped; range is eager, so the others revoked everything they held too.
STOP = rebalance(
    "c1 stopped and left the group",
    ARMED_AT + 5,
    ARMED_AT + 5.6,
    change("c1", revoked=[0, 1]),
    change("c2", revoked=[2], assigned=[0, 1]),
    change("c3", revoked=[3], assigned=[2, 3]),
)


def after_stop(*rebalances: dict) -> dict:
    return model(
        {"c2": [0, 1], "c3": [2, 3]},
        [consumer("c1", "stopped"), consumer("c2", assigned=[0, 1]), consumer("c3", assigned=[2, 3])],
        rebalances,
    )


def test_a_stop_passes_once_its_rebalance_is_over_with_who_gained_what():
    before = model(THREE, THREE_RUNNING)
    assert run("rebalance_after_stop", before, before) is None
    open_ = {**STOP, "ended_at": None, "duration_ms": None}
    assert run("rebalance_after_stop", after_stop(open_), before) is None

    facts = run("rebalance_after_stop", after_stop(STOP), before)

    assert facts["consumer"] == "c1"
    assert facts["seconds"] == "0.6"
    assert facts["gained"] == "c2 gained P0, P1; c3 gained P2"
    assert facts["changes"] == "c1 revoked P0, P1; c2 revoked P2, assigned P0, P1; c3 revoked P3, assigned P2, P3"


def test_a_stop_before_the_step_or_of_another_consumer_does_not_count():
    # c1 was already stopped when the step began; c12's rebalance is not c1's.
    before = model(THREE, [consumer("c1", "stopped"), *THREE_RUNNING[1:]])
    assert run("rebalance_after_stop", after_stop(STOP), before) is None
    with_c12 = model(THREE, [*THREE_RUNNING, consumer("c12")])
    now = after_stop({**STOP, "trigger": "c12 stopped and left the group"})
    assert run("rebalance_after_stop", now, with_c12) is None


# --- a kill ------------------------------------------------------------------------------------------

TWO = {"c2": [0, 1], "c3": [2, 3]}
# Recorded: the killed member reports nothing; the clock starts at the kill.
KILL = rebalance(
    "c3 was killed; the group waited out its session timeout (6 s from its last heartbeat)",
    ARMED_AT + 10,
    ARMED_AT + 16.869,
    change("c2", revoked=[0, 1], assigned=[0, 1, 2, 3]),
)


def test_a_kill_passes_only_once_the_group_has_rebalanced_its_orphans():
    before = model(TWO, [consumer("c1", "stopped"), consumer("c2", assigned=[0, 1]), consumer("c3", assigned=[2, 3])])
    # Killed, before the session timeout: Kafka still lists the dead member with its partitions.
    waiting = model(TWO, [consumer("c1", "stopped"), consumer("c2", assigned=[0, 1]), consumer("c3", "killed")])
    assert run("rebalance_after_kill", waiting, before) is None

    healed = model(
        {"c2": [0, 1, 2, 3]},
        [consumer("c1", "stopped"), consumer("c2", assigned=[0, 1, 2, 3]), consumer("c3", "killed")],
        [KILL],
    )
    facts = run("rebalance_after_kill", healed, before)

    assert facts == {
        "consumer": "c3",
        "seconds": "6.9",
        "changes": "c2 revoked P0, P1, assigned P0, P1, P2, P3",
        "gained": "c2 gained P2, P3",
        "trigger": KILL["trigger"],
        "session_timeout_s": "6",
        "orphaned": "P2, P3",
    }


def test_the_orphans_are_what_the_dead_one_held_when_it_died_even_if_it_joined_since():
    before = model({"c2": [0, 1, 2, 3]}, [consumer("c2", assigned=[0, 1, 2, 3])])
    joined = rebalance(
        "c4 joined the group",
        ARMED_AT + 2,
        ARMED_AT + 2.5,
        change("c2", revoked=[0, 1, 2, 3], assigned=[0, 1]),
        change("c4", assigned=[2, 3]),
    )
    kill = {**KILL, "trigger": "c4 was killed; …"}
    healed = model(
        {"c2": [0, 1, 2, 3]}, [consumer("c2", assigned=[0, 1, 2, 3]), consumer("c4", "killed")], [kill, joined]
    )

    assert run("rebalance_after_kill", healed, before)["orphaned"] == "P2, P3"


def test_a_killed_consumer_protocol_member_has_the_brokers_session_timeout():
    before = model(TWO, [consumer("c2", assigned=[0, 1]), consumer("c3", assigned=[2, 3], group_protocol="consumer")])
    healed = model(
        {"c2": [0, 1, 2, 3]},
        [consumer("c2", assigned=[0, 1, 2, 3]), consumer("c3", "killed", group_protocol="consumer")],
        [{**KILL, "changes": [change("c2", assigned=[2, 3])]}],
    )

    facts = run("rebalance_after_kill", healed, before)
    assert facts["session_timeout_s"] == "the broker's" and facts["orphaned"] == "P2, P3"


# --- eager versus cooperative ----------------------------------------------------------------------

COOP = {"assignment_strategy": "cooperative-sticky"}
# Recorded: c5 alone got everything; when c6 joined, c5 revoked only what moved to c6.
ALONE = rebalance("c5 joined the group", ARMED_AT + 3, ARMED_AT + 3.2, change("c5", assigned=[0, 1, 2, 3]))
JOINED = rebalance(
    "c6 joined the group",
    ARMED_AT + 7,
    ARMED_AT + 8.3,
    change("c5", revoked=[0, 1]),
    change("c6", assigned=[0, 1]),
)
START = model({"c1": [0, 1, 2, 3]}, [consumer("c1", assigned=[0, 1, 2, 3])])


def cooperative(members: dict[str, list[int]], *rebalances: dict, **kw) -> dict:
    consumers = [consumer("c1", "stopped")] + [consumer(n, assigned=ps, **COOP) for n, ps in members.items()]
    return model(members, consumers, rebalances, assignor="cooperative-sticky", **kw)


def test_the_first_cooperative_member_alone_is_not_yet_incremental():
    assert run("incremental_rebalance", cooperative({"c5": [0, 1, 2, 3]}, ALONE), START) is None


def test_a_join_where_a_member_keeps_its_partitions_passes():
    now = cooperative({"c5": [2, 3], "c6": [0, 1]}, JOINED, ALONE)

    facts = run("incremental_rebalance", now, START)

    assert facts["consumer"] == "c5" and facts["kept"] == "P2, P3"
    assert facts["changes"] == "c5 revoked P0, P1; c6 assigned P0, P1"
    assert facts["gained"] == "c6 gained P0, P1"
    assert facts["seconds"] == "1.3" and facts["trigger"] == "c6 joined the group"


def test_not_while_the_rebalance_runs_nor_while_kafka_and_the_consumers_disagree():
    running = {**JOINED, "ended_at": None, "duration_ms": None}
    assert run("incremental_rebalance", cooperative({"c5": [2, 3], "c6": [0, 1]}, running, ALONE), START) is None
    # Kafka's description lags behind what c5 reported (it still lists c5 with everything).
    now = cooperative({"c5": [2, 3], "c6": [0, 1]}, JOINED, ALONE)
    now["groups"][0]["members"] = [{"consumer": "c5", "partitions": [0, 1, 2, 3]}]
    assert run("incremental_rebalance", now, START) is None


def test_an_eager_rebalance_does_not_pass_and_neither_does_another_assignor():
    # Recorded with range: the member already there revoked everything and got its share back.
    eager = rebalance(
        "c6 joined the group",
        ARMED_AT + 7,
        ARMED_AT + 7.6,
        change("c5", revoked=[0, 1, 2, 3], assigned=[0, 1]),
        change("c6", assigned=[2, 3]),
    )
    now = cooperative({"c5": [0, 1], "c6": [2, 3]}, eager, ALONE)
    assert run("incremental_rebalance", now, START) is None
    ranged = cooperative({"c5": [2, 3], "c6": [0, 1]}, JOINED, ALONE)
    ranged["groups"][0]["assignor"] = "range"
    assert run("incremental_rebalance", ranged, START) is None


def test_a_rebalance_from_before_the_step_does_not_count():
    before_step = {**JOINED, "started_at": iso(ARMED_AT - 20), "ended_at": iso(ARMED_AT - 19)}
    assert run("incremental_rebalance", cooperative({"c5": [2, 3], "c6": [0, 1]}, before_step), START) is None


# --- the consumer protocol (KIP-848) ----------------------------------------------------------------


def kip848(members: dict[str, list[int]], *rebalances: dict, protocol: str = "CONSUMER") -> dict:
    consumers = [consumer(n, assigned=ps, group_protocol="consumer") for n, ps in members.items()]
    return model(members, consumers, rebalances, assignor="uniform", protocol=protocol)


# Recorded: c9 joined c8's group; the broker moved P2, P3 and nothing else.
C8 = rebalance("c8 joined the group", ARMED_AT + 3, ARMED_AT + 3.4, change("c8", assigned=[0, 1, 2, 3]))
C9 = rebalance(
    "c9 joined the group", ARMED_AT + 4, ARMED_AT + 5.1, change("c8", revoked=[2, 3]), change("c9", assigned=[2, 3])
)


def test_the_consumer_protocol_passes_with_enough_members_once_the_rebalance_is_over():
    assert run("group_protocol", kip848({"c8": [0, 1, 2, 3]}, C8), START, members=2) is None
    running = {**C9, "ended_at": None, "duration_ms": None}
    assert run("group_protocol", kip848({"c8": [0, 1], "c9": [2, 3]}, running, C8), START, members=2) is None

    facts = run("group_protocol", kip848({"c8": [0, 1], "c9": [2, 3]}, C9, C8), START, members=2)

    assert facts["protocol"] == "CONSUMER" and facts["assignor"] == "uniform"
    assert facts["members"] == "2" and facts["assignment"] == "c8: P0, P1; c9: P2, P3"
    assert facts["changes"] == "c8 revoked P2, P3; c9 assigned P2, P3" and facts["seconds"] == "1.1"


def test_a_classic_group_is_not_the_consumer_protocol():
    assert run("group_protocol", kip848({"c8": [0, 1], "c9": [2, 3]}, C9, C8, protocol="CLASSIC"), START) is None
    assert run("group_protocol", kip848({"c8": [0, 1], "c9": [2, 3]}, C9, C8), START, protocol="classic") is None
