"""Lesson 8's checks on plain models shaped like the runner's: BillingService's counts (read
read_committed from the invoices topic), its instances' reports, and the invoices lanes with the
transaction marks the observer judged from Kafka."""

from __future__ import annotations

from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from lessons import checks

T0 = 1_800_000_000.0  # when the step became current
MS = 1000


def instance(name: str, mode: BillingMode, *, fenced: bool = False, tid: str | None = None) -> dict:
    config = BillingConfig(mode=mode)
    return {
        "name": name,
        "mode": str(mode),
        "config": config.as_dict(),
        "transactional_id": tid if config.transactional else None,
        "status": "stopped" if fenced else "running",
        "fenced": fenced,
    }


def invoice_lane(*, records: dict[int, tuple[str, float]], aborted=(), opened=(), markers=()) -> dict:
    """Invoices partition 0: offset → (the orderId it invoices, when written, in seconds after T0)."""
    return {
        "partition": 0,
        "log_end": max([*records, *(o for o, _ in markers)], default=-1) + 1,
        "records": [
            {"partition": 0, "offset": o, "key": key, "timestamp_ms": (T0 + at) * MS}
            for o, (key, at) in records.items()
        ],
        "txn": {"open": list(opened), "aborted": list(aborted)},
        "markers": [{"offset": o, "control": c} for o, c in markers],
    }


def model(*, instances=(), invoices=0, duplicates=0, lanes=()) -> dict:
    return {
        "lanes": [],
        "views": [{"view": "dlq", "lanes": []}, {"view": "invoices", "lanes": list(lanes)}],
        "billing": {
            "invoices": invoices,
            "duplicates": duplicates,
            "orders_invoiced": invoices - duplicates,
            "topic": "lab-1.invoices",
            "instances": list(instances),
        },
    }


def armed(before: dict) -> dict:
    return checks.arm(before, now=T0)


def run(name: str, now: dict, before: dict, **params) -> dict | None:
    return checks.evaluate(name, params, model=now, armed=armed(before), now=T0 + 10)


def test_invoices_issued_counts_committed_invoices_written_since_the_step_began():
    b1 = instance("b1", BillingMode.EXACTLY_ONCE, tid="lab-1.billing-service.b1")
    before = model(instances=[b1], invoices=1, lanes=[invoice_lane(records={0: (OLD, -5)})])
    new = {0: (OLD, -5), **{o: (f"order-{o}", 1) for o in range(1, 6)}}
    committed = invoice_lane(records=new, markers=[(6, "commit")]) | {"last_stable": 7}
    now = model(instances=[b1], invoices=6, lanes=[committed])
    assert run("invoices_issued", now, before, count=5) == {
        "count": "5",
        "instances": "b1",
        "orders_invoiced": "6",
        "topic": "lab-1.invoices",
    }
    assert run("invoices_issued", now, before, count=6) is None, "the one from before the step does not count"
    still_open = invoice_lane(records=new, opened=[3, 4, 5]) | {"last_stable": 3}
    assert run("invoices_issued", model(instances=[b1], lanes=[still_open]), before, count=5) is None
    not_known = invoice_lane(records=new) | {"last_stable": None}
    assert run("invoices_issued", model(instances=[b1], lanes=[not_known]), before, count=5) is None


def test_invoiced_twice_needs_new_duplicates_and_an_at_least_once_instance():
    careless = instance("b1", BillingMode.AT_LEAST_ONCE)
    careful = instance("b2", BillingMode.EXACTLY_ONCE, tid="t")
    before = model(instances=[careless], invoices=20, duplicates=2)
    assert run("invoiced_twice", model(instances=[careless], invoices=30, duplicates=2), before) is None
    assert run("invoiced_twice", model(instances=[careful], invoices=30, duplicates=5), before) is None
    assert run("invoiced_twice", model(instances=[careless], invoices=30, duplicates=5), before) == {
        "duplicates": "3",
        "instances": "b1",
        "batch_size": "10",
    }


ORDER_A, ORDER_B, OLD = "aaaaaaaa-1", "bbbbbbbb-2", "cccccccc-3"
BEFORE_LANE = invoice_lane(records={3: (OLD, -5)})
# 3 from before the step; 4–5 the killed batch, aborted at 6; 7–8 the same orders billed again.
ABORTED_THEN_REDONE = invoice_lane(
    records={3: (OLD, -5), 4: (ORDER_A, 1), 5: (ORDER_B, 1), 7: (ORDER_A, 3), 8: (ORDER_B, 3)},
    aborted=[4, 5],
    markers=[(6, "abort"), (9, "commit")],
)
EXACTLY_ONCE = instance("b1", BillingMode.EXACTLY_ONCE, tid="t")


def test_exactly_once_passes_when_each_aborted_invoices_order_is_billed_again_once():
    before = model(instances=[EXACTLY_ONCE], invoices=1, lanes=[BEFORE_LANE])
    after = model(instances=[EXACTLY_ONCE], invoices=3, lanes=[ABORTED_THEN_REDONE])
    assert run("exactly_once_after_abort", after, before) == {
        "instance": "b1",
        "partition": "0",
        "aborted": "4–5",
        "marker": "6",
        "order_id": "aaaaaaaa",
        "redone": "7–8",
    }


def test_exactly_once_waits_for_every_order_billed_again_and_fails_on_a_second_invoice():
    before = model(instances=[EXACTLY_ONCE], invoices=1, lanes=[BEFORE_LANE])
    half_redone = invoice_lane(
        records={3: (OLD, -5), 4: (ORDER_A, 1), 5: (ORDER_B, 1), 7: (ORDER_A, 3)},
        aborted=[4, 5],
        markers=[(6, "abort")],
    )
    assert run("exactly_once_after_abort", model(instances=[EXACTLY_ONCE], lanes=[half_redone]), before) is None
    twice = invoice_lane(
        records={3: (OLD, -5), 4: (ORDER_A, 1), 5: (ORDER_B, 1), 7: (ORDER_A, 3), 8: (ORDER_B, 3), 9: (ORDER_A, 4)},
        aborted=[4, 5],
        markers=[(6, "abort")],
    )
    assert run("exactly_once_after_abort", model(instances=[EXACTLY_ONCE], lanes=[twice]), before) is None
    at_least_once = instance("b1", BillingMode.AT_LEAST_ONCE)
    assert (
        run("exactly_once_after_abort", model(instances=[at_least_once], lanes=[ABORTED_THEN_REDONE]), before) is None
    )


def test_an_abort_from_before_the_step_does_not_count():
    earlier = invoice_lane(
        records={3: (OLD, -9), 4: (ORDER_A, -8), 5: (ORDER_B, -8), 7: (ORDER_A, -6), 8: (ORDER_B, -6)},
        aborted=[4, 5],
        markers=[(6, "abort"), (9, "commit")],
    )
    before = model(instances=[EXACTLY_ONCE], lanes=[earlier])
    assert run("exactly_once_after_abort", model(instances=[EXACTLY_ONCE], lanes=[earlier]), before) is None


def test_a_zombie_fenced_since_the_step_began_names_its_twin():
    tid = "lab-1.billing-service.b1"
    older, twin = instance("b1", BillingMode.EXACTLY_ONCE, tid=tid), instance("b2", BillingMode.EXACTLY_ONCE, tid=tid)
    before = model(instances=[older, twin])
    assert run("zombie_fenced", model(instances=[older, twin]), before) is None
    zombie = instance("b1", BillingMode.EXACTLY_ONCE, tid=tid, fenced=True)
    assert run("zombie_fenced", model(instances=[zombie, twin]), before) == {
        "zombie": "b1",
        "twin": "b2",
        "transactional_id": tid,
    }
    assert run("zombie_fenced", model(instances=[zombie, twin]), model(instances=[zombie, twin])) is None


def test_invoices_written_before_a_late_arming_still_count():
    """The runner arms a step at its next look: invoices written since the step became current
    count even when they were already in the model then."""
    lane = invoice_lane(records={0: (OLD, -5), 1: (ORDER_A, 1), 2: (ORDER_B, 2)}) | {"last_stable": 3}
    seen_late = model(instances=[instance("b1", BillingMode.AT_LEAST_ONCE)], invoices=3, lanes=[lane])
    late = checks.arm(seen_late, now=T0 + 3, since=T0)
    facts = checks.evaluate("invoices_issued", {"count": 2}, model=seen_late, armed=late, now=T0 + 4)
    assert facts is not None and facts["count"] == "2"
