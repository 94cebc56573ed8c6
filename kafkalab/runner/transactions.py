"""The lab's transactional OrderService, held by the lab runner.

The producer (transactional.id lab-<id>.order-service) lives here and nowhere else: a classroom
runs several web processes, and a second init_transactions() for the same id would fence the
first. Web code reaches it with the Txn* commands of kafkalab.runner.protocol.

Its calls block while they wait for the transaction coordinator, so they run in a thread of the
lab's own, and a lock keeps the lab's commands in order: one lab's slow commit holds up no other.

What the runner knows is written at each change, before it answers: into the live model
(LabLive.transaction, for pushes and state.json) and onto the Lab row (for pages rendered over
HTTP, and for web processes routing orders into the transaction), and the orders written in the
transaction are settled (kafkalab.labs.services.transactions).

The broker aborts a transaction by itself once transaction.timeout.ms has passed since its first
record (at its next cleanup check), and when another producer with the same transactional.id
fences this one. Neither tells the producer. So while a transaction holds records the runner asks
Kafka every second whether it still holds back the last stable offset of the partitions it wrote
to; once it does not (or, when Kafka can't be asked, once the deadline and a grace have passed),
the producer is let go and the page says what happened.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from channels.db import database_sync_to_async

from kafkalab.kafka.config import client_config
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable, ProducerFenced, TransactionAbortable
from kafkalab.kafka.producer import Delivered, OutgoingRecord
from kafkalab.kafka.transactions import TransactionalProducer, transaction_ended
from kafkalab.labs.models import Lab
from kafkalab.labs.services.transactions import transaction_orders_settle, transaction_state_save
from kafkalab.runner.live import LabLive
from kafkalab.runner.protocol import txn_record_parts

log = logging.getLogger(__name__)

# The broker looks for timed-out transactions every second in the lab clusters
# (transaction.abort.timed.out.transaction.cleanup.interval.ms): past the deadline by this much,
# it has aborted it.
GRACE_SECONDS = 1.5
CHECK_SECONDS = 1.0  # how often Kafka is asked whether an open transaction still holds its partitions
# Past the deadline by this much the producer is let go even if Kafka still shows the transaction
# open (a cluster that checks for timed-out transactions less often: 10 s by default).
LET_GO_SECONDS = 15.0


class Outcome:
    COMMITTED = "committed"
    ABORTED = "aborted"
    TIMED_OUT = "timed_out"  # the broker aborted it after transaction.timeout.ms
    FENCED = "fenced"  # another producer with the same transactional.id took over
    FAILED = "failed"  # Kafka refused or did not answer; the transaction was let go


# Worth repeating when someone then asks for a transaction that is no longer open.
UNASKED = {Outcome.TIMED_OUT, Outcome.FENCED, Outcome.FAILED}


class TransactionRefused(Exception):
    """The command was refused or failed; the message is for the learner, and the state is clean."""


def iso(at: float) -> str:
    # Milliseconds: browsers' Date.parse reads no finer.
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")


def clock(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M:%S UTC")


def records_text(count: int) -> str:
    return f"{count} record{'' if count == 1 else 's'}"


@dataclass
class OpenTransaction:
    key: str
    transactional_id: str
    timeout_ms: int
    began_at: float
    # The broker's clock starts when the transaction first writes to a partition, not at begin
    # (begin_transaction is local to the producer): taken just before the first records were sent.
    first_record_at: float | None = None
    records: int = 0
    first_offsets: dict[int, int] = field(default_factory=dict)  # partition → its first offset in it

    @property
    def deadline(self) -> float | None:
        return None if self.first_record_at is None else self.first_record_at + self.timeout_ms / 1000

    def note_written(self, delivered: list[Delivered], *, sent_at: float) -> None:
        if self.first_record_at is None:
            self.first_record_at = sent_at
        self.records += len(delivered)
        for record in delivered:
            self.first_offsets[record.partition] = min(
                self.first_offsets.get(record.partition, record.offset), record.offset
            )

    def data(self) -> dict:
        """As the live model, state.json and the Lab row have it."""
        return {
            "key": self.key,
            "transactional_id": self.transactional_id,
            "began_at": iso(self.began_at),
            "timeout_ms": self.timeout_ms,
            "deadline": None if self.deadline is None else iso(self.deadline),
            "records": self.records,
            "partitions": sorted(self.first_offsets),
        }


class LabTransaction:
    """One lab's transactional producer and its open transaction (at most one)."""

    def __init__(self, lab_id: int, *, live: LabLive, on_change: Callable[[], None]) -> None:
        lab = Lab(pk=lab_id)
        self.lab_id = lab_id
        self.transactional_id = lab.transactional_id
        self.topic = lab.orders_topic
        self.live = live
        self.on_change = on_change
        self.open: OpenTransaction | None = None
        self.ended: dict | None = None  # how the last one ended, until the next begins
        self._producer: TransactionalProducer | None = None
        self._config: dict[str, object] | None = None
        self._timeout_ms = 0
        self._lock = asyncio.Lock()
        self._thread: ThreadPoolExecutor | None = None
        self._watch: asyncio.Task | None = None

    # Commands ---------------------------------------------------------------------------------

    async def begin(self, *, timeout_ms: int) -> dict:
        async with self._lock:
            if self.open is not None:
                raise TransactionRefused(
                    f"A transaction is already open (since {clock(self.open.began_at)}, "
                    f"{records_text(self.open.records)}): commit it, abort it or leave it open. One at a time."
                )
            if self._producer is not None and self._producer.timeout_ms != timeout_ms:
                await self._let_go()  # transaction.timeout.ms is the producer's: a new one
            self._timeout_ms = timeout_ms
            if self._producer is None:
                self._config = client_config()
                self._producer = await self._run(
                    TransactionalProducer, self._config, transactional_id=self.transactional_id, timeout_ms=timeout_ms
                )
            try:
                await self._begin_fencing_any_other()
            except (KafkaUnavailable, KafkaRefused, ProducerFenced, TransactionAbortable) as exc:
                await self._let_go()
                raise TransactionRefused(f"{exc}. No transaction is open.") from exc
            self.open = OpenTransaction(
                key=uuid.uuid4().hex,
                transactional_id=self.transactional_id,
                timeout_ms=timeout_ms,
                began_at=time.time(),
            )
            await self._publish(ended=None)
            return self.open.data()

    async def produce(self, *, key: str, records: list[dict], partitioner: str) -> dict:
        outgoing = [OutgoingRecord(*txn_record_parts(record)) for record in records]
        async with self._lock:
            txn = self.open
            if txn is None:
                raise TransactionRefused("The transaction is no longer open, so nothing was written." + self._why())
            if txn.key != key:
                raise TransactionRefused("That transaction has ended and another is open now: nothing was written.")
            sent_at = time.time()
            try:
                result = await self._run(self._producer.send, self.topic, outgoing, partitioner=partitioner)
            except ProducerFenced as exc:
                raise await self._aborted_by_kafka(txn) from exc
            except (KafkaUnavailable, KafkaRefused, TransactionAbortable) as exc:
                raise await self._abort_after(txn, str(exc)) from exc
            if not result.complete:
                # A transaction with a failed record can't commit: abort it now rather than leave it doomed.
                failed = f"Kafka refused {len(result.errors)} of {records_text(len(outgoing))} ({result.errors[0]})"
                raise await self._abort_after(txn, failed)
            txn.note_written(result.delivered, sent_at=sent_at)
            if self._watch is None:
                self._watch = asyncio.get_running_loop().create_task(
                    self._watch_forever(txn), name=f"txn-lab-{self.lab_id}"
                )
            await self._publish(ended=None)
            return {"delivered": [[d.partition, d.offset, d.timestamp_ms] for d in result.delivered]}

    async def commit(self) -> dict:
        async with self._lock:
            txn = self._open_for("commit")
            try:
                await self._run(self._producer.commit)
            except ProducerFenced as exc:
                raise await self._aborted_by_kafka(txn) from exc
            except (KafkaUnavailable, KafkaRefused, TransactionAbortable) as exc:
                raise await self._abort_after(txn, str(exc)) from exc
            partitions = ", ".join(f"P{p}" for p in sorted(txn.first_offsets)) or "no partition"
            message = (
                f"Committed: {records_text(txn.records)} ({partitions}), visible to read_committed readers now."
                if txn.records
                else "Committed an empty transaction: it wrote nothing, so Kafka had nothing to mark."
            )
            await self._settle(txn, outcome=Outcome.COMMITTED, message=message)
            return {"message": message, "records": txn.records, "partitions": sorted(txn.first_offsets)}

    async def abort(self) -> dict:
        async with self._lock:
            txn = self._open_for("abort")
            try:
                await self._run(self._producer.abort)
            except ProducerFenced as exc:
                raise await self._aborted_by_kafka(txn) from exc
            except (KafkaUnavailable, KafkaRefused, TransactionAbortable) as exc:
                await self._let_go()
                message = (
                    f"{exc}. OrderService let go of the transaction: the broker aborts it by itself when its "
                    "timeout runs out."
                )
                await self._settle(txn, outcome=Outcome.FAILED, message=message)
                raise TransactionRefused(message) from exc
            message = (
                f"Aborted: {records_text(txn.records)} left in the log, marked aborted: read_committed readers "
                "skip them; read_uncommitted ones read them as if nothing happened."
                if txn.records
                else "Aborted an empty transaction: it wrote nothing."
            )
            await self._settle(txn, outcome=Outcome.ABORTED, message=message)
            return {"message": message, "records": txn.records, "partitions": sorted(txn.first_offsets)}

    async def end(self) -> None:
        """Reset, expiry or deletion: the open transaction is aborted (if Kafka lets it), the
        producer closed, its orders undone, and nothing is said: the lab starts afresh."""
        async with self._lock:
            txn, self.open = self.open, None
            self._stop_watch()
            await self._let_go()  # close() aborts an open transaction first
            if txn is not None:
                await database_sync_to_async(transaction_orders_settle)(
                    lab_id=self.lab_id, key=txn.key, committed=False
                )
            await self._publish(ended=None)

    async def close(self) -> None:
        """The lab is gone from this runner: end, and stop its thread."""
        await self.end()
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    # Kafka ended it -----------------------------------------------------------------------------

    async def _watch_forever(self, txn: OpenTransaction) -> None:
        """While `txn` holds records: has Kafka ended it (the broker's timeout, or a fencing)?"""
        try:
            while self.open is txn:
                due = txn.deadline + GRACE_SECONDS - time.time()
                await asyncio.sleep(CHECK_SECONDS if due <= 0 else min(CHECK_SECONDS, due))
                if self.open is not txn:
                    return
                ended = await asyncio.to_thread(transaction_ended, self._config, self.topic, dict(txn.first_offsets))
                async with self._lock:
                    if self.open is not txn:
                        return
                    past = time.time() - txn.deadline
                    if ended or (ended is None and past >= GRACE_SECONDS) or past >= LET_GO_SECONDS:
                        await self._let_go()
                        await self._settle(txn, **self._kafka_abort(txn))
        except Exception:
            log.exception("watching lab %s's transaction failed", self.lab_id)
        finally:
            if self._watch is asyncio.current_task():
                self._watch = None

    def _kafka_abort(self, txn: OpenTransaction) -> dict:
        """What Kafka did when it ended the transaction without us: its deadline tells which."""
        records = records_text(txn.records)
        if txn.deadline is not None and time.time() >= txn.deadline:
            seconds = txn.timeout_ms / 1000
            return {
                "outcome": Outcome.TIMED_OUT,
                "message": (
                    f"The broker aborted the transaction after its timeout (transaction.timeout.ms = {seconds:g} s "
                    f"since its first record): {records} marked aborted, which only read_uncommitted readers see."
                ),
            }
        return {
            "outcome": Outcome.FENCED,
            "message": (
                f"Another producer with the same transactional.id ({self.transactional_id}) took over; this "
                f"transaction was aborted, with its {records}. OrderService's next transaction gets a new producer."
            ),
        }

    async def _aborted_by_kafka(self, txn: OpenTransaction) -> TransactionRefused:
        """The producer was fenced, so Kafka aborted the transaction: let go, and say why."""
        await self._let_go()
        said = self._kafka_abort(txn)
        await self._settle(txn, **said)
        return TransactionRefused(said["message"])

    async def _abort_after(self, txn: OpenTransaction, failure: str) -> TransactionRefused:
        """Kafka refused part of the transaction: abort it (or leave it to the broker), and say so."""
        try:
            await self._run(self._producer.abort)
            message = f"{failure}: the transaction was aborted, with every record in it. Nothing of it counts."
        except (KafkaUnavailable, KafkaRefused, ProducerFenced, TransactionAbortable):
            await self._let_go()
            message = (
                f"{failure}. OrderService let go of the transaction: unless Kafka had already committed it, "
                "the broker aborts it by itself when its timeout runs out."
            )
        await self._settle(txn, outcome=Outcome.FAILED, message=message)
        return TransactionRefused(message)

    async def _begin_fencing_any_other(self) -> None:
        """Begin on the producer; if it turns out fenced (another client took its transactional.id
        while no transaction was open), once more on a new one, whose init fences that client."""
        try:
            await self._run(self._producer.begin, self.topic)
        except ProducerFenced:
            await self._let_go()
            self._producer = await self._run(
                TransactionalProducer, self._config, transactional_id=self.transactional_id, timeout_ms=self._timeout_ms
            )
            await self._run(self._producer.begin, self.topic)

    # State ---------------------------------------------------------------------------------------

    def _open_for(self, action: str) -> OpenTransaction:
        if self.open is None:
            raise TransactionRefused(f"There is no open transaction to {action}." + self._why())
        return self.open

    def _why(self) -> str:
        """How the last transaction ended, when the learner may not have seen it happen."""
        if self.ended and self.ended["outcome"] in UNASKED:
            return " " + self.ended["message"]
        return " Begin one first."

    async def _settle(self, txn: OpenTransaction, *, outcome: str, message: str) -> None:
        self.open = None
        self._stop_watch()
        committed = outcome == Outcome.COMMITTED
        await database_sync_to_async(transaction_orders_settle)(lab_id=self.lab_id, key=txn.key, committed=committed)
        ended = {"outcome": outcome, "message": message, "records": txn.records, "at": iso(time.time())}
        await self._publish(ended=ended)

    async def _publish(self, *, ended: dict | None) -> None:
        self.ended = ended
        current = self.open.data() if self.open is not None else None
        await database_sync_to_async(transaction_state_save)(lab_id=self.lab_id, current=current, ended=ended)
        self.live.note_transaction(current=current, ended=ended)
        self.on_change()

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()

    async def _let_go(self) -> None:
        """Throw the producer away (fenced, failed, or its timeout changed); the next begin makes one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._run(producer.close)

    async def _run(self, call, *args, **kwargs):
        """A blocking producer call, in the lab's own thread (one at a time, in order)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"txn-lab-{self.lab_id}")
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(call, *args, **kwargs))
