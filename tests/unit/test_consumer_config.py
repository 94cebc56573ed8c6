"""ConsumerConfig: one type for a consumer's settings, from the form to the process."""

from __future__ import annotations

import pytest

from kafkalab.kafka.consumer_config import (
    LIVE_STATUSES,
    CommitMode,
    ConsumerConfig,
    ConsumerStatus,
    IsolationLevel,
)
from kafkalab.labs.forms import ConsumerConfigForm


def test_defaults_are_librdkafkas_where_the_lab_has_no_reason_to_differ():
    config = ConsumerConfig()

    assert config.isolation_level == IsolationLevel.READ_COMMITTED, "librdkafka's default, not the Java client's"
    assert config.commit_mode == CommitMode.AUTO and config.auto_commits
    assert config.kafka_settings()["isolation.level"] == "read_committed"


def test_it_travels_as_plain_json_and_comes_back_the_same():
    config = ConsumerConfig(isolation_level="read_uncommitted", commit_mode="after", session_timeout_ms=6000)

    data = config.as_dict()

    assert data["isolation_level"] == "read_uncommitted" and type(data["isolation_level"]) is str
    assert ConsumerConfig.from_dict(data) == config


def test_a_stored_config_missing_newer_fields_takes_their_defaults():
    old = {"assignment_strategy": "roundrobin", "commit_mode": "auto", "no_longer_a_field": 1}

    config = ConsumerConfig.from_dict(old)

    assert config.assignment_strategy == "roundrobin"
    assert config.isolation_level == IsolationLevel.READ_COMMITTED


def test_an_unknown_value_is_refused_with_its_name():
    with pytest.raises(ValueError, match="sticky-ish"):
        ConsumerConfig.from_dict({"assignment_strategy": "sticky-ish"})


def test_manual_commits_turn_auto_commit_off():
    config = ConsumerConfig(commit_mode="after", enable_auto_commit=True)

    assert config.enable_auto_commit is False
    assert config.kafka_settings()["enable.auto.commit"] is False


def test_the_form_offers_exactly_the_configs_choices_and_defaults():
    form = ConsumerConfigForm()

    assert form.fields["isolation_level"].initial == ConsumerConfig().isolation_level
    assert [value for value, _ in form.fields["isolation_level"].choices] == [m.value for m in IsolationLevel]
    labels = dict(form.fields["isolation_level"].choices)
    assert "librdkafka" in labels["read_committed"] and "Java" in labels["read_uncommitted"]


def test_the_form_builds_the_config_it_validated():
    data = {**ConsumerConfig().as_dict(), "isolation_level": "read_uncommitted", "commit_mode": "before"}
    form = ConsumerConfigForm({k: ("on" if v is True else v) for k, v in data.items() if v is not False})

    assert form.is_valid(), form.errors
    assert form.config() == ConsumerConfig(isolation_level="read_uncommitted", commit_mode="before")


def test_live_statuses_are_the_ones_with_a_process():
    assert {s for s in ConsumerStatus if s.is_live} == set(LIVE_STATUSES)
    assert {ConsumerStatus.STARTING, ConsumerStatus.RUNNING, ConsumerStatus.STOPPING} == LIVE_STATUSES
