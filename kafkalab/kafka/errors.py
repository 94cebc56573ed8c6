from __future__ import annotations


class KafkaSetupError(Exception):
    """The local cluster cannot be set up or started; the message says what to do."""


class KafkaUnavailable(Exception):
    """Kafka did not answer in time (a broker is down or the cluster is unreachable)."""


class KafkaRefused(Exception):
    """Kafka answered and said no (e.g. INVALID_PARTITIONS for a partition decrease)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProduceFailed(Exception):
    """Kafka did not acknowledge a record; nothing about it may be reported as written."""


class ProducerFenced(Exception):
    """A transactional producer can't be used any more: another producer with its transactional.id
    took over, or the broker aborted its transaction after transaction.timeout.ms (both bump the
    producer's epoch). Throw it away; the next transaction needs a new one."""


class TransactionAbortable(Exception):
    """Kafka refused part of a transaction (a record, or the commit): it can only be aborted, and
    then tried again with the same producer."""
