"""The lab's live model as plain data: what the runner publishes and every reader renders.

The observer (what Kafka holds) and LabLive (what the consumer processes report) are turned into
dicts and lists here, once; the page, the websocket pushes, state.json and later the lesson checks
and the instructor's dashboard read these shapes and nothing else. Derived numbers come from
kafkalab.labs.facts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kafkalab.kafka import dead_letters, readers
from kafkalab.kafka.groups import GroupDescription
from kafkalab.kafka.tail import TailPartition
from kafkalab.kafka.topics import PartitionState
from kafkalab.labs import facts, records
from kafkalab.runner.live import ConsumerLive, Email, LabLive, RebalanceLive
from kafkalab.runner.protocol import ORDERS_VIEW

# How many missed records the model lists by offset (the count covers them all).
MISSED_LISTED = 50
# How many poison records the model lists: the newest, enough for every box a page shows.
POISON_LISTED = 100

# What a dead letter's header says, cut to what a box, a tooltip and state.json can show.
REASON_CHARS = 40
ERROR_CHARS = 300
NAME_CHARS = 60


def iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, tz=UTC).isoformat()


def record_data(*, partition: int, offset: int, key: str | None, event_type: str, timestamp_ms: int) -> dict:
    return {
        "partition": partition,
        "offset": offset,
        "key": key,
        "event_type": event_type,
        "timestamp_ms": timestamp_ms,
    }


def wire_data(value: bytes | None, headers: Iterable[tuple[str, bytes | None]]) -> dict:
    """What lessons ask of a record beyond its box: the schema id it was written with (Confluent's
    wire format), and whether "Replay DLQ" wrote it. Only the keys that apply, to keep pushes small."""
    found = {}
    schema_id = readers.schema_id_of(value)
    if schema_id is not None:
        found["schema_id"] = schema_id
    if any(name == dead_letters.REPLAYED_FROM for name, _ in headers):
        found["replayed"] = True
    return found


def partition_data(state: PartitionState) -> dict:
    return dataclasses.asdict(state)


def tail_partition_data(found: TailPartition) -> dict:
    """A partition of a topic the probe does not watch (the DLQ), as the tail found it: its log
    end grows with the records read after that (LaneState.log_end)."""
    return {
        "partition": found.partition,
        "leader": found.leader,
        "replicas": found.replicas,
        "isr": found.isr,
        "log_start": found.log_start,
        "log_end": found.log_end,
        "last_stable": None,
    }


# --- Dead letters and poison records ----------------------------------------------------------


def dead_letter_data(headers: Iterable[tuple[str, bytes | None]]) -> dict | None:
    """Where a dead letter came from and why, from its kafkalab.dlq.* headers; None when it has
    none (a foreign client's record). Whatever the headers hold, this never raises."""
    found = {name: raw for name, raw in headers if dead_letters.is_dead_letter_header(name)}
    if not found:
        return None
    return {
        "topic": _header_text(found.get(dead_letters.TOPIC), NAME_CHARS),
        "partition": _header_int(found.get(dead_letters.PARTITION)),
        "offset": _header_int(found.get(dead_letters.OFFSET)),
        "reason": _header_text(found.get(dead_letters.REASON), REASON_CHARS) or "unknown",
        "error": _header_text(found.get(dead_letters.ERROR), ERROR_CHARS),
        "consumer": _header_text(found.get(dead_letters.CONSUMER), NAME_CHARS),
        "at_ms": _header_int(found.get(dead_letters.TIME)),
    }


def _header_text(raw: bytes | None, limit: int) -> str:
    return records.display_text(raw, limit=limit) if raw else ""


def _header_int(raw: bytes | None) -> int | None:
    if not raw or len(raw) > 20:  # no offset or time has more digits: nonsense, not a number to cut
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def poison_data(
    *, reported: Mapping[tuple[int, int], Any], dead_lettered: Mapping[tuple[int, int], dict]
) -> list[dict]:
    """The orders topic's poison records, by partition and offset: the newest POISON_LISTED of
    what the consumer processes reported (live.Poison) and what the dead-letter topic holds. A
    dead letter wins where both speak: Kafka holds it, whichever client set the record aside."""
    marks: dict[tuple[int, int], tuple[float, dict]] = {}
    for (partition, offset), poison in reported.items():
        mark = {"reason": str(poison.reason), "message": poison.message[:ERROR_CHARS], "consumer": poison.consumer}
        marks[(partition, offset)] = (poison.at, {**mark, "action": str(poison.action)})
    for (partition, offset), letter in dead_lettered.items():
        mark = {"reason": letter["reason"], "message": letter["error"], "consumer": letter["consumer"]}
        marks[(partition, offset)] = ((letter["at_ms"] or 0) / 1000, {**mark, "action": "dead-lettered"})
    newest = sorted(marks.items(), key=lambda item: item[1][0])[-POISON_LISTED:]
    return [{"partition": partition, "offset": offset, **mark} for (partition, offset), (_, mark) in sorted(newest)]


def lane_data(
    *,
    partition: int,
    state: dict | None,
    log_end: int | None,
    committed: int | None,
    owner: ConsumerLive | None,
    positions: Sequence[tuple[ConsumerLive, int]] = (),
    lag_history: dict | None = None,
    blocked_at: int | None = None,
) -> dict:
    """One partition of the orders topic as a lane shows it (without its records). `positions`:
    each live consumer reading it and the next offset it will read; `lag_history`:
    LagHistory.as_data(); `blocked_at`: the offset a crash-looping consumer is stuck on."""
    state = state or {}
    data = {
        "view": ORDERS_VIEW,
        "partition": partition,
        "leader": state.get("leader"),
        "isr": state.get("isr", []),
        "log_start": state.get("log_start"),
        "log_end": log_end,
        "last_stable": state.get("last_stable"),
        "committed": committed,
        "lag": facts.lag(log_end=log_end, committed=committed),
        "owner": owner.name if owner else None,
        "owner_colour": owner.colour if owner else None,
        "position": owner.positions.get(partition) if owner else None,
        "positions": [
            {"consumer": consumer.name, "position": position, "colour": consumer.colour}
            for consumer, position in positions
        ],
        "blocked_at": blocked_at,
    }
    if lag_history is not None:
        data["lag_history"] = lag_history
    return data


def log_lane_data(*, view: str, partition: int, state: dict | None, log_end: int | None) -> dict:
    """One partition of a topic the lab's group does not read (the DLQ), as its lane shows it:
    where its log starts and ends."""
    state = state or {}
    return {
        "view": view,
        "partition": partition,
        "leader": state.get("leader"),
        "isr": state.get("isr", []),
        "log_start": state.get("log_start"),
        "log_end": log_end,
    }


def records_held(lanes: Iterable[dict]) -> int:
    """How many records a topic holds: each partition's log end minus its log start."""
    return sum(max(0, (lane["log_end"] or 0) - (lane["log_start"] or 0)) for lane in lanes)


def view_data(*, view: str, topic: str, lanes: list[dict]) -> dict:
    """Another of the lab's topics, drawn as lanes below the orders topic's."""
    return {"view": view, "topic": topic, "records": records_held(lanes), "lanes": lanes}


def group_data(
    *,
    group_id: str,
    group: GroupDescription | None,
    committed: dict[int, int] | None,
    lanes: list[dict],
    error: str | None,
) -> dict:
    committed = committed or {}
    lag = {str(lane["partition"]): lane["lag"] for lane in lanes if lane["lag"] is not None}
    return {
        "id": group_id,
        "state": group.state if group else None,
        "state_label": group.state_label if group else None,
        "protocol": group.protocol if group else None,
        "assignor": group.assignor if group else None,
        "members": [
            {"member_id": m.member_id, "consumer": m.client_id, "host": m.host, "partitions": m.partitions}
            for m in (group.members if group else [])
        ],
        "committed": {str(p): offset for p, offset in sorted(committed.items())},
        "lag": lag,
        "error": error,
    }


def consumer_data(consumer: ConsumerLive) -> dict:
    return {
        "name": consumer.name,
        "pid": consumer.pid,
        "status": str(consumer.status),
        "live": consumer.live,
        "config": consumer.config.as_dict(),
        "last_error": consumer.last_error,
        "assigned": list(consumer.assigned),
        "positions": {str(p): offset for p, offset in sorted(consumer.positions.items())},
        "emailed": consumer.emailed,
        "colour": consumer.colour,
        "failures": consumer.failure_data(),
    }


def rebalance_data(rebalance: RebalanceLive) -> dict:
    return {
        "trigger": rebalance.trigger,
        "started_at": iso(rebalance.started_at),
        "ended_at": iso(rebalance.ended_at),
        "duration_ms": rebalance.duration_ms,
        "changes": rebalance.as_changes(),
    }


def email_data(email: Email, aborted: Container[tuple[int, int]] = ()) -> dict:
    return {
        "consumer": email.consumer,
        "partition": email.partition,
        "offset": email.offset,
        "order_id": email.order_id,
        "event_type": email.event_type,
        "at": iso(email.at),
        "duplicate": email.duplicate,
        "missed": email.missed,
        "reason": email.reason,
        "aborted": (email.partition, email.offset) in aborted,
    }


def outbox_data(live: LabLive, missed: list[facts.Missed], aborted: Container[tuple[int, int]] = ()) -> dict:
    """The emails sent, duplicated, missed, and sent for orders whose transaction was aborted
    (`aborted`: the orders records Kafka holds as aborted)."""
    with live.lock:
        return {
            "sent": live.emails_sent,
            "duplicates": live.duplicates_sent,
            "missed": len(missed),
            "never_happened": facts.never_happened(live.email_counts, aborted),
            "missed_records": [
                {"partition": m.partition, "offset": m.offset, "key": m.key} for m in missed[:MISSED_LISTED]
            ],
            "recent": [email_data(e, aborted) for e in live.recent_emails],
        }


def live_data(live: LabLive) -> dict[str, Any]:
    """What the runner itself knows: the consumer processes' reports (consumers and the rebalance
    timeline), the registry's events, and OrderService's transaction."""
    with live.lock:
        return {
            "consumers": [consumer_data(c) for c in live.consumers.values()],
            "rebalances": [rebalance_data(r) for r in live.rebalances],
            "registry_events": [{**event, "at": iso(event["at"])} for event in live.registry_events],
            # OrderService's open transaction (None when none is open) and how the last one ended.
            "transaction": live.transaction,
            "transaction_ended": live.transaction_ended,
        }


SUMMARY_ERRORS = 3
SUMMARY_ERROR_CHARS = 140


def lab_summary(panels: dict[str, Any], *, online: bool) -> dict[str, Any]:
    """A lab's health in one line, for a classroom's dashboard: from the model (without records)
    and whether its learner has the lab open now."""
    consumers = panels.get("consumers", [])
    group = (panels.get("groups") or [{}])[0]
    lag = group.get("lag") or {}
    orders = (panels.get("topics") or [{}])[0]
    blocked = [p["partition"] for p in orders.get("partitions", []) if p.get("blocked_at") is not None]
    errors = _summary_errors(panels, consumers, group, blocked)
    return {
        "online": online,
        "consumers_running": sum(1 for c in consumers if c["status"] == "running"),
        "consumers_live": sum(1 for c in consumers if c["live"]),
        "lag": sum(lag.values()) if lag else None,
        # The first few, for the dashboard's cell, and how many there are in all (it sorts by that).
        "errors": errors[:SUMMARY_ERRORS],
        "error_count": len(errors),
        "open_transaction": panels.get("transaction") is not None,
        "billing_live": sum(1 for b in panels.get("billing", {}).get("instances", []) if b["live"]),
        "blocked": blocked,
    }


def _summary_errors(panels: dict, consumers: list[dict], group: dict, blocked: list[int]) -> list[str]:
    errors = []
    if group.get("error"):
        errors.append(f"Kafka: {group['error']}")
    for consumer in consumers:
        if consumer["status"] == "crashed" or consumer["failures"].get("crash_looping"):
            errors.append(f"{consumer['name']} crashed: {consumer['last_error'] or 'no reason given'}")
    for instance in panels.get("billing", {}).get("instances", []):
        if instance["status"] == "crashed":
            errors.append(f"BillingService {instance['name']} crashed: {instance['last_error'] or 'no reason given'}")
    errors += [f"partition {p} blocked by a poison record" for p in blocked]
    return [error[:SUMMARY_ERROR_CHARS] for error in errors]
