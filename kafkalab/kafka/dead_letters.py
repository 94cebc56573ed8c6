"""The dead-letter topic's headers: why a record was set aside, and where it came from.

NotificationService writes them beside the original key, value and headers; the lanes, the
inspector and "Replay DLQ" read them back. Any client can read them too (kcat -J shows them).
"""

from __future__ import annotations

PREFIX = "kafkalab.dlq."
REASON = PREFIX + "reason"  # a readers.Failure value: not-decodable, contract, unknown-schema-id, …
ERROR = PREFIX + "error"  # the reader's message
TOPIC = PREFIX + "topic"  # where the record was read
PARTITION = PREFIX + "partition"
OFFSET = PREFIX + "offset"
CONSUMER = PREFIX + "consumer"  # which NotificationService instance set it aside
READER = PREFIX + "reader"  # strict, tolerant or registry
ATTEMPTS = PREFIX + "attempts"  # how many times it was tried (1 without retries)
TIME = PREFIX + "time"  # when, in milliseconds since the epoch
# On a record replayed from the DLQ to the orders topic: "<dlq partition>:<dlq offset>".
REPLAYED_FROM = "kafkalab.replayed-from"


def is_dead_letter_header(name: str) -> bool:
    return name.startswith(PREFIX)
