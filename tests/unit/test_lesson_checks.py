"""Lesson checks on plain models: a step passes on what happened since it became current."""

from __future__ import annotations

from lessons import checks


def lane(partition: int, *offsets: int, key: str = "k", log_start: int = 0) -> dict:
    records = [
        {"partition": partition, "offset": o, "key": f"{key}{o}", "event_type": "OrderCreated", "timestamp_ms": o}
        for o in offsets
    ]
    return {
        "partition": partition,
        "log_end": (offsets[-1] + 1) if offsets else 0,
        "log_start": log_start,
        "records": records,
    }


def model(
    *lanes: dict, members: list[dict] | None = None, state: str = "STABLE", consumers: list[dict] | None = None
) -> dict:
    return {
        "lanes": list(lanes),
        "groups": [{"state": state, "members": members or [], "assignor": "range", "protocol": "CLASSIC"}],
        "consumers": consumers or [],
        "rebalances": [],
        "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "recent": [], "missed_records": []},
    }


def test_an_old_record_does_not_pass_write_an_event_a_new_one_does():
    before = model(lane(0, 0, 1), lane(1))
    armed = checks.arm(before, now=100.0)

    assert checks.evaluate("record_written", {}, model=before, armed=armed, now=101.0) is None
    facts = checks.evaluate("record_written", {}, model=model(lane(0, 0, 1), lane(1, 0)), armed=armed, now=102.0)
    assert facts["partition"] == "1" and facts["offset"] == "0" and facts["key"] == "k0"


def test_records_written_counts_only_new_records_and_lists_their_offsets():
    armed = checks.arm(model(lane(0, 0), lane(1)), now=100.0)
    params = {"count": 3}

    assert (
        checks.evaluate("records_written", params, model=model(lane(0, 0, 1), lane(1, 0)), armed=armed, now=1) is None
    )
    facts = checks.evaluate("records_written", params, model=model(lane(0, 0, 1, 2), lane(1, 0)), armed=armed, now=1)
    assert facts == {"count": "3", "offsets": "P0: 1–2; P1: 0", "partitions_used": "2"}


def members(**assigned: list[int]) -> list[dict]:
    return [{"consumer": name, "partitions": partitions} for name, partitions in assigned.items()]


def test_consumers_share_partitions_is_a_state_that_holds_while_the_group_is_stable():
    lanes = [lane(p) for p in range(4)]
    params = {"consumers": 2}
    split = members(c1=[0, 1], c2=[2, 3])
    armed = checks.arm(model(*lanes), now=100.0)

    assert (
        checks.evaluate(
            "consumers_share_partitions",
            params,
            model=model(*lanes, members=split, state="COMPLETING_REBALANCE"),
            armed=armed,
            now=1,
        )
        is None
    )
    assert (
        checks.evaluate(
            "consumers_share_partitions",
            params,
            model=model(*lanes, members=members(c1=[0, 1, 2, 3])),
            armed=armed,
            now=1,
        )
        is None
    )
    facts = checks.evaluate(
        "consumers_share_partitions", params, model=model(*lanes, members=split), armed=armed, now=1
    )
    assert facts["assignment"] == "c1: P0, P1; c2: P2, P3"


def test_the_idle_member_and_its_taking_over():
    lanes = [lane(p) for p in range(2)]
    three = members(c1=[0], c2=[1], c3=[])
    facts = checks.evaluate(
        "idle_member", {}, model=model(*lanes, members=three), armed=checks.arm(model(*lanes), now=100.0), now=1
    )
    assert facts["consumer"] == "c3"

    armed = checks.arm(model(*lanes, members=three), now=100.0)
    assert checks.evaluate("idle_member_takes_over", {}, model=model(*lanes, members=three), armed=armed, now=3) is None
    facts = checks.evaluate(
        "idle_member_takes_over", {}, model=model(*lanes, members=members(c1=[0], c3=[1])), armed=armed, now=4
    )
    assert facts == {"consumer": "c3", "taken": "P1", "left": "c2"}


def test_a_check_gets_only_the_parameters_it_declares():
    spec = checks.REGISTRY["records_written"]
    assert spec.bind({}) == {"count": 10}
    for wrong in ({"count": "3"}, {"partitions": 3}):
        try:
            spec.bind(wrong)
        except ValueError:
            continue
        raise AssertionError(f"{wrong} was accepted")


def test_a_record_written_after_the_step_became_current_counts_even_if_the_runner_looked_later():
    # The step became current at t=5 s; the runner's first look, at t=6 s, already holds the
    # record written at t=5.5 s (timestamp_ms 5500) but not the one from t=4 s.
    seen = model({"partition": 0, "log_end": 2, "records": [
        {"partition": 0, "offset": 0, "key": "old", "event_type": "OrderCreated", "timestamp_ms": 4000},
        {"partition": 0, "offset": 1, "key": "new", "event_type": "OrderCreated", "timestamp_ms": 5500},
    ]})  # fmt: skip
    armed = checks.arm(seen, now=6.0, since=5.0)

    assert armed["log_ends"] == {"0": 1}
    assert checks.evaluate("record_written", {}, model=seen, armed=armed, now=6.0)["key"] == "new"
