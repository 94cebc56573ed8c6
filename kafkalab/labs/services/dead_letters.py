"""Replay DLQ: the lab's dead letters go back to its orders topic, to be read again.

A replay writes every dead letter since the last replay (at most LAB_MAX_BURST a click) back to
the orders topic in one Kafka transaction, which also moves the replay's cursor: all or nothing.
It is allowed while consumers run, since that is how a fixed reader gets the records; the
outcome says which running consumers would still fail them, and what their policy will do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from kafkalab.kafka import readers
from kafkalab.kafka.config import client_config
from kafkalab.kafka.consumer_config import LIVE_STATUSES, ConsumerConfig, FailurePolicy
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.replay import DeadLetter, dead_letters_replay
from kafkalab.kafka.schema_lookup import asked_once, registry_lookup
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab
from kafkalab.labs.services.topics import dead_letter_topic_ensure
from kafkalab.registry import registry_url

EVENT_TYPE_HEADER = "event-type"

WHAT_THE_POLICY_DOES = {
    FailurePolicy.CRASH: "it will crash on them again and block their partitions",
    FailurePolicy.SKIP: "it will skip them: missed emails",
    FailurePolicy.DEAD_LETTER: "it will set them aside in the dead-letter topic again",
    FailurePolicy.RETRY: "it will retry them, then set them aside in the dead-letter topic again",
}


@dataclass(frozen=True)
class StillFailing:
    """A running consumer whose reader can't read some of the replayed records either."""

    consumer: str
    reader: str
    policy: FailurePolicy
    count: int
    reason: str  # the first failure's, as its reader says it

    def __str__(self) -> str:
        return (
            f"{self.consumer}'s {self.reader} reader still can't read {self.count} of them "
            f"({self.reason}); {WHAT_THE_POLICY_DOES[self.policy]}."
        )


@dataclass(frozen=True)
class ReplayOutcome:
    topic: str
    replayed: int
    remaining: int
    still_failing: list[StillFailing] = field(default_factory=list)
    consumers_running: bool = True

    @property
    def message(self) -> str:
        if not self.replayed:
            return "Nothing to replay: no record was dead-lettered since the last replay."
        parts = [
            f"Replayed {self.replayed} dead letter(s) to {self.topic}, in one transaction that also "
            "moved the replay's cursor."
        ]
        if self.remaining:
            parts.append(f"{self.remaining} more wait: replay again for the next ones.")
        parts += [str(failing) for failing in self.still_failing]
        if not self.consumers_running:
            parts.append("No consumer is running: they wait in the topic until one reads them.")
        elif not self.still_failing:
            parts.append("Every running consumer's reader can read them.")
        return " ".join(parts)


def dlq_replay(*, lab: Lab) -> ReplayOutcome:
    """Write the dead letters no replay has reached back to the orders topic, all or nothing."""
    dead_letter_topic_ensure(lab=lab)  # a lab older than dead-letter topics has nothing to replay yet
    try:
        replay = dead_letters_replay(
            client_config(),
            dlq_topic=lab.dlq_topic,
            orders_topic=lab.orders_topic,
            replay_id=lab.dlq_replay_id,
            limit=settings.LAB_MAX_BURST,
        )
    except (KafkaUnavailable, KafkaRefused) as exc:
        raise LabError(f"Nothing was replayed: {exc}") from exc
    configs = _running_configs(lab)
    return ReplayOutcome(
        topic=lab.orders_topic,
        replayed=len(replay.letters),
        remaining=replay.remaining,
        still_failing=_still_failing(replay.letters, configs) if replay.letters else [],
        consumers_running=bool(configs),
    )


def _running_configs(lab: Lab) -> dict[str, ConsumerConfig]:
    found = {}
    for consumer in lab.consumers.filter(status__in=LIVE_STATUSES):
        try:
            found[consumer.name] = ConsumerConfig.from_dict(consumer.config)
        except (TypeError, ValueError):  # a config it can't start with: it reads nothing
            continue
    return found


def _still_failing(letters: list[DeadLetter], configs: dict[str, ConsumerConfig]) -> list[StillFailing]:
    """Each running consumer whose reader fails some of `letters`, read as it would read them."""
    lookup = asked_once(registry_lookup(registry_url()))
    found = []
    for name, config in sorted(configs.items()):
        failures = [failure for letter in letters if (failure := _failure(config.reader, letter, lookup))]
        if failures:
            found.append(
                StillFailing(
                    consumer=name,
                    reader=str(config.reader),
                    policy=config.failure_policy,
                    count=len(failures),
                    reason=str(failures[0]),
                )
            )
    return found


def _failure(reader: readers.Reader, letter: DeadLetter, lookup) -> readers.ReadFailure | None:
    try:
        readers.read_order(reader, letter.value, lookup, event_type=letter.header(EVENT_TYPE_HEADER))
    except readers.ReadFailure as failure:
        # A registry out of reach is not the record's fault: the consumer waits it out.
        return None if failure.kind == readers.Failure.REGISTRY_DOWN else failure
    return None
