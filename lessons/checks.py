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

from kafkalab.kafka.partitioner import crc32_partition_for, murmur2, partition_for, positive

KEYS_REMEMBERED = 500  # keys (and their partitions) a snapshot keeps, for "keys moved"


# --- what a check sees -----------------------------------------------------------------------


def arm(model: dict, *, now: float, since: float | None = None) -> dict:
    """What the lab holds as a step becomes current: the baseline its check compares against.

    `since` is when the step became current, if that was before `model` was taken (the runner
    arms a step at its next look): records written since then still count as new."""
    lanes = model.get("lanes", [])
    billing = model.get("billing") or {}
    since = now if since is None else min(since, now)
    return {
        "at": since,
        "log_ends": {str(lane["partition"]): _log_end_at(lane, since) for lane in lanes},
        "partitions": len(lanes),
        "consumers": {c["name"]: c["status"] for c in model.get("consumers", [])},
        "members": {m["consumer"]: m["partitions"] for m in _group(model).get("members", [])},
        "emails": model.get("outbox", {}).get("sent", 0),
        "duplicates": model.get("outbox", {}).get("duplicates", 0),
        "missed": model.get("outbox", {}).get("missed", 0),
        "billing": {
            "duplicates": billing.get("duplicates", 0),
            "fenced": sorted(b["name"] for b in billing.get("instances", []) if b.get("fenced")),
        },
        "invoice_log_ends": {
            str(lane["partition"]): _log_end_at(lane, since) for lane in _view_lanes(model, "invoices")
        },
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


def _log_end_at(lane: dict, since: float) -> int:
    """The lane's log end when the step became current: its first record written since then,
    or its log end now when there is none."""
    since_ms = since * 1000
    written_since = [r["offset"] for r in lane.get("records", []) if (r.get("timestamp_ms") or 0) >= since_ms]
    return min(written_since) if written_since else lane.get("log_end") or 0


def _view_lanes(model: dict, view: str) -> list[dict]:
    """The lanes of another of the lab's topics ("dlq", "invoices"), as the model draws them."""
    found = next((v for v in model.get("views", []) if v.get("view") == view), None)
    return (found or {}).get("lanes", [])


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
        "hash": "—" if key is None else str(positive(murmur2(key.encode()))),
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
        "example_hash": positive(murmur2(example["key"].encode())),
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
        + ", ".join(f"{kind} {_partitions(c[kind])}" for kind in ("lost", "revoked", "assigned") if c.get(kind))
        for c in rebalance.get("changes", [])
        if any(c.get(kind) for kind in ("lost", "revoked", "assigned"))
    )
    gained = "; ".join(
        f"{c['consumer']} gained {_partitions(new)}"
        for c in rebalance.get("changes", [])
        if (new := sorted(set(c.get("assigned", [])) - set(c.get("revoked", []))))
    )
    return {
        "seconds": f"{(rebalance.get('duration_ms') or 0) / 1000:.1f}",
        "changes": changes or "no change",
        "gained": gained or "nobody gained a partition",
        "trigger": rebalance.get("trigger", ""),
    }


def _partitions(partitions: list[int]) -> str:
    return ", ".join(f"P{p}" for p in sorted(partitions))


def _caused_by(rebalance: dict, name: str) -> bool:
    """The supervisor names the consumer first in its trigger ("c2 stopped and left the group",
    "c3 was killed; …"): c1 must not match c12's rebalance."""
    return rebalance.get("trigger", "").startswith(f"{name} ")


REBALANCE_FACTS = {"consumer", "seconds", "changes", "gained", "trigger"}


@check("rebalance_after_stop", facts=REBALANCE_FACTS)
def rebalance_after_stop(lab: LabNow, params: dict) -> dict | None:
    """A consumer stopped (gracefully) since the step began, and the rebalance it caused is over."""
    stopped = lab.newly("stopped")
    for rebalance in lab.new_rebalances():  # newest first
        name = next((name for name in stopped if _caused_by(rebalance, name)), None)
        if name is not None:
            return {"consumer": name, **_rebalance_facts(rebalance)}
    return None


@check("rebalance_after_kill", facts=REBALANCE_FACTS | {"session_timeout_s", "orphaned"})
def rebalance_after_kill(lab: LabNow, params: dict) -> dict | None:
    """A consumer was killed and the group has since rebalanced its partitions to the others.
    The rebalance's clock starts at the kill, so its seconds include the session timeout."""
    for name in lab.newly("killed"):
        done = [r for r in lab.new_rebalances() if _caused_by(r, name)]
        if not done:
            continue
        rebalance = done[0]
        facts = _rebalance_facts(rebalance)
        consumer = next(c for c in lab.model["consumers"] if c["name"] == name)
        config = consumer.get("config", {})
        # Under KIP-848 the broker sets the session timeout; the consumer's own value is not used.
        classic = config.get("group_protocol", "classic") == "classic"
        timeout_ms = config.get("session_timeout_ms") or 0
        orphaned = _held_before(lab, name, rebalance) or sorted(
            {p for c in rebalance.get("changes", []) for p in set(c.get("assigned", [])) - set(c.get("revoked", []))}
        )
        return {
            "consumer": name,
            **facts,
            "session_timeout_s": f"{timeout_ms / 1000:g}" if classic else "the broker's",
            "orphaned": _partitions(orphaned) or "none",
        }
    return None


def _held_before(lab: LabNow, name: str, rebalance: dict) -> list[int]:
    """What `name` held just before `rebalance`: its partitions when the step began, then each
    rebalance since (oldest first), revocations before assignments as an eager member does them."""
    held = set(lab.armed.get("members", {}).get(name, []))
    for earlier in reversed(lab.new_rebalances()):
        if earlier is rebalance:
            break
        for change in earlier.get("changes", []):
            if change["consumer"] == name:
                held -= set(change.get("revoked", [])) | set(change.get("lost", []))
                held |= set(change.get("assigned", []))
    return sorted(held)


@check("incremental_rebalance", facts=REBALANCE_FACTS | {"kept"}, assignor="cooperative-sticky")
def incremental_rebalance(lab: LabNow, params: dict) -> dict | None:
    """The group's newest rebalance (begun since the step, now over), in a group using `assignor`,
    moved partitions while a member kept some it already held: nothing revoked from it and nothing
    handed back. An eager assignor (range, roundrobin) revokes every member's partitions and
    assigns them all afresh, so no member keeps any through it."""
    if lab.group().get("assignor") != params["assignor"] or not _settled(lab):
        return None
    rebalance = _newest_rebalance(lab)
    if rebalance is None:
        return None
    changes = {c["consumer"]: c for c in rebalance.get("changes", [])}
    if not any(c.get("assigned") for c in changes.values()):
        return None  # nothing moved
    # The newest rebalance is over: the group's members now are those it left, and one that
    # joined in it reported its assignment there.
    for name, partitions in sorted(_assignment(lab).items()):
        change = changes.get(name, {})
        moved = set(change.get("assigned", [])) | set(change.get("revoked", [])) | set(change.get("lost", []))
        if kept := sorted(set(partitions) - moved):
            return {"consumer": name, "kept": _partitions(kept), **_rebalance_facts(rebalance)}
    return None


def _newest_rebalance(lab: LabNow) -> dict | None:
    """The newest rebalance on the timeline, if it began since the step and is over."""
    newest = next(iter(lab.model.get("rebalances", [])), None)
    if newest is None or not newest.get("ended_at"):
        return None
    return newest if _epoch(newest.get("started_at")) >= lab.armed.get("at", 0) - 0.5 else None


def _settled(lab: LabNow) -> bool:
    """The group is Stable and Kafka's view of each member agrees with what that consumer
    reported (the observer polls the one and the processes report the other)."""
    reported = {c["name"]: sorted(c.get("assigned", [])) for c in lab.consumers()}
    return lab.group().get("state") == "STABLE" and all(
        reported.get(name, partitions) == partitions for name, partitions in _assignment(lab).items()
    )


@check(
    "group_protocol",
    facts={"protocol", "assignor", "members", "assignment", "seconds", "changes", "gained", "trigger"},
    protocol="consumer",
    members=1,
)
def group_protocol(lab: LabNow, params: dict) -> dict | None:
    """The group runs `protocol` (Kafka reports CLASSIC or CONSUMER) with at least `members`
    members, and the rebalance that got it there (begun since the step, now over)."""
    group = lab.group()
    if (group.get("protocol") or "").lower() != params["protocol"] or len(lab.members()) < params["members"]:
        return None
    newest = _newest_rebalance(lab) if _settled(lab) else None
    if newest is None:
        return None
    return {
        "protocol": group["protocol"],
        "assignor": group.get("assignor") or "—",
        "members": len(lab.members()),
        "assignment": _describe(_assignment(lab)),
        **_rebalance_facts(newest),
    }


# --- the outbox ------------------------------------------------------------------------------
#
# The outbox in the model: running counts (`sent`, `duplicates`, `missed`), the missed records
# (`missed_records`, sorted by partition and offset, the first MISSED_LISTED of them) and the
# last few emails (`recent`, NEWEST FIRST, bounded): an email that scrolled out of `recent` is
# only in the counts, so these checks count on the counts and read `recent` for the details.

EMAIL_SLACK_SECONDS = 1.0  # an email's time is its process's clock, the baseline's the runner's


def _emails_since(lab: LabNow) -> list[dict]:
    """Emails in the outbox's recent list sent since the step became current, oldest first."""
    since = lab.armed.get("at", 0) - EMAIL_SLACK_SECONDS
    return [e for e in reversed(lab.outbox().get("recent", [])) if _epoch(e.get("at")) >= since]


def _lane_offsets(lab: LabNow) -> str:
    """Each read partition's position (next offset to read) beside the group's committed offset."""
    parts = []
    for lane in lab.model.get("lanes", []):
        position, committed = lane.get("position"), lane.get("committed")
        if position is None and committed is None:
            continue
        parts.append(
            f"P{lane['partition']}: read up to {'—' if position is None else position}, "
            f"committed {'nothing yet' if committed is None else committed}"
        )
    return "; ".join(parts) or "no partition read yet"


@check("emails_sent", facts={"count", "consumers", "offsets"}, count=5)
def emails_sent(lab: LabNow, params: dict) -> dict | None:
    """At least `count` emails since the step began; `offsets`: each partition's position and
    committed offset at that moment (the commit trails what was read)."""
    since = _emails_since(lab)
    # The baseline is taken at the runner's first look, maybe after some emails of the step:
    # the listed ones sent since the step became current count too.
    sent = max(lab.outbox().get("sent", 0) - lab.armed.get("emails", 0), len(since))
    if sent < params["count"]:
        return None
    names = sorted({e["consumer"] for e in since}) or sorted(c["name"] for c in lab.consumers() if c.get("emailed"))
    return {"count": sent, "consumers": ", ".join(names) or "—", "offsets": _lane_offsets(lab)}


def _commits_after_processing(config: dict) -> bool:
    """The offset of a record is committed only once it is processed: a manual commit after the
    email, or auto-commit of offsets the service stores itself after the email."""
    if config.get("commit_mode") == "after":
        return True
    return config.get("commit_mode") == "auto" and config.get("enable_auto_offset_store") is False


def _commit_label(config: dict) -> str:
    mode = config.get("commit_mode") or ""
    if mode == "auto" and config.get("enable_auto_offset_store") is False:
        return "auto-commit of offsets stored after each email (enable.auto.offset.store=false)"
    return {
        "auto": "auto-commit (enable.auto.commit=true, offsets stored at hand-over)",
        "after": "manual commit after each email",
        "before": "manual commit before processing",
    }.get(mode, mode)


def _mode_matches(config: dict, wanted: str) -> bool:
    if not wanted:
        return True
    if wanted == "after":
        return _commits_after_processing(config)
    return config.get("commit_mode") == wanted and not _commits_after_processing(config)


@check(
    "duplicate_email",
    facts={"order_id", "partition", "offset", "consumers", "commit_mode", "duplicates"},
    commit_mode="",
)
def duplicate_email(lab: LabNow, params: dict) -> dict | None:
    """An order emailed again since the step began, by a consumer committing with `commit_mode`
    if given ("auto": auto-commit storing offsets at hand-over; "after": committing only what was
    processed, by a manual commit after the email or by storing offsets after it; "before")."""
    recent = _emails_since(lab)
    new = max(
        lab.outbox().get("duplicates", 0) - lab.armed.get("duplicates", 0),
        sum(1 for e in recent if e.get("duplicate")),
    )
    if new <= 0:
        return None
    configs = {c["name"]: c.get("config", {}) for c in lab.consumers(live=False)}
    everything = list(reversed(lab.outbox().get("recent", [])))  # oldest first, before the step too
    matching = [
        e for e in recent if e.get("duplicate") and _mode_matches(configs.get(e["consumer"], {}), params["commit_mode"])
    ]

    def senders(email: dict) -> list[str]:
        where = (email["partition"], email["offset"])
        return [e["consumer"] for e in everything if (e["partition"], e["offset"]) == where]

    if matching:
        # The newest whose first email is still listed, else the newest.
        email = next((e for e in reversed(matching) if len(senders(e)) > 1), matching[-1])
        names = senders(email)
        return {
            "order_id": email.get("order_id") or "—",
            "partition": email["partition"],
            "offset": email["offset"],
            "consumers": " then ".join(names)
            if len(names) > 1
            else f"{names[0]} (its first email has scrolled out of the outbox list)",
            "commit_mode": _commit_label(configs.get(email["consumer"], {})),
            "duplicates": new,
        }
    if any(e.get("duplicate") for e in recent):
        return None  # the duplicates listed since the step came from consumers of another mode
    # The duplicates scrolled out of the bounded list before a look: the counts still show them.
    # Credit them when every consumer that can have sent them commits the asked way.
    senders_now = [
        c
        for c in lab.consumers(live=False)
        if c.get("live") or lab.armed.get("consumers", {}).get(c["name"]) != c["status"]
    ]
    if not senders_now or not all(_mode_matches(c.get("config", {}), params["commit_mode"]) for c in senders_now):
        return None
    return {
        "order_id": "(scrolled out of the outbox list)",
        "partition": "—",
        "offset": "—",
        "consumers": ", ".join(sorted(c["name"] for c in senders_now)),
        "commit_mode": _commit_label(senders_now[0].get("config", {})),
        "duplicates": new,
    }


@check("missed_email", facts={"partition", "offset", "key", "missed", "consumers"})
def missed_email(lab: LabNow, params: dict) -> dict | None:
    """An order the group committed past that no consumer emailed (and none is emailing now),
    since the step began: the group will never read it again."""
    outbox = lab.outbox()
    listed = outbox.get("missed_records") or []
    # The list is sorted by partition and offset, old misses first: prefer a record written since
    # the step began (the one the learner just lost), else the last listed.
    ends = lab.armed.get("log_ends", {})
    new = [m for m in listed if m["offset"] >= ends.get(str(m["partition"]), 0)]
    if not listed or (outbox.get("missed", 0) <= lab.armed.get("missed", 0) and not new):
        return None
    missed = new[0] if new else listed[-1]
    gone = lab.newly("killed") + lab.newly("crashed") or lab.newly("stopped")
    return {
        "partition": missed["partition"],
        "offset": missed["offset"],
        "key": missed.get("key") or "no key",
        "missed": outbox["missed"],
        "consumers": ", ".join(sorted(gone)) or "a consumer",
    }


# --- contracts, the registry and poison pills --------------------------------------------------

SCHEMA_SLACK_SECONDS = 1.0  # the registry's clock and the step's arming are both this machine's


def _readers(lab: LabNow) -> dict[str, str]:
    """Each consumer's reader (strict, tolerant, registry), by name; stopped ones included."""
    return {c["name"]: c.get("config", {}).get("reader", "tolerant") for c in lab.consumers(live=False)}


def _written_since(lab: LabNow, partition: int, offset: int) -> bool:
    return offset >= lab.armed.get("log_ends", {}).get(str(partition), 0)


def _order_record(lab: LabNow, partition: int, offset: int) -> dict | None:
    for lane in lab.model.get("lanes", []):
        if lane["partition"] == partition:
            return next((r for r in lane.get("records", []) if r["offset"] == offset), None)
    return None


@check("emails_by_reader", facts={"consumer", "reader", "order_id", "partition", "offset", "count"}, reader="strict")
def emails_by_reader(lab: LabNow, params: dict) -> dict | None:
    """A record written since the step began, emailed by a consumer reading with `reader`."""
    readers = _readers(lab)
    sent = [
        e
        for e in _emails_since(lab)
        if not e.get("missed")
        and readers.get(e["consumer"]) == params["reader"]
        and _written_since(lab, e["partition"], e["offset"])
    ]
    if not sent:
        return None
    email = sent[-1]
    return {
        "consumer": email["consumer"],
        "reader": params["reader"],
        "order_id": email.get("order_id") or "—",
        "partition": email["partition"],
        "offset": email["offset"],
        "count": len(sent),
    }


@check(
    "poison_by_reader",
    facts={"consumer", "reader", "partition", "offset", "reason", "message", "action"},
    reader="strict",
    action="",
)
def poison_by_reader(lab: LabNow, params: dict) -> dict | None:
    """A record written since the step began that a consumer reading with `reader` could not
    process; with `action`, only one its failure policy handled that way (crashed, skipped,
    dead-lettered, retrying)."""
    readers = _readers(lab)
    found = [
        mark
        for mark in lab.model.get("poison", [])
        if readers.get(mark.get("consumer")) == params["reader"]
        and (not params["action"] or mark.get("action") == params["action"])
        and _written_since(lab, mark["partition"], mark["offset"])
    ]
    if not found:
        return None
    mark = found[-1]
    return {
        "consumer": mark["consumer"],
        "reader": params["reader"],
        "partition": mark["partition"],
        "offset": mark["offset"],
        "reason": mark.get("reason") or "—",
        "message": mark.get("message") or "—",
        "action": mark.get("action") or "—",
    }


@check("record_with_schema", facts={"partition", "offset", "schema_id", "key"})
def record_with_schema(lab: LabNow, params: dict) -> dict | None:
    """A record written since the step began in Confluent's wire format (magic byte, schema id)."""
    framed = [r for r in lab.new_records() if r.get("schema_id") is not None]
    if not framed:
        return None
    record = framed[-1]
    return {
        "partition": record["partition"],
        "offset": record["offset"],
        "schema_id": record["schema_id"],
        "key": record.get("key") or "no key",
    }


def _registry_events_since(lab: LabNow, action: str) -> list[dict]:
    since = lab.armed.get("at", 0) - SCHEMA_SLACK_SECONDS
    return [
        e for e in lab.model.get("registry_events", []) if e.get("action") == action and _epoch(e.get("at")) >= since
    ]


@check("schema_refused", facts={"subject", "level", "message"}, levels="")
def schema_refused(lab: LabNow, params: dict) -> dict | None:
    """The registry refused a new version of one of the lab's subjects since the step began,
    under one of `levels` (comma-separated; any level when empty)."""
    wanted = {level.strip().upper() for level in params["levels"].split(",") if level.strip()}
    refused = [e for e in _registry_events_since(lab, "refused") if not wanted or (e.get("level") or "") in wanted]
    if not refused:
        return None
    event = refused[-1]
    return {"subject": event["subject"], "level": event.get("level") or "—", "message": event.get("message") or "—"}


@check("schema_evolved", facts={"subject", "version", "schema_id", "partition", "offset", "consumer", "reader"})
def schema_evolved(lab: LabNow, params: dict) -> dict | None:
    """A new version registered since the step began, and a record written with it emailed."""
    registered = {e["schema_id"]: e for e in _registry_events_since(lab, "registered") if (e.get("version") or 0) >= 2}
    if not registered:
        return None
    readers = _readers(lab)
    for email in reversed(_emails_since(lab)):
        if email.get("missed"):
            continue
        record = _order_record(lab, email["partition"], email["offset"])
        event = registered.get(record.get("schema_id")) if record else None
        if event is not None:
            return {
                "subject": event["subject"],
                "version": event["version"],
                "schema_id": event["schema_id"],
                "partition": email["partition"],
                "offset": email["offset"],
                "consumer": email["consumer"],
                "reader": readers.get(email["consumer"], "—"),
            }
    return None


@check("partition_blocked", facts={"partition", "offset", "consumer", "crashes", "lag", "others"}, crashes=2)
def partition_blocked(lab: LabNow, params: dict) -> dict | None:
    """A crash-policy consumer crashed at least `crashes` times on one record: its partition is
    blocked there. `others`: how the group's other partitions fared meanwhile."""
    crashing = [c for c in lab.consumers(live=False) if c.get("failures", {}).get("crashes", 0) >= params["crashes"]]
    lanes = {lane["partition"]: lane for lane in lab.model.get("lanes", [])}
    for consumer in crashing:
        where = consumer["failures"].get("crashed_on")
        lane = lanes.get(where[0]) if where else None
        if lane is None or lane.get("blocked_at") is None:
            continue
        others = [
            f"P{p}: committed {other.get('committed') if other.get('committed') is not None else 'nothing yet'}"
            for p, other in sorted(lanes.items())
            if p != where[0]
        ]
        return {
            "partition": where[0],
            "offset": lane["blocked_at"],
            "consumer": consumer["name"],
            "crashes": consumer["failures"]["crashes"],
            "lag": _lag(lane),
            "others": "; ".join(others) or "no other partition",
        }
    return None


def _lag(lane: dict) -> str:
    end, committed = lane.get("log_end"), lane.get("committed")
    return "—" if end is None or committed is None else str(max(0, end - committed))


def _dead_letters(lab: LabNow) -> list[dict]:
    """DLQ records written since the step began (by their timestamp: a dead letter is written
    when it is set aside, often long after the record it carries), oldest first."""
    since_ms = (lab.armed.get("at", 0) - SCHEMA_SLACK_SECONDS) * 1000
    letters = [
        record
        for view in lab.model.get("views", [])
        if view.get("view") == "dlq"
        for lane in view.get("lanes", [])
        for record in lane.get("records", [])
        if record.get("dead_letter") and (record.get("timestamp_ms") or 0) >= since_ms
    ]
    return sorted(letters, key=lambda r: (r.get("timestamp_ms") or 0, r["offset"]))


@check("dead_lettered", facts={"partition", "offset", "reason", "consumer", "dlq_offset", "committed"})
def dead_lettered(lab: LabNow, params: dict) -> dict | None:
    """A record set aside in the dead-letter topic since the step began, with its partition no
    longer blocked: the group went past it."""
    lanes = {lane["partition"]: lane for lane in lab.model.get("lanes", [])}
    for record in reversed(_dead_letters(lab)):
        letter = record["dead_letter"]
        lane = lanes.get(letter.get("partition"))
        if lane is None or lane.get("blocked_at") is not None or letter.get("offset") is None:
            continue
        return {
            "partition": letter["partition"],
            "offset": letter["offset"],
            "reason": letter.get("reason") or "—",
            "consumer": letter.get("consumer") or "—",
            "dlq_offset": record["offset"],
            "committed": lane.get("committed") if lane.get("committed") is not None else "—",
        }
    return None


@check("replayed_and_emailed", facts={"order_id", "partition", "offset", "consumer", "reader"})
def replayed_and_emailed(lab: LabNow, params: dict) -> dict | None:
    """A record that "Replay DLQ" wrote back since the step began, emailed."""
    replayed = {(r["partition"], r["offset"]) for r in lab.new_records() if r.get("replayed")}
    readers = _readers(lab)
    for email in reversed(_emails_since(lab)):
        if not email.get("missed") and (email["partition"], email["offset"]) in replayed:
            return {
                "order_id": email.get("order_id") or "—",
                "partition": email["partition"],
                "offset": email["offset"],
                "consumer": email["consumer"],
                "reader": readers.get(email["consumer"], "—"),
            }
    return None


# --- transactions ----------------------------------------------------------------------------
#
# Each orders lane in the model carries what the observer judged from a read_committed and a
# read_uncommitted reader of the partition (kafkalab.runner.txn_marks): `last_stable` (the LSO),
# `txn.open` and `txn.aborted` (offsets of its records shown), and `markers` (COMMIT and ABORT
# control records, by offset). Whoever wrote the transaction, Kafka shows it the same way.


def _new_since(lab: LabNow, lane: dict, offset: int) -> bool:
    return offset >= lab.armed.get("log_ends", {}).get(str(lane["partition"]), 0)


def _isolation(consumer: dict) -> str:
    return (consumer.get("config") or {}).get("isolation_level") or "read_committed"


@check("transaction_open", facts={"partition", "open", "last_stable", "log_end"})
def transaction_open(lab: LabNow, params: dict) -> dict | None:
    """Records written since the step began in a transaction not decided yet: past the LSO."""
    for lane in lab.model.get("lanes", []):
        opened = [o for o in (lane.get("txn") or {}).get("open", []) if _new_since(lab, lane, o)]
        if opened and lane.get("last_stable") is not None:
            return {
                "partition": lane["partition"],
                "open": _span(opened),
                "last_stable": lane["last_stable"],
                "log_end": lane.get("log_end"),
            }
    return None


@check(
    "transaction_holds_back_reader",
    facts={"partition", "open", "last_stable", "log_end", "consumer", "position", "lag"},
)
def transaction_holds_back_reader(lab: LabNow, params: dict) -> dict | None:
    """A transaction still open holds its records past the LSO, and a running read_committed
    consumer of that partition waits there: its position is the LSO (or, when it has been handed
    nothing of the partition yet, unknown: nothing before the LSO is left for it)."""
    for lane in lab.model.get("lanes", []):
        opened = (lane.get("txn") or {}).get("open", [])
        lso, log_end = lane.get("last_stable"), lane.get("log_end")
        if not opened or lso is None or log_end is None or lso >= log_end:
            continue
        for consumer in lab.consumers():
            position = (consumer.get("positions") or {}).get(str(lane["partition"]))
            reads_it = lane["partition"] in (consumer.get("assigned") or [])
            waits = position == lso or (position is None and reads_it)
            if _isolation(consumer) == "read_committed" and reads_it and waits:
                return {
                    "partition": lane["partition"],
                    "open": _span(opened),
                    "last_stable": lso,
                    "log_end": log_end,
                    "consumer": consumer["name"],
                    "position": lso,
                    "lag": log_end - lso,
                }
    return None


def _markers_since(lab: LabNow, control: str) -> list[tuple[dict, dict]]:
    return [
        (lane, marker)
        for lane in lab.model.get("lanes", [])
        for marker in lane.get("markers", [])
        if marker["control"] == control and _new_since(lab, lane, marker["offset"])
    ]


@check(
    "aborted_order_emailed",
    facts={"consumer", "order_id", "partition", "offset", "marker", "aborted", "committed_readers"},
)
def aborted_order_emailed(lab: LabNow, params: dict) -> dict | None:
    """An order written since the step began whose transaction was aborted (Kafka holds an ABORT
    marker after it) was emailed anyway, by a read_uncommitted consumer."""
    readers = {c["name"]: _isolation(c) for c in lab.model.get("consumers", [])}
    for email in reversed(_emails_since(lab)):
        if not email.get("aborted") or readers.get(email["consumer"]) != "read_uncommitted":
            continue
        lane = next((lane for lane in lab.model.get("lanes", []) if lane["partition"] == email["partition"]), None)
        if lane is None or not _new_since(lab, lane, email["offset"]):
            continue
        markers = [
            m["offset"] for m in lane.get("markers", []) if m["control"] == "abort" and m["offset"] > email["offset"]
        ]
        if not markers:
            continue
        committed_readers = sorted(name for name, level in readers.items() if level == "read_committed")
        return {
            "consumer": email["consumer"],
            "order_id": (email.get("order_id") or "—")[:8],
            "partition": email["partition"],
            "offset": email["offset"],
            "marker": markers[0],
            "aborted": _span([o for o in (lane.get("txn") or {}).get("aborted", []) if _new_since(lab, lane, o)])
            if (lane.get("txn") or {}).get("aborted")
            else email["offset"],
            "committed_readers": ", ".join(committed_readers) or "none running",
        }
    return None


@check("transaction_committed", facts={"partition", "marker", "records", "consumer", "order_id"})
def transaction_committed(lab: LabNow, params: dict) -> dict | None:
    """A transaction committed since the step began (a COMMIT marker after new records), and a
    read_committed consumer emailed one of its orders."""
    readers = {c["name"]: _isolation(c) for c in lab.model.get("consumers", [])}
    for lane, marker in reversed(_markers_since(lab, "commit")):
        before = [
            r["offset"]
            for r in lane.get("records", [])
            if _new_since(lab, lane, r["offset"]) and r["offset"] < marker["offset"]
        ]
        emailed = [
            e
            for e in _emails_since(lab)
            if e["partition"] == lane["partition"]
            and e["offset"] in before
            and readers.get(e["consumer"]) == "read_committed"
            and not e.get("missed")
        ]
        if before and emailed:
            return {
                "partition": lane["partition"],
                "marker": marker["offset"],
                "records": _span(before),
                "consumer": emailed[-1]["consumer"],
                "order_id": (emailed[-1].get("order_id") or "—")[:8],
            }
    return None


# --- exactly-once read-process-write (lesson 8) ---------------------------------------------------
# BillingService's counts in the model come from a read_committed reader of the invoices topic
# (`billing`: invoices, duplicates, orders_invoiced and the instances' own reports); the invoices
# lanes (`views`, view "invoices") carry the transaction marks the observer judged from Kafka, as
# the orders lanes do.


def _billing(lab: LabNow) -> dict:
    return lab.model.get("billing") or {}


def _new_invoice(lab: LabNow, lane: dict, offset: int) -> bool:
    return offset >= lab.armed.get("invoice_log_ends", {}).get(str(lane["partition"]), 0)


@check("invoices_issued", facts={"count", "instances", "orders_invoiced", "topic"}, count=5)
def invoices_issued(lab: LabNow, params: dict) -> dict | None:
    """At least `count` invoices written since the step began and committed: below their
    partition's last stable offset and not aborted, as the invoices lanes show them."""
    issued = 0
    for lane in _view_lanes(lab.model, "invoices"):
        last_stable = lane.get("last_stable")
        if last_stable is None:  # not known yet: none of its invoices count for now
            continue
        issued += sum(
            1
            for record in lane.get("records", [])
            if _new_invoice(lab, lane, record["offset"])
            and record["offset"] < last_stable
            and record["offset"] not in _marked(lane)
        )
    if issued < params["count"]:
        return None
    billing = _billing(lab)
    return {
        "count": issued,
        "instances": ", ".join(b["name"] for b in billing.get("instances", [])) or "—",
        "orders_invoiced": billing.get("orders_invoiced", 0),
        "topic": billing.get("topic") or "the invoices topic",
    }


@check("invoiced_twice", facts={"duplicates", "instances", "batch_size"})
def invoiced_twice(lab: LabNow, params: dict) -> dict | None:
    """Orders invoiced more than once since the step began, as the invoices topic holds them
    committed, with an at-least-once BillingService in the lab."""
    billing = _billing(lab)
    grown = billing.get("duplicates", 0) - lab.armed.get("billing", {}).get("duplicates", 0)
    careless = [b for b in billing.get("instances", []) if b.get("mode") == "at-least-once"]
    if grown <= 0 or not careless:
        return None
    return {
        "duplicates": grown,
        "instances": ", ".join(b["name"] for b in careless),
        "batch_size": (careless[-1].get("config") or {}).get("batch_size", "—"),
    }


@check("exactly_once_after_abort", facts={"instance", "partition", "aborted", "marker", "order_id", "redone"})
def exactly_once_after_abort(lab: LabNow, params: dict) -> dict | None:
    """Since the step began, an exactly-once BillingService's transaction was aborted (its
    invoices are in the log, marked aborted, an ABORT marker after them), and every order of those
    aborted invoices was then invoiced again, once, in a transaction that committed. Judged on the
    invoices lanes (invoices are keyed by orderId: an order's invoices share a partition), so what
    another pipeline did to other orders meanwhile does not count."""
    careful = [b for b in _billing(lab).get("instances", []) if b.get("mode") == "exactly-once"]
    if not careful:
        return None
    for lane in _view_lanes(lab.model, "invoices"):
        new_aborted = {o for o in (lane.get("txn") or {}).get("aborted", []) if _new_invoice(lab, lane, o)}
        aborted = [r for r in lane.get("records", []) if r["offset"] in new_aborted and r.get("key")]
        markers = [m["offset"] for m in lane.get("markers", []) if m["control"] == "abort"]
        marker = next((m for m in markers if aborted and m > aborted[-1]["offset"]), None)
        if marker is None:
            continue
        committed = [r for r in lane.get("records", []) if r["offset"] not in _marked(lane) and r.get("key")]
        again = {r["key"]: [c for c in committed if c["key"] == r["key"]] for r in aborted}
        if all(len(invoices) == 1 and invoices[0]["offset"] > marker for invoices in again.values()):
            return {
                "instance": ", ".join(b["name"] for b in careful),
                "partition": lane["partition"],
                "aborted": _span([r["offset"] for r in aborted]),
                "marker": marker,
                "order_id": aborted[0]["key"][:8],
                "redone": _span([invoices[0]["offset"] for invoices in again.values()]),
            }
    return None


def _marked(lane: dict) -> set[int]:
    """Offsets of the lane's records in a transaction that is open or was aborted."""
    txn = lane.get("txn") or {}
    return {*txn.get("open", []), *txn.get("aborted", [])}


@check("zombie_fenced", facts={"zombie", "twin", "transactional_id"})
def zombie_fenced(lab: LabNow, params: dict) -> dict | None:
    """A BillingService instance was fenced since the step began: Kafka refused its transaction
    because a newer instance registered the same transactional.id."""
    instances = _billing(lab).get("instances", [])
    before = set(lab.armed.get("billing", {}).get("fenced", []))
    for zombie in instances:
        if not zombie.get("fenced") or zombie["name"] in before:
            continue
        twins = [
            b["name"]
            for b in instances
            if b is not zombie and b.get("transactional_id") == zombie.get("transactional_id") and not b.get("fenced")
        ]
        return {
            "zombie": zombie["name"],
            "twin": ", ".join(twins) or "a newer instance",
            "transactional_id": zombie.get("transactional_id") or "—",
        }
    return None
