"""Lesson checks: each decides, from the lab's live model, whether Kafka shows what a step asks.

A check reads the model the runner keeps (kafkalab.runner.model: lanes and their recent records,
the group, the consumers, the rebalance timeline, the outbox) and the snapshot taken when the
step became current (`arm`), so that only what happened since counts: an old record does not
pass "write an event". Whoever caused it, the app's form or kcat, Kafka shows it the same way.

A check returns the facts it found (shown in the step's explanation, in the learner's own
numbers), or None while the step has not happened. A new kind of check is one small function
here, registered with @check and unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kafkalab.kafka.partitioner import crc32_partition_for, murmur2, partition_for

KEYS_REMEMBERED = 500  # keys (and their partitions) a snapshot keeps, for "keys moved"


# --- what a check sees -----------------------------------------------------------------------


def arm(model: dict, *, now: float) -> dict:
    """What the lab holds as a step becomes current: the baseline its check compares against."""
    lanes = model.get("lanes", [])
    return {
        "at": now,
        "log_ends": {str(lane["partition"]): lane.get("log_end") or 0 for lane in lanes},
        "partitions": len(lanes),
        "consumers": {c["name"]: c["status"] for c in model.get("consumers", [])},
        "members": {m["consumer"]: m["partitions"] for m in _group(model).get("members", [])},
        "emails": model.get("outbox", {}).get("sent", 0),
        "duplicates": model.get("outbox", {}).get("duplicates", 0),
        "missed": model.get("outbox", {}).get("missed", 0),
        "keys": dict(
            list(
                {
                    record["key"]: record["partition"]
                    for lane in lanes
                    for record in lane.get("records", [])
                    if record.get("key") is not None
                }.items()
            )[-KEYS_REMEMBERED:]
        ),
    }


def _group(model: dict) -> dict:
    groups = model.get("groups") or [{}]
    return groups[0] or {}


class LabNow:
    """The model now, beside the step's baseline."""

    def __init__(self, model: dict, armed: dict, *, now: float) -> None:
        self.model, self.armed, self.now = model, armed, now

    @property
    def partitions(self) -> int:
        return len(self.model.get("lanes", []))

    def new_records(self) -> list[dict]:
        """Records written since the step became current, oldest first."""
        ends = self.armed.get("log_ends", {})
        records = [
            record
            for lane in self.model.get("lanes", [])
            for record in lane.get("records", [])
            if record["offset"] >= ends.get(str(lane["partition"]), 0)
        ]
        return sorted(records, key=lambda r: (r.get("timestamp_ms") or 0, r["partition"], r["offset"]))

    def consumers(self, *, live: bool = True) -> list[dict]:
        return [c for c in self.model.get("consumers", []) if c.get("live") or not live]

    def members(self) -> list[dict]:
        return _group(self.model).get("members", [])

    def group(self) -> dict:
        return _group(self.model)

    def new_rebalances(self) -> list[dict]:
        """Rebalances that started since the step became current and are over."""
        return [
            r
            for r in self.model.get("rebalances", [])
            if r.get("ended_at") and _epoch(r.get("started_at")) >= self.armed.get("at", 0) - 0.5
        ]

    def newly(self, status: str) -> list[str]:
        """Consumers whose status became `status` since the step became current."""
        before = self.armed.get("consumers", {})
        return [
            c["name"]
            for c in self.model.get("consumers", [])
            if c["status"] == status and before.get(c["name"]) != status
        ]

    def outbox(self) -> dict:
        return self.model.get("outbox", {})


def _epoch(iso: str | None) -> float:
    return datetime.fromisoformat(iso).astimezone(UTC).timestamp() if iso else 0.0


# --- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    name: str
    run: Callable[[LabNow, dict], dict | None]
    params: dict  # name → default (its type is the default's type)
    facts: frozenset[str]

    def bind(self, given: dict) -> dict:
        """The check's parameters: the defaults, overridden by `given` (ValueError when wrong)."""
        if not isinstance(given, dict):
            raise ValueError(f"params of {self.name!r} are a table")
        unknown = set(given) - set(self.params)
        if unknown:
            raise ValueError(
                f"check {self.name!r} takes no {', '.join(sorted(unknown))} (it takes: {', '.join(self.params) or 'nothing'})"
            )
        bound = dict(self.params)
        for name, value in given.items():
            if type(value) is not type(self.params[name]):
                raise ValueError(f"check {self.name!r}: {name} is a {type(self.params[name]).__name__}")
            bound[name] = value
        return bound


REGISTRY: dict[str, CheckSpec] = {}


def check(name: str, *, facts: set[str], **params):
    def register(run: Callable[[LabNow, dict], dict | None]):
        REGISTRY[name] = CheckSpec(name=name, run=run, params=params, facts=frozenset(facts))
        return run

    return register


def evaluate(name: str, params: dict, *, model: dict, armed: dict, now: float) -> dict | None:
    """The facts when the step's check passes on `model`, else None."""
    facts = REGISTRY[name].run(LabNow(model, armed, now=now), params)
    return None if facts is None else {key: str(value) for key, value in facts.items()}


# --- records ---------------------------------------------------------------------------------

RECORD_FACTS = {"key", "partition", "offset", "partitions", "hash", "event_type"}


def record_facts(record: dict, partitions: int) -> dict:
    key = record.get("key")
    return {
        "key": "no key" if key is None else key,
        "partition": record["partition"],
        "offset": record["offset"],
        "partitions": partitions,
        "hash": "—" if key is None else f"{murmur2(key.encode()) & 0x7FFFFFFF}",
        "event_type": record.get("event_type") or "unknown",
    }


@check("record_written", facts=RECORD_FACTS)
def record_written(lab: LabNow, params: dict) -> dict | None:
    """Any new record in the topic, from any client."""
    records = lab.new_records()
    return record_facts(records[0], lab.partitions) if records else None


@check("records_written", facts={"count", "offsets", "partitions_used"}, count=10)
def records_written(lab: LabNow, params: dict) -> dict | None:
    """At least `count` new records; the facts list each partition's new offsets."""
    records = lab.new_records()
    if len(records) < params["count"]:
        return None
    per_partition: dict[int, list[int]] = {}
    for record in records:
        per_partition.setdefault(record["partition"], []).append(record["offset"])
    offsets = "; ".join(f"P{p}: {_span(o)}" for p, o in sorted(per_partition.items()))
    return {"count": len(records), "offsets": offsets, "partitions_used": len(per_partition)}


def _span(offsets: list[int]) -> str:
    offsets = sorted(offsets)
    return str(offsets[0]) if len(offsets) == 1 else f"{offsets[0]}–{offsets[-1]}"


@check("record_appended", facts=RECORD_FACTS | {"log_start", "before"})
def record_appended(lab: LabNow, params: dict) -> dict | None:
    """A new record behind earlier ones in its partition, all of which are still in the log."""
    for record in lab.new_records():
        lane = next(lane for lane in lab.model["lanes"] if lane["partition"] == record["partition"])
        log_start = lane.get("log_start") or 0
        if record["offset"] > log_start:
            return {
                **record_facts(record, lab.partitions),
                "log_start": log_start,
                "before": record["offset"] - log_start,
            }
    return None


@check("same_key_twice", facts=RECORD_FACTS | {"offsets"})
def same_key_twice(lab: LabNow, params: dict) -> dict | None:
    """Two new records with one key: both in the partition murmur2 of that key picks."""
    first_seen: dict[str, dict] = {}
    for record in lab.new_records():
        key = record.get("key")
        if key is None:
            continue
        if key in first_seen and first_seen[key]["partition"] == record["partition"]:
            return {
                **record_facts(record, lab.partitions),
                "offsets": f"{first_seen[key]['offset']} and {record['offset']}",
            }
        first_seen.setdefault(key, record)
    return None


LIFECYCLE = ("OrderCreated", "OrderPaid", "OrderShipped")


@check("lifecycle_in_order", facts=RECORD_FACTS | {"offsets"})
def lifecycle_in_order(lab: LabNow, params: dict) -> dict | None:
    """OrderPaid then OrderShipped for one key, written since, in one partition, in that order
    (its OrderCreated too, when the lane still shows it)."""
    by_key: dict[str, list[dict]] = {}
    for lane in lab.model.get("lanes", []):
        for record in lane.get("records", []):
            if record.get("key") is not None and record.get("event_type") in LIFECYCLE:
                by_key.setdefault(record["key"], []).append(record)
    new = {(r["partition"], r["offset"]) for r in lab.new_records()}
    for records in by_key.values():
        records.sort(key=lambda r: (r["partition"], r["offset"]))
        types = [r["event_type"] for r in records]
        shipped = [r for r in records if r["event_type"] == "OrderShipped" and (r["partition"], r["offset"]) in new]
        one_partition = len({r["partition"] for r in records}) == 1
        if (
            shipped
            and one_partition
            and "OrderPaid" in types
            and types.index("OrderPaid") < types.index("OrderShipped")
        ):
            offsets = ", ".join(f"{r['event_type'].removeprefix('Order')} @{r['offset']}" for r in records)
            return {**record_facts(shipped[0], lab.partitions), "offsets": offsets}
    return None


@check(
    "keys_spread",
    facts={"count", "partitions_used", "partitions", "example_key", "example_hash", "example_partition"},
    partitions=3,
)
def keys_spread(lab: LabNow, params: dict) -> dict | None:
    """New records with different keys, landing in at least `partitions` partitions."""
    records = [r for r in lab.new_records() if r.get("key") is not None]
    used = {r["partition"] for r in records}
    if len(used) < min(params["partitions"], lab.partitions):
        return None
    example = records[-1]
    return {
        "count": len(records),
        "partitions_used": len(used),
        "partitions": lab.partitions,
        "example_key": example["key"],
        "example_hash": murmur2(example["key"].encode()) & 0x7FFFFFFF,
        "example_partition": example["partition"],
    }


@check("key_placed_by_crc32", facts=RECORD_FACTS | {"murmur2_partition"})
def key_placed_by_crc32(lab: LabNow, params: dict) -> dict | None:
    """A new keyed record where librdkafka's default (CRC32) put it, not where murmur2 would."""
    for record in lab.new_records():
        key = record.get("key")
        if key is None:
            continue
        raw, n = key.encode(), lab.partitions
        java = partition_for(raw, n)
        if record["partition"] == crc32_partition_for(raw, n) != java:
            return {**record_facts(record, n), "murmur2_partition": java}
    return None


@check("partitions_increased", facts={"before", "after"})
def partitions_increased(lab: LabNow, params: dict) -> dict | None:
    before = lab.armed.get("partitions", 0)
    return {"before": before, "after": lab.partitions} if lab.partitions > before else None


@check("key_moved", facts={"key", "before", "after", "partitions"})
def key_moved(lab: LabNow, params: dict) -> dict | None:
    """A new record for a key seen before the step, now in another partition."""
    earlier = lab.armed.get("keys", {})
    for record in lab.new_records():
        before = earlier.get(record.get("key"))
        if before is not None and before != record["partition"]:
            return {"key": record["key"], "before": before, "after": record["partition"], "partitions": lab.partitions}
    return None


# --- the group -------------------------------------------------------------------------------


def _assignment(lab: LabNow) -> dict[str, list[int]]:
    return {m["consumer"]: sorted(m["partitions"]) for m in lab.members()}


@check("consumers_share_partitions", facts={"consumers", "assignment", "partitions"}, consumers=1)
def consumers_share_partitions(lab: LabNow, params: dict) -> dict | None:
    """Exactly `consumers` members, each reading at least one partition, every partition read."""
    assignment = _assignment(lab)
    read = sorted(p for partitions in assignment.values() for p in partitions)
    if len(assignment) != params["consumers"] or any(not p for p in assignment.values()):
        return None
    if read != list(range(lab.partitions)) or lab.group().get("state") != "STABLE":
        return None
    return {"consumers": len(assignment), "assignment": _describe(assignment), "partitions": lab.partitions}


def _describe(assignment: dict[str, list[int]]) -> str:
    return "; ".join(
        f"{name}: {', '.join(f'P{p}' for p in ps) or 'nothing'}" for name, ps in sorted(assignment.items())
    )


@check("idle_member", facts={"consumer", "members", "partitions"})
def idle_member(lab: LabNow, params: dict) -> dict | None:
    """More members than partitions: a member with no partition while every partition is read."""
    assignment = _assignment(lab)
    idle = sorted(name for name, partitions in assignment.items() if not partitions)
    read = {p for partitions in assignment.values() for p in partitions}
    if idle and len(read) == lab.partitions and lab.group().get("state") == "STABLE":
        return {"consumer": idle[0], "members": len(assignment), "partitions": lab.partitions}
    return None


@check("idle_member_takes_over", facts={"consumer", "taken", "left"})
def idle_member_takes_over(lab: LabNow, params: dict) -> dict | None:
    """A member that read nothing when the step began now reads a partition another one left."""
    before = lab.armed.get("members", {})
    now = _assignment(lab)
    left = sorted(set(before) - set(now))
    for name, partitions in now.items():
        if name in before and not before[name] and partitions and left:
            return {"consumer": name, "taken": ", ".join(f"P{p}" for p in partitions), "left": ", ".join(left)}
    return None


def _rebalance_facts(rebalance: dict) -> dict:
    changes = "; ".join(
        f"{c['consumer']} "
        + ", ".join(
            f"{kind} {', '.join(f'P{p}' for p in c[kind])}" for kind in ("lost", "revoked", "assigned") if c.get(kind)
        )
        for c in rebalance.get("changes", [])
    )
    return {
        "seconds": f"{(rebalance.get('duration_ms') or 0) / 1000:.1f}",
        "changes": changes or "no change",
        "trigger": rebalance.get("trigger", ""),
    }


REBALANCE_FACTS = {"consumer", "seconds", "changes", "trigger"}


@check("rebalance_after_stop", facts=REBALANCE_FACTS)
def rebalance_after_stop(lab: LabNow, params: dict) -> dict | None:
    stopped = lab.newly("stopped")
    done = [r for r in lab.new_rebalances() if any(name in r.get("trigger", "") for name in stopped)]
    return {"consumer": stopped[0], **_rebalance_facts(done[-1])} if stopped and done else None


@check("rebalance_after_kill", facts=REBALANCE_FACTS | {"session_timeout_s", "orphaned"})
def rebalance_after_kill(lab: LabNow, params: dict) -> dict | None:
    """A consumer was killed and the group has since rebalanced its partitions to the others."""
    for name in lab.newly("killed"):
        done = [r for r in lab.new_rebalances() if name in r.get("trigger", "")]
        if done:
            consumer = next(c for c in lab.model["consumers"] if c["name"] == name)
            timeout_ms = consumer.get("config", {}).get("session_timeout_ms") or 0
            orphaned = lab.armed.get("members", {}).get(name, [])
            return {
                "consumer": name,
                **_rebalance_facts(done[-1]),
                "session_timeout_s": f"{timeout_ms / 1000:g}",
                "orphaned": ", ".join(f"P{p}" for p in orphaned) or "none",
            }
    return None


@check("incremental_rebalance", facts=REBALANCE_FACTS | {"kept"}, assignor="cooperative-sticky")
def incremental_rebalance(lab: LabNow, params: dict) -> dict | None:
    """A rebalance since, in a group using `assignor`, where a member kept its partitions
    throughout (nothing revoked from it, unlike an eager rebalance)."""
    if lab.group().get("assignor") != params["assignor"]:
        return None
    for rebalance in reversed(lab.new_rebalances()):
        changed = {c["consumer"] for c in rebalance.get("changes", []) if c.get("revoked") or c.get("lost")}
        kept = sorted(name for name, partitions in _assignment(lab).items() if partitions and name not in changed)
        if kept and rebalance.get("changes"):
            return {"consumer": kept[0], "kept": kept[0], **_rebalance_facts(rebalance)}
    return None


@check("group_protocol", facts={"protocol", "members", "assignment"}, protocol="consumer")
def group_protocol(lab: LabNow, params: dict) -> dict | None:
    group = lab.group()
    if (group.get("protocol") or "").lower() != params["protocol"] or not lab.members():
        return None
    return {"protocol": group["protocol"], "members": len(lab.members()), "assignment": _describe(_assignment(lab))}


# --- the outbox ------------------------------------------------------------------------------


@check("emails_sent", facts={"count", "consumers"}, count=5)
def emails_sent(lab: LabNow, params: dict) -> dict | None:
    sent = lab.outbox().get("sent", 0) - lab.armed.get("emails", 0)
    if sent < params["count"]:
        return None
    names = sorted({e["consumer"] for e in lab.outbox().get("recent", [])})
    return {"count": sent, "consumers": ", ".join(names)}


@check("duplicate_email", facts={"order_id", "partition", "offset", "consumers", "commit_mode"}, commit_mode="")
def duplicate_email(lab: LabNow, params: dict) -> dict | None:
    """An order emailed twice since the step began (by consumers with `commit_mode`, if given)."""
    if lab.outbox().get("duplicates", 0) <= lab.armed.get("duplicates", 0):
        return None
    modes = {c["name"]: c.get("config", {}).get("commit_mode") for c in lab.consumers(live=False)}
    for email in reversed(lab.outbox().get("recent", [])):
        if not email.get("duplicate"):
            continue
        if params["commit_mode"] and modes.get(email["consumer"]) != params["commit_mode"]:
            continue
        senders = sorted(
            {
                e["consumer"]
                for e in lab.outbox()["recent"]
                if (e["partition"], e["offset"]) == (email["partition"], email["offset"])
            }
        )
        return {
            "order_id": email.get("order_id") or "—",
            "partition": email["partition"],
            "offset": email["offset"],
            "consumers": " and ".join(senders),
            "commit_mode": modes.get(email["consumer"]) or "",
        }
    return None


@check("missed_email", facts={"partition", "offset", "key", "missed"})
def missed_email(lab: LabNow, params: dict) -> dict | None:
    outbox = lab.outbox()
    if outbox.get("missed", 0) <= lab.armed.get("missed", 0) or not outbox.get("missed_records"):
        return None
    missed = outbox["missed_records"][0]
    return {
        "partition": missed["partition"],
        "offset": missed["offset"],
        "key": missed.get("key") or "no key",
        "missed": outbox["missed"],
    }
