"""Writer schemas by id, from a Confluent-compatible registry: what the readers decode with.

Through confluent-kafka's own SchemaRegistryClient, as any Confluent client asks for them. Needs
no Django: the consumer process builds one from the URL the lab runner passes it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from kafkalab.kafka.readers import SchemaLookup

# Schemas never change once registered: a few in memory spare a request per record.
CACHED_SCHEMAS = 64
# A registry that is down must not hold a record for long: the reader says so and tries later.
TIMEOUT_SECONDS = 3
NOT_FOUND = 404
SCHEMA_NOT_FOUND = 40403


def registry_lookup(url: str | None) -> SchemaLookup:
    """A SchemaLookup on the registry at `url`: LookupError for an id it does not have,
    ConnectionError when it can't be asked (no URL, unreachable, or a server error)."""
    if not url:

        def nowhere(schema_id: int) -> tuple[str, str]:
            raise ConnectionError("no schema registry is configured")

        return nowhere
    return _CachedLookup(url)


def asked_once(lookup: SchemaLookup) -> SchemaLookup:
    """The lookup, asked at most once per id for one pass (an inspector's readers, a replay's
    records): its answer, an unknown id or a registry out of reach included, is given again, so a
    registry that is down costs one wait, not one per reader or per record."""
    answers: dict[int, tuple[str, str] | Exception] = {}

    def remembered(schema_id: int) -> tuple[str, str]:
        if schema_id not in answers:
            try:
                answers[schema_id] = lookup(schema_id)
            except (LookupError, ConnectionError) as exc:
                answers[schema_id] = exc
        answer = answers[schema_id]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return remembered


class _CachedLookup:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = None  # made at the first framed value: most labs never send one
        self._cache: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, schema_id: int) -> tuple[str, str]:
        with self._lock:
            if schema_id in self._cache:
                self._cache.move_to_end(schema_id)
                return self._cache[schema_id]
        found = self._ask(schema_id)
        with self._lock:  # only what the registry has: an id registered later is found then
            self._cache[schema_id] = found
            while len(self._cache) > CACHED_SCHEMAS:
                self._cache.popitem(last=False)
        return found

    def _ask(self, schema_id: int) -> tuple[str, str]:
        # Imported here: the registry client takes a quarter of a second to import, and every
        # consumer process would pay for it at start.
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.common._httpx_compat import httpx
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if self._client is None:
            # No retries inside the client: a down registry is reported at once, and retried later.
            self._client = SchemaRegistryClient({"url": self.url, "timeout": TIMEOUT_SECONDS, "max.retries": 0})
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == NOT_FOUND or exc.error_code == SCHEMA_NOT_FOUND:
                raise LookupError(f"schema {schema_id} not found") from None
            raise ConnectionError(f"the registry at {self.url} answered {exc.http_status_code}: {exc}") from None
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise ConnectionError(f"the registry at {self.url} did not answer: {exc}") from None
        return (schema.schema_type or "AVRO").upper(), schema.schema_str
