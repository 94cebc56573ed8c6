"""Lesson 7's checks on plain models shaped like the runner's: orders lanes with their last stable
offset, open and aborted records and COMMIT/ABORT markers (as kafkalab.runner.txn_marks judges
them from Kafka), consumers with their isolation level and positions, and the outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from kafkalab.kafka.consumer_config import ConsumerConfig
from lessons import checks

T0 = 1_800_000_000.0  # when the step became current
BEFORE = {"at": T0, "log_ends": {"0": 5}}  # partition 0 held offsets 0–4 when the step began


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat()


def consumer(name: str, isolation: str, positions: dict[int, int] | None = None, assigned=(0,)) -> dict:
    return {
        "name": name,
        "status": "running",
        "live": True,
        "config": ConsumerConfig(isolation_level=isolation).as_dict(),
        "assigned": list(assigned),
        "positions": {str(p): o for p, o in (positions or {}).items()},
    }


def email(name: str, offset: int, *, aborted: bool = False) -> dict:
    return {"consumer": name, "partition": 0, "offset": offset, "order_id": f"order-{offset}", "at": iso(T0 + 1)} | (
        {"aborted": True} if aborted else {}
    )


def lane(*, log_end: int, last_stable: int, opened=(), aborted=(), markers=()) -> dict:
    return {
        "partition": 0,
        "log_end": log_end,
        "last_stable": last_stable,
        "records": [{"partition": 0, "offset": o} for o in range(log_end) if o not in {m[0] for m in markers}],
        "txn": {"open": list(opened), "aborted": list(aborted)},
        "markers": [{"offset": o, "control": c} for o, c in markers],
    }


def run(name: str, *, lanes: list[dict], consumers=(), emails=()) -> dict | None:
    model = {"lanes": lanes, "consumers": list(consumers), "outbox": {"recent": list(reversed(emails))}}
    return checks.evaluate(name, {}, model=model, armed=BEFORE, now=T0 + 2)


def test_an_open_transaction_holds_a_read_committed_reader_at_the_lso():
    open_lane = lane(log_end=7, last_stable=5, opened=[5, 6])
    waiting = consumer("c1", "read_committed", {0: 5})
    assert run("transaction_holds_back_reader", lanes=[open_lane], consumers=[waiting]) == {
        "partition": "0",
        "open": "5–6",
        "last_stable": "5",
        "log_end": "7",
        "consumer": "c1",
        "position": "5",
        "lag": "2",
    }
    reading_on = consumer("c2", "read_uncommitted", {0: 7})
    assert run("transaction_holds_back_reader", lanes=[open_lane], consumers=[reading_on]) is None
    handed_nothing_yet = consumer("c3", "read_committed")
    assert run("transaction_holds_back_reader", lanes=[open_lane], consumers=[handed_nothing_yet])["consumer"] == "c3"
    elsewhere = consumer("c4", "read_committed", assigned=(1,))
    assert run("transaction_holds_back_reader", lanes=[open_lane], consumers=[elsewhere]) is None
    decided = lane(log_end=7, last_stable=7)
    assert run("transaction_holds_back_reader", lanes=[decided], consumers=[consumer("c1", "read_committed")]) is None


def test_an_aborted_order_emailed_by_a_read_uncommitted_reader():
    aborted = lane(log_end=8, last_stable=8, aborted=[5, 6], markers=[(7, "abort")])
    readers = [consumer("c1", "read_uncommitted"), consumer("c2", "read_committed")]
    facts = run("aborted_order_emailed", lanes=[aborted], consumers=readers, emails=[email("c1", 5, aborted=True)])
    assert facts == {
        "consumer": "c1",
        "order_id": "order-5",
        "partition": "0",
        "offset": "5",
        "marker": "7",
        "aborted": "5–6",
        "committed_readers": "c2",
    }
    by_committed = [email("c2", 5, aborted=True)]  # cannot happen in Kafka; the check must not count it
    assert run("aborted_order_emailed", lanes=[aborted], consumers=readers, emails=by_committed) is None
    assert run("aborted_order_emailed", lanes=[aborted], consumers=readers, emails=[email("c1", 5)]) is None


def test_a_committed_transaction_emailed_by_a_read_committed_reader():
    committed = lane(log_end=8, last_stable=8, markers=[(7, "commit")])
    readers = [consumer("c2", "read_committed")]
    facts = run("transaction_committed", lanes=[committed], consumers=readers, emails=[email("c2", 6)])
    assert facts == {"partition": "0", "marker": "7", "records": "5–6", "consumer": "c2", "order_id": "order-6"}
    assert run("transaction_committed", lanes=[committed], consumers=readers, emails=[]) is None
    aborted = lane(log_end=8, last_stable=8, aborted=[5, 6], markers=[(7, "abort")])
    assert run("transaction_committed", lanes=[aborted], consumers=readers, emails=[email("c2", 6)]) is None


def test_a_transaction_open_since_the_step_began():
    facts = run("transaction_open", lanes=[lane(log_end=7, last_stable=5, opened=[5, 6])])
    assert facts == {"partition": "0", "open": "5–6", "last_stable": "5", "log_end": "7"}
    assert run("transaction_open", lanes=[lane(log_end=7, last_stable=3, opened=[3, 4])]) is None, "opened before"
