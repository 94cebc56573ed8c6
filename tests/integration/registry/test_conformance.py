"""The embedded registry through confluent-kafka's own SchemaRegistryClient and Avro serde."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.harness.server import Server

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> object:
        return json.loads(self.text)


def call(method: str, url: str, *, json_body: object = None, content: bytes | None = None) -> Answer:
    """One plain HTTP request, beside the client: what a curl user or another tool would send."""
    data = json.dumps(json_body).encode() if json_body is not None else content
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode())


def order_schema(*extra_fields: dict, without: tuple[str, ...] = ()) -> Schema:
    fields = [
        {"name": "orderId", "type": "string"},
        {"name": "customerId", "type": "string"},
        {"name": "total", "type": "int"},
    ]
    fields = [f for f in fields if f["name"] not in without] + list(extra_fields)
    return Schema(json.dumps({"type": "record", "name": "OrderCreated", "namespace": "shop", "fields": fields}), "AVRO")


def error_of(call) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    return caught.value


def test_register_then_read_back(client: SchemaRegistryClient, subject: str) -> None:
    schema_id = client.register_schema(subject, order_schema())

    again = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})  # no cache
    assert again.register_schema(subject, order_schema()) == schema_id  # same schema: same id
    assert json.loads(again.get_schema(schema_id).schema_str)["name"] == "OrderCreated"
    latest = again.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, subject)
    assert again.get_version(subject, 1).schema_id == schema_id
    found = again.lookup_schema(subject, order_schema())
    assert (found.schema_id, found.version) == (schema_id, 1)
    assert subject in again.get_subjects()
    assert again.get_versions(subject) == [1]
    assert [(v.subject, v.version) for v in again.get_schema_versions(schema_id)] == [(subject, 1)]


def test_same_schema_under_two_subjects_shares_its_id(client: SchemaRegistryClient, subject: str) -> None:
    first = client.register_schema(subject, order_schema({"name": "shared", "type": "int", "default": 0}))
    second = client.register_schema(f"{subject}-copy", order_schema({"name": "shared", "type": "int", "default": 0}))
    other = client.register_schema(f"{subject}-other", order_schema({"name": "other", "type": "int", "default": 0}))
    assert first == second != other


def test_backward_evolution(client: SchemaRegistryClient, subject: str) -> None:
    client.register_schema(subject, order_schema())
    assert client.get_compatibility(subject_name=None) in {"BACKWARD", "NONE", "FORWARD", "FULL"}
    client.set_compatibility(subject, "BACKWARD")

    refused = error_of(lambda: client.register_schema(subject, order_schema({"name": "sku", "type": "string"})))
    assert (refused.http_status_code, refused.error_code) == (409, 409)
    assert "sku" in refused.error_message

    with_default = order_schema({"name": "sku", "type": "string", "default": ""})
    assert client.test_compatibility(subject, with_default) is True
    assert client.register_schema(subject, with_default) > 0
    assert client.get_latest_version(subject).version == 2

    # BACKWARD protects new readers of old data, not the readers already running: removal passes.
    assert client.test_compatibility(subject, order_schema(without=("customerId",))) is True


@pytest.mark.parametrize("level", ["FORWARD", "FULL", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE"])
def test_forward_and_full_refuse_removing_a_field(client: SchemaRegistryClient, subject: str, level: str) -> None:
    client.register_schema(subject, order_schema())
    client.set_compatibility(subject, level)
    assert client.get_compatibility(subject) == level
    removed = order_schema(without=("customerId",))
    assert client.test_compatibility(subject, removed) is False
    refused = error_of(lambda: client.register_schema(subject, removed))
    assert (refused.http_status_code, refused.error_code) == (409, 409)


def test_none_accepts_anything(client: SchemaRegistryClient, subject: str) -> None:
    client.register_schema(subject, order_schema())
    client.set_compatibility(subject, "NONE")
    client.register_schema(subject, order_schema({"name": "sku", "type": "string"}, without=("customerId",)))
    client.register_schema(subject, Schema('"string"', "AVRO"))
    assert client.get_versions(subject) == [1, 2, 3]


def test_compatibility_verbose_messages(registry_url: str, subject: str, client: SchemaRegistryClient) -> None:
    client.register_schema(subject, order_schema())
    body = {"schema": order_schema({"name": "sku", "type": "string"}).schema_str}
    answer = call(
        "POST", f"{registry_url}/compatibility/subjects/{subject}/versions/latest?verbose=true", json_body=body
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    assert answer.json()["is_compatible"] is False
    assert any("sku" in message for message in answer.json()["messages"])


def test_soft_then_hard_delete(client: SchemaRegistryClient, subject: str) -> None:
    schema_id = client.register_schema(subject, order_schema())
    client.register_schema(subject, order_schema({"name": "sku", "type": "string", "default": ""}))

    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert error_of(lambda: client.delete_version(subject, 2)).error_code == 40406
    assert error_of(lambda: client.delete_subject(subject, permanent=True)).error_code == 40405

    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert error_of(lambda: client.get_versions(subject)).error_code == 40401
    assert error_of(lambda: client.delete_subject(subject)).error_code == 40404
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    assert fresh.get_schema(schema_id) is not None  # soft-deleted versions keep their ids

    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert error_of(lambda: client.delete_subject(subject)).error_code == 40401
    # After a hard delete the subject starts again; ids are never given twice.
    again = client.register_schema(subject, order_schema({"name": "note", "type": "string", "default": ""}))
    assert again > schema_id


def test_error_codes(client: SchemaRegistryClient, registry_url: str, subject: str) -> None:
    assert error_of(lambda: client.get_latest_version(subject)).error_code == 40401
    client.register_schema(subject, order_schema())
    assert error_of(lambda: client.get_version(subject, 7)).error_code == 40402
    assert error_of(lambda: client.get_schema(2_000_000)).error_code == 40403
    assert (
        error_of(lambda: client.lookup_schema(subject, order_schema({"name": "x", "type": "int"}))).error_code == 40403
    )
    invalid = error_of(lambda: client.register_schema(subject, Schema('{"type": "record"}', "AVRO")))
    assert (invalid.http_status_code, invalid.error_code) == (422, 42201)
    assert error_of(lambda: client.register_schema(subject, Schema("not json", "AVRO"))).error_code == 42201
    level = error_of(lambda: client.set_compatibility(subject, "SIDEWAYS"))
    assert (level.http_status_code, level.error_code) == (422, 42203)

    bad_version = call("GET", f"{registry_url}/subjects/{subject}/versions/zero")
    assert (bad_version.status_code, bad_version.json()["error_code"]) == (422, 42202)
    for response in (
        call(
            "POST",
            f"{registry_url}/subjects/{subject}/versions",
            content=b"{not json",
        ),
        call("POST", f"{registry_url}/subjects/{subject}/versions", json_body=["a list"]),
        call("POST", f"{registry_url}/subjects/{subject}/versions", json_body={"schema": 5}),
        call(
            "POST", f"{registry_url}/subjects/{subject}/versions", json_body={"schema": "{}", "schemaType": "PROTOBUF"}
        ),
        call("POST", f"{registry_url}/subjects/{subject}/versions", content=b"x" * 300_000),
        call("GET", f"{registry_url}/schemas/ids/-4"),
        call("GET", f"{registry_url}/no/such/path"),
        call("PUT", f"{registry_url}/subjects"),
    ):
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == CONTENT_TYPE
        assert isinstance(response.json()["error_code"], int)


def test_config_endpoints(client: SchemaRegistryClient, registry_url: str, subject: str) -> None:
    assert client.get_compatibility() == "BACKWARD"
    assert error_of(lambda: client.get_compatibility(subject)).error_code == 40408
    answer = call("GET", f"{registry_url}/config/{subject}?defaultToGlobal=true")
    assert answer.json() == {"compatibilityLevel": "BACKWARD"}

    client.set_compatibility(level="FULL")
    try:
        assert (
            call("GET", f"{registry_url}/config/{subject}?defaultToGlobal=true").json()["compatibilityLevel"] == "FULL"
        )
        client.set_compatibility(subject, "none")
        assert client.get_compatibility(subject) == "NONE"
        assert call("DELETE", f"{registry_url}/config/{subject}").json() == {"compatibilityLevel": "NONE"}
        assert error_of(lambda: client.get_compatibility(subject)).error_code == 40408
    finally:
        call("DELETE", f"{registry_url}/config")
    assert client.get_compatibility() == "BACKWARD"


def test_avro_wire_format_round_trip(client: SchemaRegistryClient, subject: str) -> None:
    topic = subject.removesuffix("-value")
    serializer = AvroSerializer(client, order_schema().schema_str)
    context = SerializationContext(topic, MessageField.VALUE)
    order = {"orderId": "o-1", "customerId": "c-7", "total": 42}

    payload = serializer(order, context)
    schema_id = client.get_latest_version(subject).schema_id
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == schema_id

    reader = AvroDeserializer(SchemaRegistryClient({"url": client._rest_client.base_urls[0]}))
    assert reader(payload, context) == order


def test_state_survives_a_restart(registry_server: Server, subject: str) -> None:
    before = SchemaRegistryClient({"url": f"{registry_server.url}/registry"})
    schema_id = before.register_schema(subject, order_schema())
    before.set_compatibility(subject, "FULL")

    registry_server.stop()
    registry_server.start()

    after = SchemaRegistryClient({"url": f"{registry_server.url}/registry"})
    assert after.get_latest_version(subject).schema_id == schema_id
    assert after.get_compatibility(subject) == "FULL"
    assert after.register_schema(subject, order_schema()) == schema_id
    next_id = after.register_schema(f"{subject}-2", order_schema({"name": "after", "type": "int", "default": 0}))
    assert next_id > schema_id


def test_json_schema_subjects(client: SchemaRegistryClient, subject: str) -> None:
    def order(properties: dict, *, closed: bool = False) -> Schema:
        schema = {"type": "object", "properties": properties, "required": ["orderId"]}
        if closed:
            schema["additionalProperties"] = False
        return Schema(json.dumps(schema), "JSON")

    base = {"orderId": {"type": "string"}, "customerId": {"type": "string"}}
    schema_id = client.register_schema(subject, order(base, closed=True))
    fetched = SchemaRegistryClient({"url": client._rest_client.base_urls[0]}).get_schema(schema_id)
    assert fetched.schema_type == "JSON"
    assert json.loads(fetched.schema_str)["additionalProperties"] is False

    # Closed content model under BACKWARD: adding a property is safe, removing one is not.
    client.register_schema(subject, order({**base, "sku": {"type": "string"}}, closed=True))
    refused = error_of(lambda: client.register_schema(subject, order({"orderId": {"type": "string"}}, closed=True)))
    assert refused.error_code == 409
    assert "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL" in refused.error_message
    not_an_object = error_of(lambda: client.register_schema(subject, Schema("[1, 2]", "JSON")))
    assert not_an_object.error_code == 42201


def test_two_app_processes_share_one_registry(
    registry_server: Server, kafka_cluster, registry_topic: str, tmp_path_factory, subject: str
) -> None:
    """Writes racing through two daphnes on one `_schemas` topic: unique ids, one shared view."""

    with Server(tmp_path_factory.mktemp("second"), kafka_cluster, SCHEMA_REGISTRY_TOPIC=registry_topic) as second:
        urls = [f"{registry_server.url}/registry", f"{second.url}/registry"]

        def register(n: int) -> int:
            client = SchemaRegistryClient({"url": urls[n % 2]})
            return client.register_schema(
                f"{subject}-{n}", order_schema({"name": f"f{n}", "type": "int", "default": n})
            )

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(register, range(16)))
        assert len(set(ids)) == 16
        views = [SchemaRegistryClient({"url": url}) for url in urls]
        for n, schema_id in enumerate(ids):
            assert {c.get_latest_version(f"{subject}-{n}").schema_id for c in views} == {schema_id}
