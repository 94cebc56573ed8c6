"""The lab's dead-letter topic: made with the lab, made again by a reset, and "Replay DLQ" on it
as the page posts it (the replay itself, on real consumers: consumer_groups/test_poison_pills.py)."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.lab_support import KAFKA_TIMEOUT, Learner, partition_count, text

pytestmark = pytest.mark.django_db(transaction=True)


def dlq_topic(learner: Learner) -> str:
    return f"{learner.topic}.dlq"


def test_a_lab_has_a_dead_letter_topic_of_one_lane_and_a_replay_button(kafka_cluster, learner: Learner):
    assert partition_count(kafka_cluster.bootstrap_servers(), dlq_topic(learner)) == 1

    page = text(learner.client.get(learner.url()))

    assert 'data-control="replay-dlq"' in page and ">Replay DLQ</button>" in page
    assert dlq_topic(learner) in page


def test_replaying_an_empty_dead_letter_topic_says_there_is_nothing_to_replay(learner: Learner):
    with_htmx = learner.post("dlq/replay/")
    without = learner.post("dlq/replay/", htmx=False)

    assert with_htmx.status_code == 200 and "Nothing to replay" in text(with_htmx)
    assert without.status_code == 302, "a page without JavaScript is sent back to the lab, with the notice"


def test_a_reset_makes_a_missing_dead_letter_topic_afresh(kafka_cluster, learner: Learner):
    bootstrap = kafka_cluster.bootstrap_servers()
    admin = AdminClient({"bootstrap.servers": bootstrap})  # held: its futures die with it
    admin.delete_topics([dlq_topic(learner)])[dlq_topic(learner)].result(KAFKA_TIMEOUT)

    assert learner.post("reset/", htmx=False).status_code == 302
    assert partition_count(bootstrap, dlq_topic(learner)) == 1
