"""OrderService's transactional producer: Kafka transactions begun, filled, committed and aborted.

Only the lab runner uses it (kafkalab.runner.transactions), one per lab: a second
init_transactions() for the same transactional.id, from any process, fences the first.

librdkafka's failures come in kinds, and this module raises them apart:
- fatal, ProducerFenced: another producer with the same transactional.id took over, or the broker
  aborted the transaction once transaction.timeout.ms had passed (both bump the producer's epoch,
  and librdkafka reports both as _FENCED). The producer is useless: close it, make a new one.
- abortable, TransactionAbortable: Kafka refused part of the transaction. Abort it; the same
  producer may begin another.
- KafkaUnavailable: Kafka did not answer in time, as everywhere else.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from kafkalab.kafka.admin import quiet_logger, shared_admin
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable, ProducerFenced, TransactionAbortable
from kafkalab.kafka.partitioner import crc32_partition_for
from kafkalab.kafka.producer import DELIVERY_TIMEOUT_MS, PRODUCER_DEFAULTS, Delivered, OutgoingRecord, SendResult

# transaction.timeout.ms, the lab's lever: the broker aborts a transaction this long after its first
# record unless it was committed or aborted. Bounded: below 5 s a learner can't click in time, and
# the broker refuses more than its transaction.max.timeout.ms (15 min by default).
TIMEOUT_MS_DEFAULT = 30_000
TIMEOUT_MS_MIN = 5_000
TIMEOUT_MS_MAX = 300_000
# How long init_transactions, commit and abort wait for the transaction coordinator.
CALL_TIMEOUT_SECONDS = 10.0
# How long asking a partition's last stable offset may take before "Kafka can't say".
LSO_TIMEOUT_SECONDS = 2.0

MURMUR2 = "murmur2_random"
CRC32 = "consistent_random"  # librdkafka's default partitioner

# Codes that leave the producer unusable (librdkafka flags most as fatal; these are so whatever it says).
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FATAL}
UNAVAILABLE_CODES = {
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._MSG_TIMED_OUT,
}


class TransactionalProducer:
    """One transactional producer: acks=all, idempotent, murmur2 like OrderService's plain one.
    Not thread-safe as a whole: call it from one thread at a time (the runner gives each lab one)."""

    def __init__(self, config: dict[str, object], *, transactional_id: str, timeout_ms: int) -> None:
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        self._producer = Producer(
            {
                **PRODUCER_DEFAULTS,
                **config,
                "transactional.id": transactional_id,
                "transaction.timeout.ms": timeout_ms,
                # librdkafka refuses a delivery timeout longer than the transaction's.
                "message.timeout.ms": min(DELIVERY_TIMEOUT_MS, timeout_ms),
            },
            logger=quiet_logger,
        )
        self._initialized = False

    def begin(self, topic: str) -> None:
        """Begin a transaction; the first one first registers the transactional.id with Kafka
        (init_transactions), which fences any older producer holding it."""
        try:
            if not self._initialized:
                self._producer.init_transactions(CALL_TIMEOUT_SECONDS)
                self._initialized = True
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise kafka_error(exc, "Kafka did not start the transaction") from exc
        # Keys hash over the topic's partitions as they are now: the lab may have added some since
        # this producer last looked (librdkafka would notice only at its periodic refresh).
        with contextlib.suppress(KafkaException):
            self._producer.list_topics(topic, timeout=CALL_TIMEOUT_SECONDS)

    def send(self, topic: str, records: list[OutgoingRecord], *, partitioner: str = MURMUR2) -> SendResult:
        """Produce the records into the open transaction and wait for Kafka's answer on each, as
        RecordProducer.send does. A failed record is in `errors` (the transaction can then only be
        aborted); a fenced producer raises ProducerFenced."""
        result = SendResult()
        pending = len(records)
        lock = threading.Lock()
        done = threading.Event()
        fenced: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, message) -> None:
            nonlocal pending
            with lock:
                if error is None:
                    result.delivered.append(Delivered(message.partition(), message.offset(), message.timestamp()[1]))
                else:
                    result.errors.append(error.str())
                    if error.fatal() or error.code() in FENCED_CODES:
                        fenced.append(error)
                pending -= 1
                if pending == 0:
                    done.set()

        if not records:
            return result
        placed = self._crc32_partitions(topic, records) if partitioner == CRC32 else {}
        try:
            for index, record in enumerate(records):
                self._produce(topic, record, placed.get(index), on_delivery)
            deadline = time.monotonic() + DELIVERY_TIMEOUT_MS / 1000 + 5
            while not done.is_set() and time.monotonic() < deadline:
                # Raises once the producer is fenced (a fatal error), instead of reporting records.
                self._producer.poll(0.01)
        except KafkaException as exc:
            raise kafka_error(exc, "Kafka refused the transaction's records") from exc
        if fenced:
            raise ProducerFenced(f"Kafka refused the transaction's records: {fenced[0].str()}")
        if not done.is_set():
            result.errors.append("Kafka gave no delivery report in time")
        result.delivered.sort(key=lambda d: (d.partition, d.offset))
        return result

    def commit(self) -> None:
        try:
            self._producer.commit_transaction(CALL_TIMEOUT_SECONDS)
        except KafkaException as exc:
            raise kafka_error(exc, "Kafka did not commit the transaction") from exc

    def abort(self) -> None:
        try:
            self._producer.abort_transaction(CALL_TIMEOUT_SECONDS)
        except KafkaException as exc:
            raise kafka_error(exc, "Kafka did not abort the transaction") from exc

    def close(self) -> None:
        """Throw the producer away (an open transaction is aborted if Kafka still lets it)."""
        try:
            with warnings.catch_warnings():
                # close() warns when it can't abort first (fenced, or a call to Kafka timed out):
                # the producer is thrown away all the same, which is all that is asked here.
                warnings.simplefilter("ignore", RuntimeWarning)
                self._producer.purge()
                self._producer.close()
        except KafkaException:
            pass  # fenced or unreachable: close() has let go of it all the same

    def _produce(self, topic: str, record: OutgoingRecord, partition: int | None, on_delivery) -> None:
        placement = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    on_delivery=on_delivery,
                    **placement,
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _crc32_partitions(self, topic: str, records: list[OutgoingRecord]) -> dict[int, int]:
        """Where librdkafka's default partitioner puts each keyed record. The producer has one
        partitioner (murmur2), so an order written with CRC32 is placed here, as it would be."""
        try:
            found = self._producer.list_topics(topic, timeout=CALL_TIMEOUT_SECONDS).topics.get(topic)
        except KafkaException as exc:
            raise kafka_error(exc, f"Kafka did not say how many partitions {topic} has") from exc
        if found is None or found.error is not None or not found.partitions:
            raise KafkaRefused(f"Kafka does not know the topic {topic}", code="UNKNOWN_TOPIC_OR_PART")
        count = len(found.partitions)
        return {index: crc32_partition_for(r.key, count) for index, r in enumerate(records) if r.key}


def kafka_error(exc: KafkaException, what: str) -> Exception:
    """The project's error for a failed transactional call (see the module's docstring)."""
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return KafkaUnavailable(f"{what}: {exc}")
    text = f"{what}: {error.str()}"
    if error.fatal() or error.code() in FENCED_CODES:
        return ProducerFenced(text)
    if error.txn_requires_abort():
        return TransactionAbortable(text)
    if error.retriable() or error.code() in UNAVAILABLE_CODES:
        return KafkaUnavailable(text)
    return KafkaRefused(text, code=error.name())


def transaction_ended(config: dict[str, object], topic: str, first_offsets: dict[int, int]) -> bool | None:
    """Whether Kafka has ended the transaction whose first record in each partition is at
    `first_offsets`: a partition's last stable offset moved past it (an open transaction holds it
    there). None when Kafka can't say now."""
    if not first_offsets:
        return None
    admin = shared_admin(config)
    asked = {TopicPartition(topic, p): OffsetSpec.latest() for p in first_offsets}
    try:
        futures = admin.list_offsets(
            asked, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=LSO_TIMEOUT_SECONDS
        )
        stable = {tp.partition: f.result(timeout=LSO_TIMEOUT_SECONDS + 1).offset for tp, f in futures.items()}
    except (KafkaException, TimeoutError):
        return None
    return any(stable[p] > first for p, first in first_offsets.items() if stable.get(p, -1) >= 0)
