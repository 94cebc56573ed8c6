"""Deleting a group asks again while its coordinator moves (Kafka's answer: ask again), and
reports anything else. The admin client here is a stand-in that answers as Kafka did on the
suite's cluster (NOT_COORDINATOR while a broker restarted); the real call is covered by the
integration tests of a lab reset."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException

from kafkalab.kafka import groups
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable


class AnsweringAdmin:
    def __init__(self, *answers: int | None) -> None:
        self.answers = list(answers)
        self.asked = 0

    def delete_consumer_groups(self, group_ids, request_timeout):
        self.asked += 1
        future: Future = Future()
        code = self.answers.pop(0)
        if code is None:
            future.set_result(None)
        else:
            future.set_exception(KafkaException(KafkaError(code)))
        return {group_ids[0]: future}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(groups, "COORDINATOR_RETRY_WAIT", 0)


def test_a_moving_coordinator_is_asked_again():
    admin = AnsweringAdmin(KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, None)
    groups.group_delete(admin, "g")
    assert admin.asked == 3


def test_a_coordinator_that_keeps_moving_is_reported():
    admin = AnsweringAdmin(*[KafkaError.NOT_COORDINATOR] * groups.COORDINATOR_RETRIES)
    with pytest.raises(KafkaUnavailable, match="did not delete group g"):
        groups.group_delete(admin, "g")
    assert admin.asked == groups.COORDINATOR_RETRIES


def test_a_group_with_members_is_refused_at_once_and_a_missing_one_is_fine():
    with pytest.raises(KafkaRefused):
        groups.group_delete(AnsweringAdmin(KafkaError.NON_EMPTY_GROUP), "g")
    groups.group_delete(AnsweringAdmin(KafkaError.GROUP_ID_NOT_FOUND), "g")
