"""Section `schemas`: the embedded schema registry, and what contracts cost OrderService.

On a cluster and daphne of the section's own, through confluent-kafka's SchemaRegistryClient
(the client any learner's code would use):
- register: a new version of a subject (POST /subjects/<s>/versions), which writes it to the
  `_schemas` topic and waits until the registry has read it back;
- lookup by id, cold: a fresh client's first GET /schemas/ids/<id> (an HTTP round trip);
- lookup by id, cached: the same client again (a consumer's cost per record after the first).
"""

from __future__ import annotations

import json
import time

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from bench.report import Figure, percentile, progress
from bench.server import lab_stack

PORT_BASE = 64092
REGISTRATIONS = 60
LOOKUPS = 200


def _schema(n: int) -> Schema:
    # Each version adds a field with a default: compatible under BACKWARD, so every one registers.
    fields = [{"name": "orderId", "type": "string"}] + [
        {"name": f"extra{i}", "type": "string", "default": ""} for i in range(n)
    ]
    return Schema(json.dumps({"type": "record", "name": "OrderCreated", "fields": fields}), "AVRO")


def _timed(call, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = call(*args)
    return (time.perf_counter() - started) * 1000, result


def _registry_figures(url: str) -> list[Figure]:
    client = SchemaRegistryClient({"url": url})
    subject = f"bench-{int(time.time())}.orders-value"
    register_ms, ids = [], []
    progress(f"register {REGISTRATIONS} versions of {subject}")
    for n in range(REGISTRATIONS):
        elapsed, schema_id = _timed(client.register_schema, subject, _schema(n))
        register_ms.append(elapsed)
        ids.append(schema_id)
    progress(f"look up {LOOKUPS} ids, each by a fresh client and then again by the same one")
    cold_ms, cached_ms = [], []
    for i in range(LOOKUPS):
        schema_id = ids[i % len(ids)]
        fresh = SchemaRegistryClient({"url": url})
        cold_ms.append(_timed(fresh.get_schema, schema_id)[0])
        cached_ms.append(_timed(fresh.get_schema, schema_id)[0])
    first, rest = register_ms[0], register_ms[1:]
    return [
        Figure("register the first version", first, "ms", "opens the registry's Kafka clients"),
        Figure("register a version, p50", percentile(rest, 50), "ms"),
        Figure("register a version, p99", percentile(rest, 99), "ms", f"{len(rest)} more versions"),
        Figure("lookup by id (cold), p50", percentile(cold_ms, 50), "ms"),
        Figure("lookup by id (cold), p99", percentile(cold_ms, 99), "ms", "a fresh client: one HTTP round trip"),
        Figure("lookup by id (cached), p50", percentile(cached_ms, 50) * 1000, "µs"),
        Figure("lookup by id (cached), p99", percentile(cached_ms, 99) * 1000, "µs", "the client's own cache"),
    ]


def run() -> list[Figure]:
    with lab_stack("schemas", port_base=PORT_BASE) as (_cluster, server):
        return _registry_figures(f"{server.url}/registry")
