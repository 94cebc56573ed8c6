"""Lessons 9–11's checks on plain models shaped like the runner's (kafkalab.runner.model): the
poison list, blocked lanes, dead letters in the DLQ view, records with their schema id or
replay mark, and the registry's events for the lab's subjects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kafkalab.kafka.consumer_config import ConsumerConfig
from lessons import checks

T0 = 1_800_000_000.0  # when the step became current
SUBJECT = "lab-7.orders-value"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat()


def consumer(name: str, *, reader: str, status: str = "running", crashes: int = 0, crashed_on=None) -> dict:
    return {
        "name": name,
        "status": status,
        "live": status == "running",
        "config": ConsumerConfig(reader=reader).as_dict(),
        "failures": {"crashes": crashes, "crashed_on": crashed_on},
    }


def email(name: str, partition: int, offset: int, *, at: float = T0 + 1, missed: bool = False) -> dict:
    return {"consumer": name, "partition": partition, "offset": offset, "order_id": f"o-{offset}", "at": iso(at)} | (
        {"missed": True, "reason": "contract"} if missed else {}
    )


def record(partition: int, offset: int, **extra: object) -> dict:
    return {"partition": partition, "offset": offset, "key": f"k{offset}", "timestamp_ms": (T0 + 1) * 1000, **extra}


def model(
    *,
    consumers=(),
    emails=(),
    poison=(),
    records=(),
    blocked=None,
    committed=None,
    dead_letters=(),
    registry_events=(),
) -> dict:
    lanes = []
    for p in range(2):
        lanes.append(
            {
                "partition": p,
                "log_end": 10,
                "committed": (committed or {}).get(p),
                "blocked_at": (blocked or {}).get(p),
                "records": [r for r in records if r["partition"] == p],
            }
        )
    return {
        "lanes": lanes,
        "views": [{"view": "dlq", "lanes": [{"partition": 0, "records": list(dead_letters)}]}],
        "consumers": list(consumers),
        "poison": list(poison),
        "outbox": {"sent": len(emails), "recent": list(reversed(emails))},
        "registry_events": list(registry_events),
    }


# The step became current when each partition's log ended at offset 5.
ARMED = {"at": T0, "log_ends": {"0": 5, "1": 5}}


def run(name: str, model_now: dict, **params: object) -> dict | None:
    spec = checks.REGISTRY[name]
    return checks.evaluate(name, spec.bind(params), model=model_now, armed=ARMED, now=T0 + 5)


def test_emails_by_reader_counts_only_new_records_emailed_by_that_reader():
    readers = [consumer("c1", reader="strict"), consumer("c2", reader="tolerant")]
    assert run("emails_by_reader", model(consumers=readers, emails=[email("c1", 0, 4)]), reader="strict") is None
    assert run("emails_by_reader", model(consumers=readers, emails=[email("c2", 0, 6)]), reader="strict") is None
    assert run("emails_by_reader", model(consumers=readers, emails=[email("c1", 0, 6, missed=True)])) is None
    facts = run("emails_by_reader", model(consumers=readers, emails=[email("c1", 1, 7)]), reader="strict")
    assert facts == {
        "consumer": "c1",
        "reader": "strict",
        "order_id": "o-7",
        "partition": "1",
        "offset": "7",
        "count": "1",
    }


def poison(name: str, partition: int, offset: int, action: str = "skipped") -> dict:
    return {
        "partition": partition,
        "offset": offset,
        "consumer": name,
        "reason": "contract",
        "message": "items/0: 'sku' was unexpected",
        "action": action,
    }


def test_poison_by_reader_wants_a_new_record_that_reader_failed_and_the_asked_action():
    readers = [consumer("c1", reader="strict"), consumer("c2", reader="tolerant")]
    assert run("poison_by_reader", model(consumers=readers, poison=[poison("c1", 0, 3)])) is None  # before the step
    assert run("poison_by_reader", model(consumers=readers, poison=[poison("c2", 0, 6)])) is None  # another reader
    crashed = model(consumers=readers, poison=[poison("c1", 0, 6, action="crashed")])
    assert run("poison_by_reader", crashed, action="skipped") is None
    facts = run("poison_by_reader", crashed)
    assert facts["action"] == "crashed" and facts["message"] == "items/0: 'sku' was unexpected"
    assert run("poison_by_reader", model(consumers=readers, poison=[poison("c2", 1, 5)]), reader="tolerant")


def test_record_with_schema_wants_a_new_framed_record():
    assert run("record_with_schema", model(records=[record(0, 6)])) is None
    assert run("record_with_schema", model(records=[record(0, 4, schema_id=3)])) is None
    assert run("record_with_schema", model(records=[record(0, 6, schema_id=3)]))["schema_id"] == "3"


def event(action: str, at: float = T0 + 1, **fields: object) -> dict:
    return {"subject": SUBJECT, "action": action, "at": iso(at), "message": "", **fields}


@pytest.mark.parametrize(
    ("events", "levels", "passes"),
    [
        ([event("refused", level="BACKWARD", message="incompatible")], "", True),
        ([event("refused", at=T0 - 30, level="BACKWARD")], "", False),
        ([event("registered", version=2, schema_id=4)], "", False),
        ([event("refused", level="BACKWARD")], "FORWARD,FULL", False),
        ([event("refused", level="FULL")], "FORWARD,FULL", True),
    ],
)
def test_schema_refused_wants_a_refusal_since_the_step_under_the_asked_levels(events, levels, passes):
    facts = run("schema_refused", model(registry_events=events), levels=levels)
    assert (facts is not None) is passes


def test_schema_evolved_wants_a_new_version_and_a_record_of_it_emailed():
    readers = [consumer("c1", reader="registry")]
    registered = [event("registered", version=2, schema_id=9)]
    written = [record(0, 6, schema_id=9)]
    assert run("schema_evolved", model(consumers=readers, registry_events=registered, records=written)) is None
    emailed = model(consumers=readers, registry_events=registered, records=written, emails=[email("c1", 0, 6)])
    facts = run("schema_evolved", emailed)
    assert (facts["version"], facts["schema_id"], facts["reader"]) == ("2", "9", "registry")
    first = [event("registered", version=1, schema_id=9)]
    assert (
        run(
            "schema_evolved",
            model(consumers=readers, registry_events=first, records=written, emails=[email("c1", 0, 6)]),
        )
        is None
    )


def test_partition_blocked_wants_repeated_crashes_on_a_blocked_lane():
    looping = [consumer("c1", reader="strict", status="restarting", crashes=3, crashed_on=[1, 6])]
    assert run("partition_blocked", model(consumers=looping)) is None  # not blocked (any more)
    facts = run("partition_blocked", model(consumers=looping, blocked={1: 6}, committed={0: 9, 1: 6}))
    assert facts == {
        "partition": "1",
        "offset": "6",
        "consumer": "c1",
        "crashes": "3",
        "lag": "4",
        "others": "P0: committed 9",
    }
    once = [consumer("c1", reader="strict", crashes=1, crashed_on=[1, 6])]
    assert run("partition_blocked", model(consumers=once, blocked={1: 6})) is None


def dead_letter(dlq_offset: int, partition: int, offset: int, at: float = T0 + 1) -> dict:
    letter = {"partition": partition, "offset": offset, "reason": "contract", "consumer": "c3", "topic": "lab-7.orders"}
    return {"partition": 0, "offset": dlq_offset, "timestamp_ms": at * 1000, "dead_letter": letter}


def test_dead_lettered_wants_a_new_dead_letter_and_its_partition_flowing():
    assert run("dead_lettered", model(dead_letters=[dead_letter(0, 1, 3, at=T0 - 60)])) is None
    assert run("dead_lettered", model(dead_letters=[dead_letter(0, 1, 3)], blocked={1: 3})) is None
    facts = run("dead_lettered", model(dead_letters=[dead_letter(2, 1, 3)], committed={1: 4}))
    assert (facts["partition"], facts["offset"], facts["dlq_offset"], facts["committed"]) == ("1", "3", "2", "4")


def test_replayed_and_emailed_wants_an_email_of_a_replayed_record():
    readers = [consumer("c4", reader="tolerant")]
    plain = model(consumers=readers, records=[record(0, 6)], emails=[email("c4", 0, 6)])
    assert run("replayed_and_emailed", plain) is None
    not_yet = model(consumers=readers, records=[record(0, 6, replayed=True)])
    assert run("replayed_and_emailed", not_yet) is None
    done = model(consumers=readers, records=[record(0, 6, replayed=True)], emails=[email("c4", 0, 6)])
    assert run("replayed_and_emailed", done)["reader"] == "tolerant"
