"""kafkalab on PostgreSQL, the classroom's database: a server on the suite's own PostgreSQL
migrates it, gives a learner a lab and serves the lab's state."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import psycopg
from confluent_kafka.admin import AdminClient

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.http_browser import Browser
from tests.harness.server import Server


def test_a_server_on_postgres_migrates_it_and_serves_a_lab(
    kafka_cluster: LocalCluster, postgres_url: str, tmp_path: Path
):
    with Server(tmp_path, kafka_cluster, database_url=postgres_url) as server:
        learner = Browser(server.url)
        lab_id = learner.start_lab()
        topics = [f"lab-{lab_id}.orders"]
        try:
            response = learner.get(f"/labs/{lab_id}/state.json")

            assert response.status == 200, f"{response.text[:500]}\n--- daphne:\n{server.log_tail()}"
            topics = [topic["name"] for topic in json.loads(response.text)["topics"]]
            assert f"lab-{lab_id}.orders" in topics
        finally:
            admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers()})
            for future in admin.delete_topics(topics).values():
                with contextlib.suppress(Exception):  # a leftover topic is harmless
                    future.result(timeout=30)

    # The lab is a row in PostgreSQL, numbered apart from other runs' labs on the shared cluster.
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT id FROM labs_lab WHERE id = %s", (lab_id,)).fetchone() == (lab_id,)
    assert lab_id > 10**6
