"""A lab's health in one line for the instructor's dashboard (kafkalab.runner.model.lab_summary),
from panels shaped like LabObserver.model's: consumers, the group, the orders topic's
partitions, OrderService's transaction, and BillingService's instances."""

from __future__ import annotations

from kafkalab.runner.model import SUMMARY_ERROR_CHARS, SUMMARY_ERRORS, lab_summary

FAILURES = {
    "skipped": 0,
    "dead_lettered": 0,
    "retries": 0,
    "crashes": 0,
    "crash_looping": False,
    "crashed_on": None,
    "restart_in_s": None,
}


def consumer(
    name: str, status: str = "running", *, live: bool | None = None, last_error: str | None = None, **failures
):
    return {
        "name": name,
        "pid": 4242,
        "status": status,
        "live": status in ("starting", "running", "restarting") if live is None else live,
        "config": {},
        "last_error": last_error,
        "assigned": [],
        "positions": {},
        "emailed": 0,
        "colour": "#123456",
        "failures": {**FAILURES, **failures},
    }


def billing(name: str, status: str = "running", *, live: bool = True, last_error: str | None = None) -> dict:
    return {"name": name, "status": status, "live": live, "last_error": last_error}


def panels(
    *,
    consumers: list[dict] = (),
    lag: dict[str, int] | None = None,
    group_error: str | None = None,
    blocked: dict[int, int] | None = None,
    transaction: dict | None = None,
    instances: list[dict] = (),
) -> dict:
    blocked = blocked or {}
    partitions = [{"partition": p, "log_end": 10, "blocked_at": blocked.get(p)} for p in range(4)]
    return {
        "topics": [{"name": "lab-1.orders", "role": "orders", "partitions": partitions, "error": group_error}],
        "groups": [{"id": "lab-1.email", "committed": {}, "lag": lag or {}, "error": group_error, "members": []}],
        "consumers": list(consumers),
        "transaction": transaction,
        "transaction_ended": None,
        "billing": {"topic": "lab-1.invoices", "instances": list(instances)},
    }


def test_a_healthy_lab_reports_its_consumers_and_lag_and_no_errors():
    summary = lab_summary(
        panels(consumers=[consumer("c1"), consumer("c2")], lag={"0": 3, "1": 0, "2": 4}, instances=[billing("b1")]),
        online=True,
    )

    assert summary == {
        "online": True,
        "consumers_running": 2,
        "consumers_live": 2,
        "lag": 7,
        "errors": [],
        "error_count": 0,
        "open_transaction": False,
        "billing_live": 1,
        "blocked": [],
    }


def test_whether_the_learner_has_the_lab_open_is_passed_through():
    assert lab_summary(panels(), online=False)["online"] is False


def test_a_consumer_starting_is_live_but_not_yet_running():
    summary = lab_summary(
        panels(consumers=[consumer("c1"), consumer("c2", "starting"), consumer("c3", "stopped")]), online=True
    )

    assert (summary["consumers_running"], summary["consumers_live"]) == (1, 2)


def test_lag_is_unknown_until_the_group_reports_some():
    assert lab_summary(panels(lag={}), online=True)["lag"] is None
    assert lab_summary({}, online=True)["lag"] is None
    assert lab_summary(panels(lag={"0": 0}), online=True)["lag"] == 0


def test_an_empty_model_is_a_quiet_lab():
    assert lab_summary({}, online=False) == {
        "online": False,
        "consumers_running": 0,
        "consumers_live": 0,
        "lag": None,
        "errors": [],
        "error_count": 0,
        "open_transaction": False,
        "billing_live": 0,
        "blocked": [],
    }


def test_a_crashed_consumer_is_an_error_with_its_reason():
    summary = lab_summary(
        panels(consumers=[consumer("c1"), consumer("c2", "crashed", last_error="KafkaException: boom")]), online=True
    )

    assert summary["errors"] == ["c2 crashed: KafkaException: boom"]
    assert summary["consumers_running"] == 1


def test_a_crash_without_a_reason_still_says_it_crashed():
    summary = lab_summary(panels(consumers=[consumer("c1", "crashed")]), online=True)

    assert summary["errors"] == ["c1 crashed: no reason given"]


def test_a_consumer_crash_looping_is_an_error_even_while_it_restarts():
    looping = consumer("c1", "restarting", last_error="poison at 0:17", crashes=4, crash_looping=True)
    restarting_once = consumer("c2", "restarting", last_error="poison at 1:3", crashes=1)

    summary = lab_summary(panels(consumers=[looping, restarting_once]), online=True)

    assert summary["errors"] == ["c1 crashed: poison at 0:17"]
    assert summary["consumers_live"] == 2


def test_a_consumer_stopped_or_killed_by_the_learner_is_no_error():
    summary = lab_summary(panels(consumers=[consumer("c1", "stopped"), consumer("c2", "killed")]), online=True)

    assert summary["errors"] == []


def test_a_crashed_billing_instance_is_an_error_and_not_live():
    summary = lab_summary(
        panels(
            instances=[billing("b1"), billing("b2", "crashed", live=False, last_error="ProducerFenced")],
        ),
        online=True,
    )

    assert summary["errors"] == ["BillingService b2 crashed: ProducerFenced"]
    assert summary["billing_live"] == 1


def test_a_partition_blocked_by_a_poison_record_is_an_error():
    summary = lab_summary(panels(blocked={2: 17}), online=True)

    assert summary["blocked"] == [2]
    assert summary["errors"] == ["partition 2 blocked by a poison record"]


def test_a_blocked_partition_at_offset_zero_is_still_blocked():
    assert lab_summary(panels(blocked={0: 0}), online=True)["blocked"] == [0]


def test_kafka_unreachable_for_the_group_is_the_first_error():
    summary = lab_summary(
        panels(group_error="Broker: transport failure", consumers=[consumer("c1", "crashed", last_error="x")]),
        online=True,
    )

    assert summary["errors"] == ["Kafka: Broker: transport failure", "c1 crashed: x"]


def test_an_open_transaction_is_reported():
    open_one = {"transactional_id": "lab-1.orders-service", "orders": 3}

    assert lab_summary(panels(transaction=open_one), online=True)["open_transaction"] is True
    assert lab_summary(panels(transaction=None), online=True)["open_transaction"] is False


def test_each_error_is_cut_to_fit_a_roster_cell():
    summary = lab_summary(panels(consumers=[consumer("c1", "crashed", last_error="x" * 1000)]), online=True)

    [error] = summary["errors"]
    assert len(error) == SUMMARY_ERROR_CHARS
    assert error.startswith("c1 crashed: xxx")


def test_a_lab_with_many_failures_lists_the_first_few_and_counts_them_all():
    many = panels(
        consumers=[consumer(f"c{i}", "crashed", last_error="boom") for i in range(8)],
        blocked={0: 1, 1: 1, 2: 1, 3: 1},
    )

    summary = lab_summary(many, online=True)

    assert len(summary["errors"]) == SUMMARY_ERRORS
    assert summary["error_count"] == 12
