"""What the lab runner knows about one lab right now, from its consumer processes' reports.

The supervisor (on the runner's event loop) writes it; the observer thread reads it into the
lab's model (kafkalab.runner.model). Every access goes through `lock`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kafkalab.kafka.billing_config import BillingConfig
from kafkalab.kafka.consumer_config import LIVE_STATUSES, ConsumerConfig, ConsumerStatus, GroupProtocol
from kafkalab.labs import facts

# Colours tie a consumer to its lanes; a lab has at most 8 consumers at once. Each carries white
# text (its name on the lanes, its partitions on its card) at 4.5:1 or more, and the name is
# always written beside the colour, so colour is never the only sign of who reads what.
PALETTE = ["#2b59c3", "#b03a0c", "#237a35", "#9c36b5", "#0b7285", "#8a5a00", "#5f3dc4", "#a61e4d"]

# A rebalance is over once no consumer has reported a change for this long (and for longer than
# a live member's heartbeat interval, since that is when it learns that the group rebalances).
REBALANCE_QUIET_SECONDS = 1.5
HEARTBEAT_MARGIN_SECONDS = 0.5
# Poison records remembered for the lanes (the newest per record), and dead-lettered records
# remembered so that they are not counted as missed emails: both bounded, oldest dropped first.
POISON_KEPT = 500
SET_ASIDE_KEPT = 10_000


@dataclass
class ConsumerLive:
    name: str
    config: ConsumerConfig
    status: ConsumerStatus = ConsumerStatus.STARTING
    pid: int | None = None
    assigned: list[int] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)  # next offset it will read
    in_flight: set[tuple[int, int]] = field(default_factory=set)  # received, not yet emailed
    last_error: str = ""
    emailed: int = 0
    colour: str = PALETTE[0]
    # Poison records met, by what this consumer's failure policy did with them.
    skipped: int = 0
    dead_lettered: int = 0
    retries: int = 0
    # Crashes on poison records since the learner last started it, and how many in a row without
    # getting past the record it crashed on (that sets the wait before the next restart).
    crashes: int = 0
    crash_streak: int = 0
    crashed_on: tuple[int, int] | None = None
    restart_at: float | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    def failure_data(self, now: float | None = None) -> dict:
        """What its failure policy did so far, for its card and state.json."""
        now = time.time() if now is None else now
        restart_in = None if self.restart_at is None else max(0, math.ceil(self.restart_at - now))
        return {
            "skipped": self.skipped,
            "dead_lettered": self.dead_lettered,
            "retries": self.retries,
            "crashes": self.crashes,
            "crash_looping": self.crash_streak >= CRASH_LOOP_STREAK,
            "crashed_on": list(self.crashed_on) if self.crashed_on else None,
            "restart_in_s": restart_in,
        }

    @property
    def partitions_attr(self) -> str:
        return ",".join(str(p) for p in self.assigned)


@dataclass
class RebalanceLive:
    trigger: str
    started_at: float
    last_change_at: float
    changes: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    ended_at: float | None = None

    def note(self, consumer: str, kind: str, partitions: list[int], at: float) -> None:
        entry = self.changes.setdefault(consumer, {"revoked": [], "assigned": [], "lost": []})
        entry[kind] = sorted(set(entry[kind]) | set(partitions))
        self.last_change_at = at

    @property
    def duration_ms(self) -> int | None:
        return facts.duration_ms(started_at=self.started_at, ended_at=self.ended_at)

    def as_changes(self) -> list[dict]:
        return [{"consumer": name, **lists} for name, lists in sorted(self.changes.items())]

    @classmethod
    def from_saved(cls, *, trigger: str, started_at: datetime, ended_at: datetime | None, changes: list[dict]):
        """A finished rebalance as an earlier run saved it."""
        rebalance = cls(trigger=trigger, started_at=started_at.timestamp(), last_change_at=started_at.timestamp())
        rebalance.ended_at = ended_at.timestamp() if ended_at else rebalance.started_at
        rebalance.changes = {
            c["consumer"]: {kind: list(c.get(kind, [])) for kind in ("revoked", "assigned", "lost")} for c in changes
        }
        return rebalance


# Crashes in a row on one record that the card calls a crash loop.
CRASH_LOOP_STREAK = 2


@dataclass
class Email:
    consumer: str
    partition: int
    offset: int
    order_id: str | None
    event_type: str | None
    at: float
    duplicate: bool = False
    # A record the consumer skipped (failure policy "skip"): no email went out, and `reason` says why.
    missed: bool = False
    reason: str | None = None


class PoisonAction(StrEnum):
    CRASHED = "crashed"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead-lettered"
    RETRYING = "retrying"


@dataclass(frozen=True)
class Poison:
    """A record a consumer's reader could not process, and what its failure policy did."""

    consumer: str
    partition: int
    offset: int
    reason: str  # a readers.Failure value, or why it waits (registry unreachable, dead-letter write failed)
    message: str
    action: str  # a PoisonAction value
    at: float


REGISTRY_EVENTS_KEPT = 20
REGISTRY_MESSAGE_CHARS = 600


@dataclass
class BillingLive:
    """A BillingService instance, from its reports (kafkalab.runner.billing)."""

    name: str
    config: BillingConfig
    transactional_id: str = ""
    twin_of: str = ""
    status: ConsumerStatus = ConsumerStatus.STARTING
    pid: int | None = None
    assigned: list[int] = field(default_factory=list)
    in_batch: int = 0  # records of the batch under way, received and not yet committed
    invoiced: int = 0  # invoices it produced (committed or not)
    skipped: int = 0
    batches: int = 0  # batches committed
    fenced: bool = False
    last_error: str = ""

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    def as_data(self) -> dict:
        """For the model, state.json and the card."""
        return {
            "name": self.name,
            "mode": str(self.config.mode),
            "config": self.config.as_dict(),
            "transactional_id": self.transactional_id if self.config.transactional else None,
            "twin_of": self.twin_of or None,
            "status": str(self.status),
            "live": self.live,
            "pid": self.pid,
            "assigned": list(self.assigned),
            "in_batch": self.in_batch,
            "invoiced": self.invoiced,
            "skipped": self.skipped,
            "batches": self.batches,
            "fenced": self.fenced,
            "last_error": self.last_error,
        }


class LabLive:
    def __init__(self, lab_id: int) -> None:
        self.lab_id = lab_id
        self.lock = threading.RLock()
        self.consumers: dict[str, ConsumerLive] = {}
        self.rebalances: deque[RebalanceLive] = deque(maxlen=12)
        self.open_rebalance: RebalanceLive | None = None
        self.unsaved_rebalances: list[RebalanceLive] = []  # closed, not yet in the database
        self._pending_trigger: tuple[str, float, float | None] | None = None
        self.recent_emails: deque[Email] = deque(maxlen=25)
        self.email_counts: Counter[tuple[int, int]] = Counter()
        self.emails_sent = 0
        self.duplicates_sent = 0  # kept as emails come, so a busy lab never recounts them all
        self.unsaved_emails: list[Email] = []
        # Poison records, newest last (at most POISON_KEPT), and partitions a crash-policy
        # consumer is stuck on: partition → the offset it crashes on.
        self.poison: dict[tuple[int, int], Poison] = {}
        self.blocked: dict[int, int] = {}
        self._blocked_by: dict[int, str] = {}
        # Dead-lettered records: not emailed, yet not lost either (a replay brings them back).
        self._set_aside: dict[tuple[int, int], None] = {}
        # What the registry said of the lab's subjects lately (RegistryChanged), newest last.
        self.registry_events: deque[dict] = deque(maxlen=REGISTRY_EVENTS_KEPT)
        # OrderService's open transaction as plain data (kafkalab.runner.transactions), or None;
        # and how the last one ended ({"outcome", "message", "records", "at"}), or None.
        self.transaction: dict | None = None
        self.transaction_ended: dict | None = None
        # BillingService instances, by name (kafkalab.runner.billing writes them).
        self.billing: dict[str, BillingLive] = {}

    # OrderService's transaction --------------------------------------------------------------

    def note_transaction(self, *, current: dict | None, ended: dict | None) -> None:
        with self.lock:
            self.transaction, self.transaction_ended = current, ended

    # The registry -----------------------------------------------------------------------------

    def note_registry_event(self, *, subject: str, action: str, at: float, **fields: object) -> None:
        event = {"subject": subject, "action": action, "at": at, **fields}
        event["message"] = str(event.get("message") or "")[:REGISTRY_MESSAGE_CHARS]
        with self.lock:
            self.registry_events.append(event)

    # BillingService ---------------------------------------------------------------------------

    def billing_instance(self, name: str, config: BillingConfig | None = None) -> BillingLive:
        with self.lock:
            live = self.billing.get(name)
            if live is None:
                live = self.billing[name] = BillingLive(name=name, config=config or BillingConfig())
            elif config is not None:
                live.config = config
            return live

    def billing_data(self) -> list[dict]:
        with self.lock:
            return [live.as_data() for live in self.billing.values()]

    # Consumers --------------------------------------------------------------------------------

    def consumer(self, name: str, config: ConsumerConfig | dict | None = None) -> ConsumerLive:
        if isinstance(config, dict):
            config = ConsumerConfig.from_dict(config)
        with self.lock:
            live = self.consumers.get(name)
            if live is None:
                colour = PALETTE[len(self.consumers) % len(PALETTE)]
                live = self.consumers[name] = ConsumerLive(name=name, config=config or ConsumerConfig(), colour=colour)
            elif config is not None:
                live.config = config
            return live

    def owners(self) -> dict[int, ConsumerLive]:
        """Which live consumer holds each partition, by its own last report."""
        with self.lock:
            return {p: c for c in self.consumers.values() if c.live for p in c.assigned}

    def positions(self) -> dict[int, list[tuple[ConsumerLive, int]]]:
        """Per partition, each live consumer holding it and the next offset it will read there,
        by its own reports (one consumer, or two for a moment while a rebalance moves it)."""
        with self.lock:
            found: dict[int, list[tuple[ConsumerLive, int]]] = {}
            for consumer in sorted(self.consumers.values(), key=lambda c: c.name):
                if not consumer.live:
                    continue
                for partition in consumer.assigned:
                    if (position := consumer.positions.get(partition)) is not None:
                        found.setdefault(partition, []).append((consumer, position))
            return found

    # Rebalances -------------------------------------------------------------------------------

    def expect_rebalance(self, trigger: str, *, at: float, starts_now: bool = False) -> None:
        """The runner did something that will rebalance the group (add, stop, kill a consumer).
        A kill starts the clock at once: the group only notices after the session timeout."""
        with self.lock:
            # A new cause is a new rebalance, even if the last one has not gone quiet yet.
            if self.open_rebalance is not None:
                self._close_open_rebalance()
            self._pending_trigger = (trigger, at, at if starts_now else None)

    def note_assignment_change(self, consumer: str, kind: str, partitions: list[int], at: float) -> RebalanceLive:
        with self.lock:
            if self.open_rebalance is None:
                trigger, started = "the group changed", at
                if self._pending_trigger and at - self._pending_trigger[1] < 120:
                    trigger, _, clock_start = self._pending_trigger
                    started = clock_start or at
                self._pending_trigger = None
                self.open_rebalance = RebalanceLive(trigger=trigger, started_at=started, last_change_at=at)
                self.rebalances.appendleft(self.open_rebalance)
            self.open_rebalance.note(consumer, kind, partitions, at)
            return self.open_rebalance

    def close_quiet_rebalance(self, now: float | None = None) -> None:
        """Close the open rebalance once it has been quiet for a moment."""
        now = time.time() if now is None else now
        with self.lock:
            current = self.open_rebalance
            if current is not None and now - current.last_change_at >= self._quiet_seconds():
                self._close_open_rebalance()

    def _quiet_seconds(self) -> float:
        heartbeats = [
            c.config.heartbeat_interval_ms / 1000 + HEARTBEAT_MARGIN_SECONDS
            for c in self.consumers.values()
            if c.live and c.config.group_protocol == GroupProtocol.CLASSIC
        ]
        return max([REBALANCE_QUIET_SECONDS, *heartbeats])

    def _close_open_rebalance(self) -> None:
        current = self.open_rebalance
        current.ended_at = current.last_change_at
        self.open_rebalance = None
        self.unsaved_rebalances.append(current)

    def load_rebalances(self, saved: list[RebalanceLive]) -> None:
        """The timeline an earlier run saved, newest first, so it survives a restart."""
        with self.lock:
            self.rebalances.extend(saved)

    def take_closed_rebalances(self) -> list[RebalanceLive]:
        with self.lock:
            closed, self.unsaved_rebalances = self.unsaved_rebalances, []
            return closed

    # Outbox -----------------------------------------------------------------------------------

    def note_email(self, email: Email) -> None:
        with self.lock:
            if email.missed:
                # Counted as missed by the observer once the group commits past it (facts.missed).
                self.recent_emails.appendleft(email)
                self.unsaved_emails.append(email)
                return
            key = (email.partition, email.offset)
            self.email_counts[key] += 1
            email.duplicate = facts.is_duplicate(self.email_counts[key])
            self.emails_sent += 1
            self.duplicates_sent += email.duplicate
            self.recent_emails.appendleft(email)
            self.unsaved_emails.append(email)

    def take_unsaved_emails(self) -> list[Email]:
        with self.lock:
            emails, self.unsaved_emails = self.unsaved_emails, []
            return emails

    def load_emails(self, keys: list[tuple[int, int]]) -> None:
        """Seed the counts from the database, so duplicates are judged across runner restarts."""
        with self.lock:
            self.email_counts = Counter(keys)
            self.emails_sent = len(keys)
            self.duplicates_sent = facts.duplicates(self.email_counts)

    @property
    def duplicates(self) -> int:
        with self.lock:
            return self.duplicates_sent

    def in_flight(self) -> set[tuple[int, int]]:
        """Records nobody emailed that are not missed either: being processed by a live consumer,
        or set aside on the dead-letter topic."""
        with self.lock:
            return set().union(self._set_aside, *(c.in_flight for c in self.consumers.values() if c.live))

    # Poison records ---------------------------------------------------------------------------

    def note_poison(self, poison: Poison) -> None:
        """A consumer met a poison record; a crash blocks its partition until someone gets past it."""
        key = (poison.partition, poison.offset)
        with self.lock:
            self.poison.pop(key, None)  # the newest report of a record goes last
            self.poison[key] = poison
            while len(self.poison) > POISON_KEPT:
                del self.poison[next(iter(self.poison))]
            if poison.action == PoisonAction.CRASHED:
                self.blocked[poison.partition] = poison.offset
                self._blocked_by[poison.partition] = poison.consumer
            elif poison.action in (PoisonAction.SKIPPED, PoisonAction.DEAD_LETTERED):
                self.note_passed(poison.consumer, poison.partition, poison.offset)
            if poison.action == PoisonAction.DEAD_LETTERED:
                self._set_aside[key] = None
                while len(self._set_aside) > SET_ASIDE_KEPT:
                    del self._set_aside[next(iter(self._set_aside))]

    def note_received(self, consumer: str, partition: int, offset: int) -> None:
        """A consumer read the record at `offset`: it is past every earlier one."""
        with self.lock:
            if offset > self.blocked.get(partition, offset):
                self._unblock(partition)
            self._got_past(consumer, partition, offset - 1)

    def note_passed(self, consumer: str, partition: int, offset: int) -> None:
        """A consumer finished with the record at `offset` (emailed, skipped or set it aside)."""
        with self.lock:
            if self.blocked.get(partition) == offset:
                self._unblock(partition)
            self._got_past(consumer, partition, offset)

    def _got_past(self, consumer: str, partition: int, offset: int) -> None:
        # Past the record it last crashed on: no longer a crash loop, so the next crash restarts soon.
        live = self.consumers.get(consumer)
        if live is not None and live.crashed_on is not None:
            crashed_partition, crashed_offset = live.crashed_on
            if partition == crashed_partition and offset >= crashed_offset:
                live.crash_streak, live.crashed_on = 0, None

    def unblock_consumer(self, consumer: str) -> None:
        """The consumer was stopped, killed or removed: it blocks nothing any more."""
        with self.lock:
            for partition in [p for p, name in self._blocked_by.items() if name == consumer]:
                self._unblock(partition)

    def _unblock(self, partition: int) -> None:
        self.blocked.pop(partition, None)
        self._blocked_by.pop(partition, None)

    def reset(self) -> None:
        with self.lock:
            self.rebalances.clear()
            self.open_rebalance = None
            self.unsaved_rebalances = []
            self.recent_emails.clear()
            self.email_counts.clear()
            self.emails_sent = 0
            self.duplicates_sent = 0
            self.unsaved_emails = []
            self.poison.clear()
            self.blocked.clear()
            self._blocked_by.clear()
            self._set_aside.clear()
            self.consumers.clear()  # the reset removed them (after stopping their processes)
            self.billing.clear()
            self.transaction = None  # the reset aborted it (kafkalab.runner.transactions)
            self.transaction_ended = None
