"""This process's copy of the registry, kept up to date from the `_schemas` topic.

Every request first reads the topic to its end (one watermark request when nothing changed), so
each answer reflects every write any process made before it: no stale reads after a write
elsewhere. One lock per process serialises requests; registry traffic is small.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from kafkalab.kafka.config import client_config
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.schemas_topic import SchemasLog
from kafkalab.registry.errors import StoreUnavailable
from kafkalab.registry.state import RegistryState


class Registry:
    def __init__(self, log: SchemasLog) -> None:
        self.log = log
        self.state = RegistryState()
        self.lock = threading.RLock()
        self._read_at = -math.inf  # when the topic was last read to its end (monotonic)

    @contextmanager
    def fresh(self) -> Iterator[RegistryState]:
        """The state with every record written so far applied, held until the block ends."""
        with self.lock, _kafka_errors():
            self.log.read_to_end(self.state.apply)
            self._read_at = time.monotonic()
            yield self.state

    @contextmanager
    def recent(self, max_age: float) -> Iterator[RegistryState]:
        """The state as of at most `max_age` seconds ago: for pages and state.json, which are
        polled and may lag a write by that much, not for the REST API, which never lags."""
        with self.lock:
            if time.monotonic() - self._read_at > max_age:
                with _kafka_errors():
                    self.log.read_to_end(self.state.apply)
                self._read_at = time.monotonic()
            yield self.state

    def write(self, key: bytes, value: bytes | None) -> None:
        """Append a record and apply everything up to it (call inside `fresh`)."""
        with _kafka_errors():
            offset = self.log.append(key, value)
            self.log.read_to_end(self.state.apply, at_least=offset + 1)


@contextmanager
def _kafka_errors() -> Iterator[None]:
    try:
        yield
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise StoreUnavailable(f"The registry's Kafka store did not answer: {exc}") from exc


_registries: dict[tuple[str, str], Registry] = {}
_registries_lock = threading.Lock()


def registry() -> Registry:
    """The registry of this process, for the configured cluster and topic."""
    config = client_config()
    key = (repr(sorted(config.items())), settings.SCHEMA_REGISTRY_TOPIC)
    with _registries_lock:
        if key not in _registries:
            _registries[key] = Registry(SchemasLog(settings.SCHEMA_REGISTRY_TOPIC, config=config))
        return _registries[key]
