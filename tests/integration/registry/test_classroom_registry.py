"""A classroom's registry: a learner changes only their own lab's subject — through the page, or
over the REST API with the credentials their lab has — and reads stay open to anyone.

The registry is a live daphne with the classroom's write rule; the app under test (in-process)
reaches it as the embedded registry, at SITE_URL, on the lab's behalf.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from django.conf import settings as django_settings
from django.test import Client

from kafkalab.kafka.local_cluster import LocalCluster
from kafkalab.labs.models import Lab
from kafkalab.registry.credentials import lab_user_info
from tests.harness.server import Server
from tests.integration.lab_support import Learner, text

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = Schema('{"type": "record", "name": "Ping", "fields": [{"name": "at", "type": "long"}]}', "AVRO")


@pytest.fixture(scope="module")
def classroom_registry(kafka_cluster: LocalCluster, tmp_path_factory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("classroom-registry"),
        kafka_cluster,
        SCHEMA_REGISTRY_TOPIC=f"_schemas-classroom-{uuid.uuid4().hex[:12]}",
        SCHEMA_REGISTRY_WRITE_CHECK="kafkalab.registry.permissions.lab_subjects_only",
        DJANGO_SECRET_KEY=django_settings.SECRET_KEY,  # the same key signs the labs' credentials
    )
    with server:
        yield server


@pytest.fixture(autouse=True)
def app_uses_it_as_the_embedded_registry(settings, classroom_registry: Server) -> None:
    settings.SCHEMA_REGISTRY_URL = ""
    settings.SITE_URL = classroom_registry.url


def test_the_page_writes_the_labs_own_subject_and_strangers_only_read(learner: Learner, classroom_registry):
    response = learner.post("contract/encoding/", {"encoding": "avro"})
    assert response.status_code == 200, text(response)
    lab = Lab.objects.get(pk=learner.lab_id)
    assert lab.encoding == "avro" and lab.writer_schema_id is not None

    url = f"{classroom_registry.url}/registry"
    anyone = SchemaRegistryClient({"url": url})
    assert anyone.get_latest_version(lab.value_subject).schema_id == lab.writer_schema_id  # reads are open
    with pytest.raises(SchemaRegistryError) as refused:
        anyone.register_schema(lab.value_subject, SCHEMA)
    assert (refused.value.http_status_code, refused.value.error_code) == (401, 40101)

    own = SchemaRegistryClient({"url": url, "basic.auth.user.info": lab_user_info(learner.lab_id)})
    assert own.register_schema(f"lab-{learner.lab_id}.scratch-value", SCHEMA) > 0
    with pytest.raises(SchemaRegistryError) as forbidden:
        own.register_schema(f"lab-{learner.lab_id + 1}.orders-value", SCHEMA)
    assert (forbidden.value.http_status_code, forbidden.value.error_code) == (403, 40301)


def test_only_the_owner_sees_the_labs_credentials(learner: Learner):
    password = lab_user_info(learner.lab_id).split(":")[1]
    own = learner.client.get(learner.url("contract/registry/"), headers={"HX-Request": "true"})
    assert own.status_code == 200, text(own)
    assert "data-registry-credentials" in text(own) and password in text(own)
    share = learner.post("share/")
    assert share.status_code == 200, text(share)
    token = Lab.objects.get(pk=learner.lab_id).share_token
    watched = Client().get(learner.url(f"contract/registry/?share={token}"), headers={"HX-Request": "true"})
    assert watched.status_code == 200, text(watched)
    assert password not in text(watched) and "data-registry-credentials" not in text(watched)
