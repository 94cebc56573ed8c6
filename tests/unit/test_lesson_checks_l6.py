"""Lesson 6's outbox checks on plain models shaped like the runner's (kafkalab.runner.model):
`recent` lists the last emails NEWEST FIRST and is bounded, `missed_records` is sorted by
partition and offset, and each consumer carries its config as ConsumerConfig.as_dict()."""

from __future__ import annotations

from datetime import UTC, datetime

from kafkalab.kafka.consumer_config import ConsumerConfig
from lessons import checks

T0 = 1_800_000_000.0  # when the step became current


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat()


def consumer(name: str, status: str = "running", **config: object) -> dict:
    return {
        "name": name,
        "status": status,
        "live": status == "running",
        "config": ConsumerConfig(**config).as_dict(),
        "emailed": 0,
    }


def email(consumer: str, partition: int, offset: int, at: float, *, duplicate: bool = False) -> dict:
    return {
        "consumer": consumer,
        "partition": partition,
        "offset": offset,
        "order_id": f"order-{partition}-{offset}",
        "event_type": "OrderCreated",
        "at": iso(at),
        "duplicate": duplicate,
    }


def lab(
    *,
    emails: list[dict] = (),
    consumers: list[dict] = (),
    sent: int | None = None,
    duplicates: int | None = None,
    missed: list[tuple[int, int]] = (),
    lanes: list[dict] | None = None,
) -> dict:
    """`emails` oldest first, as they happened; the model lists the last 25, newest first."""
    emails = list(emails)
    return {
        "lanes": lanes if lanes is not None else [{"partition": p, "log_end": 0, "records": []} for p in range(4)],
        "groups": [{"state": "STABLE", "members": []}],
        "consumers": list(consumers),
        "rebalances": [],
        "outbox": {
            "sent": len(emails) if sent is None else sent,
            "duplicates": sum(e["duplicate"] for e in emails) if duplicates is None else duplicates,
            "missed": len(missed),
            "missed_records": [{"partition": p, "offset": o, "key": f"order-{p}-{o}"} for p, o in missed],
            "recent": list(reversed(emails))[:25],
        },
    }


def evaluate(name: str, before: dict, now: dict, **params) -> dict | None:
    spec = checks.REGISTRY[name]
    return checks.evaluate(name, spec.bind(params), model=now, armed=checks.arm(before, now=T0), now=T0 + 60)


# --- emails_sent -------------------------------------------------------------------------------


def test_emails_sent_counts_from_the_step_and_shows_position_beside_commit():
    old = [email("c0", 0, o, T0 - 10) for o in range(3)]
    new = [email("c1", 1, o, T0 + 1 + o) for o in range(5)]
    lanes = [
        {"partition": 0, "log_end": 3, "position": None, "committed": 3, "records": []},
        {"partition": 1, "log_end": 9, "position": 5, "committed": None, "records": []},
        {"partition": 2, "log_end": 0, "position": None, "committed": None, "records": []},
    ]
    before = lab(emails=old, lanes=lanes)

    assert evaluate("emails_sent", before, lab(emails=old + new[:4], lanes=lanes), count=5) is None
    facts = evaluate("emails_sent", before, lab(emails=old + new, lanes=lanes), count=5)
    assert facts == {
        "count": "5",
        "consumers": "c1",  # not c0, whose emails came before the step
        "offsets": "P0: read up to —, committed 3; P1: read up to 5, committed nothing yet",
    }


def test_emails_sent_before_the_runner_armed_the_step_still_count():
    emails = [email("c1", 0, o, T0 + 1 + o) for o in range(5)]
    # The runner's first look came after all five: the baseline already counts them.
    armed = checks.arm(lab(emails=emails), now=T0 + 10, since=T0)
    facts = checks.evaluate("emails_sent", {"count": 5}, model=lab(emails=emails), armed=armed, now=T0 + 11)
    assert facts["count"] == "5" and facts["consumers"] == "c1"


# --- duplicate_email ---------------------------------------------------------------------------


def test_a_duplicate_from_before_the_step_is_not_the_one_shown():
    auto = [consumer("c1", "killed"), consumer("c2")]
    earlier = [email("c1", 0, 0, T0 - 20), email("c2", 0, 0, T0 - 19, duplicate=True)]
    before = lab(emails=earlier, consumers=auto)
    assert evaluate("duplicate_email", before, before) is None

    now = earlier + [email("c1", 2, 7, T0 + 1), email("c1", 2, 8, T0 + 2)]
    now += [email("c2", 2, 7, T0 + 9, duplicate=True), email("c2", 2, 8, T0 + 10, duplicate=True)]
    facts = evaluate("duplicate_email", before, lab(emails=now, consumers=auto), commit_mode="auto")
    # The newest duplicate since the step, with who sent it first and who again.
    assert facts == {
        "order_id": "order-2-8",
        "partition": "2",
        "offset": "8",
        "consumers": "c1 then c2",
        "commit_mode": "auto-commit (enable.auto.commit=true, offsets stored at hand-over)",
        "duplicates": "2",
    }


def test_commit_mode_after_means_committing_only_what_was_processed():
    storing = consumer("c4", commit_mode="auto", enable_auto_offset_store=False, auto_commit_interval_ms=60_000)
    manual = consumer("c5", commit_mode="after")
    hand_over = consumer("c6")  # plain auto-commit: not "after"
    for who, label in [
        (storing, "auto-commit of offsets stored after each email (enable.auto.offset.store=false)"),
        (manual, "manual commit after each email"),
    ]:
        emails = [email(who["name"], 1, 3, T0 + 1), email(who["name"], 1, 3, T0 + 5, duplicate=True)]
        facts = evaluate("duplicate_email", lab(), lab(emails=emails, consumers=[who]), commit_mode="after")
        assert facts["commit_mode"] == label and facts["consumers"] == f"{who['name']} then {who['name']}"
        assert evaluate("duplicate_email", lab(), lab(emails=emails, consumers=[who]), commit_mode="auto") is None

    emails = [email("c6", 1, 3, T0 + 1), email("c6", 1, 3, T0 + 5, duplicate=True)]
    assert evaluate("duplicate_email", lab(), lab(emails=emails, consumers=[hand_over]), commit_mode="after") is None


def test_a_duplicate_whose_first_email_scrolled_out_is_still_shown():
    emails = [email("c1", 0, 0, T0 + 1)] + [email("c1", 1, o, T0 + 2) for o in range(30)]
    emails.append(email("c2", 0, 0, T0 + 9, duplicate=True))
    facts = evaluate("duplicate_email", lab(), lab(emails=emails, consumers=[consumer("c1", "killed"), consumer("c2")]))
    assert (facts["partition"], facts["offset"], facts["order_id"]) == ("0", "0", "order-0-0")
    assert facts["consumers"].startswith("c2 (")


def test_duplicates_that_scrolled_out_of_the_list_pass_on_the_counts():
    after = consumer("c4", commit_mode="after")
    emails = [email("c4", 0, 0, T0 + 1), email("c4", 0, 0, T0 + 2, duplicate=True)]
    emails += [email("c4", 1, o, T0 + 3) for o in range(40)]
    now = lab(emails=emails, consumers=[after])
    assert all(not e["duplicate"] for e in now["outbox"]["recent"]) and now["outbox"]["duplicates"] == 1

    facts = evaluate("duplicate_email", lab(consumers=[after]), now, commit_mode="after")
    assert facts["duplicates"] == "1" and facts["consumers"] == "c4" and facts["offset"] == "—"
    # ...but not for a mode no consumer in the lab used.
    assert evaluate("duplicate_email", lab(consumers=[after]), now, commit_mode="auto") is None


# --- missed_email ------------------------------------------------------------------------------


def test_missed_email_names_the_order_lost_during_the_step_not_an_older_one():
    lanes = [{"partition": p, "log_end": 5, "records": []} for p in range(4)]
    before = lab(missed=[(0, 1)], lanes=lanes, consumers=[consumer("c3")])
    assert evaluate("missed_email", before, before) is None

    now = lab(missed=[(0, 1), (2, 5)], lanes=lanes, consumers=[consumer("c3", "killed")])
    assert evaluate("missed_email", before, now) == {
        "partition": "2",
        "offset": "5",
        "key": "order-2-5",
        "missed": "2",
        "consumers": "c3",
    }


def test_missed_email_needs_a_new_miss():
    lanes = [{"partition": p, "log_end": 5, "records": []} for p in range(4)]
    before = lab(missed=[(1, 2)], lanes=lanes)
    assert evaluate("missed_email", before, lab(missed=[(1, 2)], lanes=lanes)) is None
