"""ConsumerConfig: one type for a consumer's settings, from the form to the process."""

from __future__ import annotations

import pytest

from kafkalab.kafka.consumer_config import (
    LIVE_STATUSES,
    RETRY_ATTEMPTS,
    RETRY_BACKOFF_MS,
    CommitMode,
    ConsumerConfig,
    ConsumerStatus,
    FailurePolicy,
    IsolationLevel,
    Reader,
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


def test_live_statuses_are_the_ones_with_a_process_or_one_about_to_start():
    assert {s for s in ConsumerStatus if s.is_live} == set(LIVE_STATUSES)
    # A crash-looping consumer waiting for its restart holds its place, and Stop ends its loop.
    assert {
        ConsumerStatus.STARTING,
        ConsumerStatus.RUNNING,
        ConsumerStatus.STOPPING,
        ConsumerStatus.RESTARTING,
    } == LIVE_STATUSES


# --- Readers and failure policies -------------------------------------------------------------


def test_a_consumer_reads_tolerantly_and_skips_what_it_cannot_read_unless_told_otherwise():
    config = ConsumerConfig()

    assert (config.reader, config.failure_policy) == (Reader.TOLERANT, FailurePolicy.SKIP)
    assert not config.dead_letters, "skipping needs no dead-letter topic"


@pytest.mark.parametrize(
    ("policy", "dead_letters"),
    [("crash", False), ("skip", False), ("dead-letter", True), ("retry", True)],
)
def test_dead_letter_and_retry_write_to_the_dead_letter_topic(policy: str, dead_letters: bool):
    assert ConsumerConfig(failure_policy=policy).dead_letters is dead_letters


def test_retry_waits_double_each_time_up_to_a_cap():
    config = ConsumerConfig(failure_policy="retry", retry_backoff_ms=500)

    assert [config.retry_wait_ms(n, cap_ms=3000) for n in (1, 2, 3, 4, 5)] == [500, 1000, 2000, 3000, 3000]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"retry_attempts": 6}, "retry_attempts"),
        ({"retry_backoff_ms": 99}, "retry_backoff_ms"),
        ({"retry_backoff_ms": 10_001}, "retry_backoff_ms"),
        ({"retry_attempts": "3"}, "retry_attempts"),
        ({"retry_attempts": True}, "retry_attempts"),
        ({"reader": "lenient"}, "lenient"),
        ({"failure_policy": "ignore"}, "ignore"),
    ],
)
def test_a_stored_config_out_of_bounds_is_refused_with_its_name(bad: dict, named: str):
    with pytest.raises(ValueError, match=named):
        ConsumerConfig.from_dict(bad)


def test_the_reader_and_policy_travel_as_plain_json():
    config = ConsumerConfig(reader="strict", failure_policy="retry", retry_attempts=5, retry_backoff_ms=100)

    data = config.as_dict()

    assert (data["reader"], data["failure_policy"]) == ("strict", "retry")
    assert ConsumerConfig.from_dict(data) == config


def form_for(**fields: object) -> ConsumerConfigForm:
    data = {**ConsumerConfig().as_dict(), **fields}
    return ConsumerConfigForm({k: ("on" if v is True else v) for k, v in data.items() if v is not False})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retry_attempts", RETRY_ATTEMPTS[0] - 1),
        ("retry_attempts", RETRY_ATTEMPTS[1] + 1),
        ("retry_backoff_ms", RETRY_BACKOFF_MS[0] - 1),
        ("retry_backoff_ms", RETRY_BACKOFF_MS[1] + 1),
        ("reader", "lenient"),
        ("failure_policy", "ignore"),
    ],
)
def test_the_form_refuses_what_the_config_would_with_a_message(field: str, value: object):
    form = form_for(**{field: value})

    assert not form.is_valid()
    assert form.errors[field], "the learner reads why, beside the field"


def test_the_form_takes_every_reader_and_policy_at_their_bounds():
    for reader in Reader:
        for policy in FailurePolicy:
            form = form_for(
                reader=reader,
                failure_policy=policy,
                retry_attempts=RETRY_ATTEMPTS[1],
                retry_backoff_ms=RETRY_BACKOFF_MS[0],
            )
            assert form.is_valid(), form.errors
            assert (form.config().reader, form.config().failure_policy) == (reader, policy)


def test_the_form_explains_readers_and_policies_to_a_newcomer():
    form = ConsumerConfigForm()

    assert "sku" in form.fields["reader"].help_text
    assert all(word in form.fields["failure_policy"].help_text for word in ("Crash", "Skip", "Dead-letter", "Retry"))
    assert form.fields["failure_policy"].initial == FailurePolicy.SKIP
