"""ServiceSettings.consumer_config: what one NotificationService process asks librdkafka for.
Each config is also handed to a real librdkafka Consumer, which refuses invalid combinations."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, KafkaException

from kafkalab.kafka.notification_service import ServiceSettings, main

CLASSIC_ONLY = {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"}
# Nothing listens there: librdkafka checks the config when the consumer is created.
NOWHERE = {"bootstrap.servers": "127.0.0.1:1"}


def settings(**overrides: object) -> ServiceSettings:
    return ServiceSettings(
        name="c1", topic="lab-1.orders", group_id="lab-1.order-notifications", client=NOWHERE, **overrides
    )


def accepted_by_librdkafka(config: dict) -> bool:
    consumer = Consumer(config)
    consumer.close()
    return True


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_the_classic_protocol_asks_for_the_assignor_and_session_timeout(strategy: str):
    config = settings(assignment_strategy=strategy, session_timeout_ms=6000).consumer_config()

    assert config["group.protocol"] == "classic"
    assert config["partition.assignment.strategy"] == strategy
    assert config["session.timeout.ms"] == 6000
    assert 0 < config["heartbeat.interval.ms"] <= 6000 // 3, "several heartbeats fit in one session"
    assert (config["group.id"], config["client.id"]) == ("lab-1.order-notifications", "c1")
    assert accepted_by_librdkafka(config)


def test_the_consumer_protocol_leaves_the_assignor_and_session_timeout_to_the_broker():
    config = settings(group_protocol="consumer", assignment_strategy="cooperative-sticky").consumer_config()

    assert config["group.protocol"] == "consumer"
    assert CLASSIC_ONLY.isdisjoint(config)
    assert accepted_by_librdkafka(config)


@pytest.mark.parametrize("setting", sorted(CLASSIC_ONLY))
def test_librdkafka_refuses_classic_settings_on_the_consumer_protocol(setting: str):
    classic = settings(session_timeout_ms=6000).consumer_config()
    consumer_protocol = settings(group_protocol="consumer").consumer_config()

    with pytest.raises(KafkaException, match=setting):
        Consumer({**consumer_protocol, setting: classic[setting]})


@pytest.mark.parametrize(
    ("commit_mode", "enable_auto_commit", "auto_commits"),
    [("auto", True, True), ("auto", False, False), ("after", True, False), ("before", True, False)],
)
def test_only_the_auto_commit_mode_lets_librdkafka_commit(commit_mode: str, enable_auto_commit: bool, auto_commits):
    config = settings(commit_mode=commit_mode, enable_auto_commit=enable_auto_commit).consumer_config()

    assert config["enable.auto.commit"] is auto_commits


def test_the_auto_commit_settings_are_passed_as_chosen():
    config = settings(auto_commit_interval_ms=300, enable_auto_offset_store=False).consumer_config()

    assert config["auto.commit.interval.ms"] == 300
    assert config["enable.auto.offset.store"] is False
    assert accepted_by_librdkafka(config)


def test_a_slow_consumer_is_not_thrown_out_of_the_group_for_its_processing_delay():
    assert settings(processing_delay_ms=0).consumer_config()["max.poll.interval.ms"] == 300_000
    assert settings(processing_delay_ms=120_000).consumer_config()["max.poll.interval.ms"] >= 4 * 120_000


def test_extra_settings_win():
    config = settings(extra={"auto.offset.reset": "latest"}).consumer_config()

    assert config["auto.offset.reset"] == "latest"


def reports(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_a_process_with_settings_it_cannot_use_reports_why_and_exits(capsys):
    bad = {"name": "c1", "topic": "t", "group_id": "g", "client": NOWHERE, "assignment_strategy": "sticky-ish"}

    assert main(["notification_service", json.dumps(bad)]) == 1

    [report] = reports(capsys.readouterr().out)
    assert report["event"] == "error" and report["fatal"] is True
    assert report["message"].startswith("could not start:")
    assert "sticky-ish" in report["message"]


def test_a_process_given_unknown_settings_reports_why_and_exits(capsys):
    assert main(["notification_service", json.dumps({"name": "c1", "colour": "blue"})]) == 1

    [report] = reports(capsys.readouterr().out)
    assert report["event"] == "error" and report["message"].startswith("could not start:")
