"""The lab's live model as plain data: what the runner publishes and every reader renders.

The observer (what Kafka holds) and LabLive (what the consumer processes report) are turned into
dicts and lists here, once; the page, the websocket pushes, state.json and later the lesson checks
and the instructor's dashboard read these shapes and nothing else. Derived numbers come from
kafkalab.labs.facts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kafkalab.kafka.groups import GroupDescription
from kafkalab.kafka.topics import PartitionState
from kafkalab.labs import facts
from kafkalab.runner.live import ConsumerLive, Email, LabLive, RebalanceLive

# How many missed records the model lists by offset (the count covers them all).
MISSED_LISTED = 50


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


def partition_data(state: PartitionState) -> dict:
    return dataclasses.asdict(state)


def lane_data(
    *,
    partition: int,
    state: dict | None,
    log_end: int | None,
    committed: int | None,
    owner: ConsumerLive | None,
    positions: Sequence[tuple[ConsumerLive, int]] = (),
    lag_history: dict | None = None,
) -> dict:
    """One partition as a lane shows it (without its records). `positions`: each live consumer
    reading it and the next offset it will read; `lag_history`: LagHistory.as_data()."""
    state = state or {}
    data = {
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
    }
    if lag_history is not None:
        data["lag_history"] = lag_history
    return data


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
    }


def rebalance_data(rebalance: RebalanceLive) -> dict:
    return {
        "trigger": rebalance.trigger,
        "started_at": iso(rebalance.started_at),
        "ended_at": iso(rebalance.ended_at),
        "duration_ms": rebalance.duration_ms,
        "changes": rebalance.as_changes(),
    }


def email_data(email: Email) -> dict:
    return {
        "consumer": email.consumer,
        "partition": email.partition,
        "offset": email.offset,
        "order_id": email.order_id,
        "event_type": email.event_type,
        "at": iso(email.at),
        "duplicate": email.duplicate,
    }


def outbox_data(live: LabLive, missed: list[facts.Missed]) -> dict:
    with live.lock:
        return {
            "sent": live.emails_sent,
            "duplicates": live.duplicates_sent,
            "missed": len(missed),
            "missed_records": [
                {"partition": m.partition, "offset": m.offset, "key": m.key} for m in missed[:MISSED_LISTED]
            ],
            "recent": [email_data(e) for e in live.recent_emails],
        }


def live_data(live: LabLive) -> dict[str, Any]:
    """What the consumer processes reported: consumers and the rebalance timeline."""
    with live.lock:
        return {
            "consumers": [consumer_data(c) for c in live.consumers.values()],
            "rebalances": [rebalance_data(r) for r in live.rebalances],
        }
