from __future__ import annotations


class KafkaSetupError(Exception):
    """The local cluster cannot be set up or started; the message says what to do."""


class KafkaUnavailable(Exception):
    """Kafka did not answer in time (a broker is down or the cluster is unreachable)."""
