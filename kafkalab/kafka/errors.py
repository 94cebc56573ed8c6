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
