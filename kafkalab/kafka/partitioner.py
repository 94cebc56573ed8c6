"""Where a keyed record lands: the Java client's murmur2 partitioner, shown step by step.

Producers here are configured with librdkafka's `murmur2_random`, which places keyed records
exactly as a Java producer does; this module reproduces the arithmetic so the page can explain
*why* a record is in its partition. librdkafka's default (`consistent_random`) hashes with
CRC32 instead, so a record from kcat or another librdkafka client may sit elsewhere.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def positive(value: int) -> int:
    """Kafka's Utils.toPositive: clears the sign bit (not abs())."""
    return value & 0x7FFFFFFF


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a Java producer (and librdkafka's murmur2_random) picks for this key."""
    return positive(murmur2(key)) % partitions


def crc32_partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default `consistent_random` partitioner picks."""
    return zlib.crc32(key) % partitions


@dataclass(frozen=True)
class PartitionReason:
    """Why a record sits in its partition, for the event inspector."""

    keyed: bool
    hash_value: int | None
    positive_hash: int | None
    partitions: int
    expected_partition: int | None
    actual_partition: int
    crc32_partition: int | None

    @property
    def matches_murmur2(self) -> bool:
        return self.expected_partition == self.actual_partition

    @property
    def matches_crc32_only(self) -> bool:
        return not self.matches_murmur2 and self.crc32_partition == self.actual_partition


def explain_partition(key: bytes | None, partitions: int, actual_partition: int) -> PartitionReason:
    if key is None:
        return PartitionReason(False, None, None, partitions, None, actual_partition, None)
    hashed = murmur2(key)
    return PartitionReason(
        keyed=True,
        hash_value=hashed,
        positive_hash=positive(hashed),
        partitions=partitions,
        expected_partition=positive(hashed) % partitions,
        actual_partition=actual_partition,
        crc32_partition=crc32_partition_for(key, partitions),
    )
