"""Path converters for the numbers in lab URLs, bounded by what stores them.

Django's `int` takes any number of digits, and a number too big for SQLite or librdkafka then
fails deep in a view with a 500. These stop at the largest value that can exist, so a bigger
one does not match the URL at all: a 404, decided before any database or Kafka call.
Registered on import; kafkalab/labs/urls.py and kafkalab/routing.py import this module.
"""

from __future__ import annotations

from django.urls import register_converter

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class BoundedIntConverter:
    regex = "[0-9]+"
    maximum: int

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > self.maximum:
            raise ValueError(f"{number} is above {self.maximum}")  # Django: the URL does not match
        return number

    def to_url(self, value: int) -> str:
        return str(value)


class LabIdConverter(BoundedIntConverter):
    maximum = INT64_MAX  # Lab.id is a BigAutoField


class PartitionConverter(BoundedIntConverter):
    maximum = INT32_MAX  # Kafka partitions are int32


class OffsetConverter(BoundedIntConverter):
    maximum = INT64_MAX  # Kafka offsets are int64


register_converter(LabIdConverter, "lab_id")
register_converter(PartitionConverter, "partition")
register_converter(OffsetConverter, "offset")
