"""OrderService's contract in a lab, through the page, on real Kafka and the embedded registry
served by a real daphne: what the page writes is Confluent's wire format, readable by
confluent-kafka's own deserializers, and the registry refuses breaking changes before a single
record is written.

The app under test runs in-process (Django's test client); only the registry is the live server,
which the app reaches over HTTP through SCHEMA_REGISTRY_URL, as it would reach Confluent's.
"""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import sync_to_async
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from django.test import Client

from kafkalab.kafka import contracts, readers
from kafkalab.kafka.contracts import Encoding
from kafkalab.labs import contract_selectors
from kafkalab.labs.models import Lab, LabOrder
from tests.factories import HTMX, new_order_id, order_form_data
from tests.harness.server import free_port
from tests.integration.lab_support import Learner, log_ends, read_topic, state_json, text

pytestmark = pytest.mark.django_db(transaction=True)

ACKNOWLEDGED = re.compile(r"Kafka acknowledged it: partition <strong>(\d+)</strong>, offset <strong>(\d+)</strong>")


@pytest.fixture(autouse=True)
def app_uses_the_live_registry(settings, registry_url: str) -> None:
    settings.SCHEMA_REGISTRY_URL = registry_url


@pytest.fixture
def fresh_client(registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry_url})


STRANGER_POSTS = {
    "contract/encoding/": {"encoding": "json-schema"},
    "contract/check/": {"change": "add-sku"},
    "contract/use/": {"schema": json.dumps(contracts.v1_schema(Encoding.AVRO))},
    "contract/compatibility/": {"level": "NONE"},
}


def lab_of(learner: Learner) -> Lab:
    return Lab.objects.get(pk=learner.lab_id)


def switch(learner: Learner, encoding: str) -> str:
    response = learner.post("contract/encoding/", {"encoding": encoding})
    assert response.status_code == 200, text(response)
    return text(response)


def order(learner: Learner) -> tuple[str, int, int]:
    order_id = new_order_id()
    response = learner.post("orders/", order_form_data(order_id=order_id))
    assert response.status_code == 200, text(response)
    partition, offset = ACKNOWLEDGED.search(text(response)).groups()
    return order_id, int(partition), int(offset)


def changed_text(name: str, base: str | None = None) -> str:
    schema = json.loads(base) if base else contracts.v1_schema(Encoding.AVRO)
    return contracts.schema_text(contracts.change_apply(Encoding.AVRO, schema, name))


def avro_value(value: bytes, client: SchemaRegistryClient, topic: str) -> dict:
    return AvroDeserializer(client)(value, SerializationContext(topic, MessageField.VALUE))


def test_avro_orders_carry_the_magic_byte_and_the_registered_id(kafka_cluster, learner: Learner, fresh_client) -> None:
    bootstrap, subject = kafka_cluster.bootstrap_servers(), f"lab-{learner.lab_id}.orders-value"
    assert "schema id" in switch(learner, "avro")
    schema_id = lab_of(learner).writer_schema_id
    assert fresh_client.get_version(subject, 1).schema_id == schema_id

    order_id, partition, offset = order(learner)
    burst = learner.post("orders/burst/", {"count": "5", "key_strategy": "orderId"})
    assert burst.status_code == 200, text(burst)

    records = read_topic(bootstrap, learner.topic)
    assert len(records) == 6
    for record in records:
        assert record.value[0] == 0 and readers.schema_id_of(record.value) == schema_id
        assert record.headers["content-type"] == b"application/vnd.kafka.avro.v2+json"
    [mine] = [r for r in records if r.key == order_id.encode()]
    assert (mine.partition, mine.offset) == (partition, offset)
    decoded = avro_value(mine.value, fresh_client, learner.topic)
    assert decoded.pop("timestamp").endswith("Z")
    assert decoded == {
        "orderId": order_id,
        "customerId": "c0ffee00-1234-4abc-9def-0123456789ab",
        "items": [{"productId": "kbd-00042", "quantity": 2, "price": 49.0}],
    }

    # One schema per topic: a lifecycle event has none, so it is refused and nothing is written.
    ends = log_ends(bootstrap, learner.topic)
    refused = learner.post("orders/advance/", {"order_id": order_id})
    assert refused.status_code == 422 and "RecordNameStrategy" in text(refused)
    assert 'data-control="lifecycle" disabled' in text(refused)
    assert log_ends(bootstrap, learner.topic) == ends

    page = text(learner.client.get(learner.url()))
    assert 'data-panel="registry"' in page and "Register and use" in page and 'data-encoding="avro"' in page

    inspector = text(learner.client.get(learner.url(f"events/{partition}/{offset}/"), headers=HTMX))
    assert "Encoding: Avro" in inspector
    assert f"the schema id <strong>{schema_id}</strong>" in inspector
    assert f"version <strong>1</strong> of <code>{subject}</code>" in inspector
    assert "byte 0 is <code>00</code>, the magic byte" in inspector
    assert inspector.count('data-reads="true"') == 3  # every reader reads version 1


def test_the_registry_refuses_breaking_changes_before_anything_is_written(
    kafka_cluster, learner: Learner, fresh_client
) -> None:
    bootstrap, subject = kafka_cluster.bootstrap_servers(), f"lab-{learner.lab_id}.orders-value"
    switch(learner, "avro")

    # Renaming customerId, before it is sent: every reader fails, and BACKWARD would refuse it.
    preview = text(learner.post("contract/check/", {"change": "rename-customer-id"}))
    assert preview.count('data-reads="false"') == 3
    assert 'data-compatible="false"' in preview and "BACKWARD" in preview

    for breaking in ("rename-customer-id", "add-sku"):
        refused = learner.post("contract/use/", {"schema": changed_text(breaking)})
        assert refused.status_code == 409, text(refused)
        assert 'data-testid="registry-refusal"' in text(refused) and "incompatible" in text(refused)
    assert lab_of(learner).writer_version == 1 and fresh_client.get_versions(subject) == [1]
    assert sum(log_ends(bootstrap, learner.topic).values()) == 0, "a refused schema writes nothing"

    # FULL protects the running readers: removing customerId is refused too.
    assert learner.post("contract/compatibility/", {"level": "full"}).status_code == 200
    assert fresh_client.get_compatibility(subject) == "FULL"
    removal = changed_text("remove-customer-id")
    assert learner.post("contract/use/", {"schema": removal}).status_code == 409

    # BACKWARD protects new readers of old data only: the same removal is accepted, and breaks the readers.
    assert learner.post("contract/compatibility/", {"level": "BACKWARD"}).status_code == 200
    preview = text(learner.post("contract/check/", {"schema": removal}))
    assert 'data-compatible="true"' in preview and 'data-testid="accepted-yet-failing"' in preview
    accepted = learner.post("contract/use/", {"schema": removal})
    assert accepted.status_code == 200 and "version <strong>2</strong>" in text(accepted)
    lab = lab_of(learner)
    assert lab.writer_version == 2 and fresh_client.get_versions(subject) == [1, 2]

    order_id, _, _ = order(learner)
    [record] = read_topic(bootstrap, learner.topic)
    assert readers.schema_id_of(record.value) == lab.writer_schema_id
    assert "customerId" not in avro_value(record.value, fresh_client, learner.topic)

    # Under NONE anything goes.
    assert learner.post("contract/compatibility/", {"level": "NONE"}).status_code == 200
    assert learner.post("contract/use/", {"schema": changed_text("price-as-string", removal)}).status_code == 200
    assert fresh_client.get_versions(subject) == [1, 2, 3]

    panel = text(learner.client.get(learner.url("contract/registry/") + "?a=1&b=2", headers=HTMX))
    assert 'data-version="1"' in panel and 'data-version="3"' in panel and "NONE" in panel
    assert re.search(r'class="diff-line diff-removed">- .*customerId', panel), panel


def test_json_schema_round_trip(kafka_cluster, learner: Learner, fresh_client) -> None:
    switch(learner, "json-schema")
    order_id, partition, offset = order(learner)
    [record] = read_topic(kafka_cluster.bootstrap_servers(), learner.topic)
    assert readers.schema_id_of(record.value) == lab_of(learner).writer_schema_id
    decoded = JSONDeserializer(None, schema_registry_client=fresh_client)(
        record.value, SerializationContext(learner.topic, MessageField.VALUE)
    )
    assert decoded["orderId"] == order_id and decoded["items"][0]["price"] == 49.0
    inspector = text(learner.client.get(learner.url(f"events/{partition}/{offset}/"), headers=HTMX))
    assert "Encoding: JSON Schema" in inspector


def test_bad_input_is_refused_with_a_reason_and_changes_nothing(kafka_cluster, learner: Learner, fresh_client) -> None:
    switch(learner, "avro")
    too_large = json.dumps({**contracts.v1_schema(Encoding.AVRO), "doc": "x" * contracts.MAX_SCHEMA_BYTES})
    bad_schemas = {
        "{not json": "not JSON",
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}': "Not a valid Avro schema",
        too_large: "at most 64 KiB",
    }
    for schema, reason in bad_schemas.items():
        for action in ("contract/check/", "contract/use/"):
            response = learner.post(action, {"schema": schema})
            assert response.status_code == 422 and reason in text(response), text(response)[:300]
    unknown = learner.post("contract/compatibility/", {"level": "SOMETIMES"})
    assert unknown.status_code == 422 and "is not a compatibility level" in text(unknown)
    assert "FULL_TRANSITIVE" in text(unknown)
    assert learner.post("contract/encoding/", {"encoding": "xml"}).status_code == 422

    # Without JavaScript the forms answer a page of their own.
    page = learner.post("contract/check/", {"change": "add-currency"}, htmx=False)
    assert page.status_code == 200 and "Back to lab" in text(page) and 'data-testid="contract-preview"' in text(page)

    # Only the lab's owner acts on it; a share-link holder may look at the subject, nothing more.
    stranger = Client()
    for action, data in STRANGER_POSTS.items():
        assert stranger.post(learner.url(action), data, headers=HTMX).status_code == 403, action
    assert learner.post("share/").status_code == 200
    token = lab_of(learner).share_token
    looked = stranger.get(learner.url("contract/registry/") + f"?share={token}", headers=HTMX)
    assert looked.status_code == 200 and "Set level" not in text(looked) and 'data-version="1"' in text(looked)
    assert stranger.get(learner.url("contract/registry/"), headers=HTMX).status_code == 403

    lab = lab_of(learner)
    assert (lab.encoding, lab.writer_version) == ("avro", 1)
    assert fresh_client.get_versions(f"lab-{learner.lab_id}.orders-value") == [1]
    assert fresh_client.get_compatibility() == "BACKWARD", "the global level is never touched"
    assert sum(log_ends(kafka_cluster.bootstrap_servers(), learner.topic).values()) == 0


def test_with_the_registry_down_each_action_says_so_and_nothing_is_half_done(
    kafka_cluster, learner: Learner, settings
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers()
    switch(learner, "avro")
    settings.SCHEMA_REGISTRY_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    refused = learner.post("orders/", order_form_data())
    assert refused.status_code == 422 and "did not answer" in text(refused)
    assert sum(log_ends(bootstrap, learner.topic).values()) == 0
    assert not LabOrder.objects.filter(lab_id=learner.lab_id).exists()

    switched = learner.post("contract/encoding/", {"encoding": "json-schema"})
    assert switched.status_code == 503 and "did not answer" in text(switched)
    assert lab_of(learner).encoding == "avro"
    used = learner.post("contract/use/", {"schema": changed_text("add-currency")})
    assert used.status_code == 503 and lab_of(learner).writer_version == 1
    preview = learner.post("contract/check/", {"change": "add-currency"})
    assert preview.status_code == 200 and "Could not ask the registry" in text(preview)
    panel = learner.client.get(learner.url("contract/registry/"), headers=HTMX)
    assert panel.status_code == 200 and 'data-testid="registry-error"' in text(panel)
    assert "error" in contract_selectors.registry_state(lab_id=learner.lab_id, client_url="x")

    reset = learner.client.post(learner.url("reset/"), follow=True)
    assert reset.status_code == 200 and "was not deleted" in text(reset)
    assert lab_of(learner).encoding == "json"


def test_reset_deletes_the_subject_for_good(kafka_cluster, learner: Learner, fresh_client) -> None:
    subject = f"lab-{learner.lab_id}.orders-value"
    switch(learner, "avro")
    learner.post("contract/compatibility/", {"level": "FORWARD"})
    assert learner.post("contract/use/", {"schema": changed_text("add-currency")}).status_code == 200
    block = contract_selectors.registry_state(lab_id=learner.lab_id, client_url="http://registry.example")
    assert block["url"] == "http://registry.example" and "error" not in block
    assert block["subjects"] == [
        {
            "subject": subject,
            "versions": [1, 2],
            "schema_ids": [fresh_client.get_version(subject, n).schema_id for n in (1, 2)],
            "schema_type": "AVRO",
            "compatibility": "FORWARD",
            "compatibility_is_subjects_own": True,
        }
    ]

    assert learner.client.post(learner.url("reset/")).status_code == 302
    with pytest.raises(SchemaRegistryError) as gone:
        fresh_client.get_versions(subject)
    assert gone.value.error_code == 40401
    assert subject not in fresh_client.get_subjects(deleted=True), "hard-deleted, not only soft"
    lab = lab_of(learner)
    assert (lab.encoding, lab.writer_schema, lab.writer_schema_id) == ("json", "", None)
    assert contract_selectors.registry_state(lab_id=learner.lab_id, client_url="x")["subjects"] == []


async def test_state_json_gives_the_registry_and_the_labs_subject(
    kafka_cluster, learner: Learner, registry_url
) -> None:
    await sync_to_async(switch)(learner, "json-schema")
    block = (await state_json(learner))["schema_registry"]
    assert block["url"] == registry_url
    assert block["writer"]["encoding"] == "json-schema" and block["writer"]["version"] == 1
    [subject] = block["subjects"]
    assert (subject["subject"], subject["versions"], subject["schema_type"]) == (
        f"lab-{learner.lab_id}.orders-value",
        [1],
        "JSON",
    )
    assert subject["compatibility"] == "BACKWARD" and not subject["compatibility_is_subjects_own"]


def test_plain_json_follows_the_edited_schema_with_no_registry_at_all(
    kafka_cluster, learner: Learner, settings
) -> None:
    settings.SCHEMA_REGISTRY_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens: none is needed
    preview = text(learner.post("contract/check/", {"change": "add-sku"}))
    assert '<tr data-reader="strict" data-reads="false">' in preview
    assert '<tr data-reader="tolerant" data-reads="true">' in preview
    assert "No registry:" in preview

    schema = contracts.schema_text(
        contracts.change_apply(Encoding.PLAIN_JSON, contracts.v1_schema(Encoding.PLAIN_JSON), "add-sku")
    )
    used = learner.post("contract/use/", {"schema": schema})
    assert used.status_code == 200 and "No registry checked it" in text(used)
    order_id, _, _ = order(learner)
    [record] = read_topic(kafka_cluster.bootstrap_servers(), learner.topic)
    assert record.value.startswith(b"{") and record.headers["content-type"] == b"application/json"
    assert record.body["orderId"] == order_id and record.body["items"][0]["sku"] == "sku-001"
