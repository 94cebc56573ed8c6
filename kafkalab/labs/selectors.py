"""Reading a lab: its live model (from the runner), state.json, one record for the inspector."""

from __future__ import annotations

from dataclasses import dataclass

from kafkalab.kafka import topics as kafka_topics
from kafkalab.kafka.admin import shared_admin
from kafkalab.kafka.config import bootstrap_servers, client_config
from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable
from kafkalab.kafka.partitioner import PartitionReason, explain_partition
from kafkalab.kafka.tail import CommittedView, read_committed_view, read_record
from kafkalab.labs import contract_selectors, events, records
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab
from kafkalab.runner.protocol import DLQ_VIEW, INVOICES_VIEW, ORDERS_VIEW, LabStateAsk, RunnerUnavailable, runner_ask


async def lab_model(*, lab_id: int) -> dict:
    """The lab's live model, as the runner holds it (it starts watching the lab if nobody does)."""
    try:
        answer = await runner_ask(lambda reply: LabStateAsk(lab_id=lab_id, reply_channel=reply))
    except RunnerUnavailable as exc:
        raise LabError(str(exc)) from exc
    if answer.error:
        raise LabError(answer.error)
    return answer.data


def lab_state(model: dict) -> dict:
    """state.json: the model without the lanes' records, plus where the cluster is and the
    group's lag over the last minutes, per partition. The dead-letter topic is among the topics
    (role "dlq") and, for short, under `dlq`; `poison` lists the orders topic's poison records."""
    lag_history = {str(lane["partition"]): lane["lag_history"] for lane in model["lanes"] if "lag_history" in lane}
    dlq = next((topic for topic in model["topics"] if topic["role"] == DLQ_VIEW), None)
    return {
        "lab": model["lab"],
        "cluster": {"bootstrap_servers": bootstrap_servers()},
        "topics": model["topics"],
        "dlq": dlq and {"topic": dlq["name"], "partitions": dlq["partitions"], "records": dlq["records"]},
        "poison": model.get("poison", []),
        # The lab has one group, and the lanes' committed offsets are its.
        "groups": [{**group, "lag_history": lag_history} for group in model["groups"]],
        "consumers": model["consumers"],
        "rebalances": model["rebalances"],
        "outbox": {key: value for key, value in model["outbox"].items() if key != "recent"},
        # OrderService's open transaction (None when none is open), and how the last one ended.
        "transaction": model.get("transaction"),
        "transaction_ended": model.get("transaction_ended"),
        # BillingService: its instances, and the invoices Kafka holds committed (counted per orderId).
        "billing": model.get("billing"),
    }


def lab_partition_count(*, lab: Lab) -> int | None:
    """The orders topic's partition count now, or None when Kafka cannot say."""
    try:
        return kafka_topics.partition_count(shared_admin(client_config()), lab.orders_topic)
    except (KafkaUnavailable, KafkaRefused):
        return None


@dataclass(frozen=True)
class EventDetail:
    partition: int
    offset: int
    key: str | None
    value: str
    value_is_json: bool
    headers: list[tuple[str, str]]
    timestamp_ms: int
    event_type: str
    reason: PartitionReason
    size_bytes: int
    # Encoding, schema id, subject and version, decoded value, wire bytes, each reader's verdict.
    contract: contract_selectors.RecordContract | None = None
    topic: str = ""  # the orders topic, or the dead-letter topic for a box of its lanes
    dead_letter: bool = False  # a record of the dead-letter topic: no key decided its partition
    # What a read_committed consumer makes of it (an orders record): reads, skips (aborted) or waits.
    read_committed: CommittedView | None = None


def lab_view_topic(*, lab: Lab, view: str) -> str:
    """The lab's topic behind a view of its lanes: its name is the lab's, never the request's."""
    topics = {ORDERS_VIEW: lab.orders_topic, DLQ_VIEW: lab.dlq_topic, INVOICES_VIEW: lab.invoices_topic}
    if view not in topics:
        raise LabError(f"This lab has no topic {view!r}.")
    return topics[view]


def event_inspect(*, lab: Lab, partition: int, offset: int, view: str | None = None) -> EventDetail:
    """One record as Kafka holds it, shown safely whatever its bytes, and why it is in its partition.
    `view`: which of the lab's topics (see lab_view_topic); the orders topic by default."""
    topic = lab_view_topic(lab=lab, view=view or ORDERS_VIEW)
    admin = shared_admin(client_config())
    try:
        partitions = kafka_topics.partition_count(admin, topic)
        found = partitions and partition < partitions
        record = read_record(topic, partition, offset, config=client_config()) if found else None
    except KafkaUnavailable as exc:
        raise LabError(f"Kafka did not answer: {exc}") from exc
    if record is None:
        raise LabError(f"There is no record at partition {partition}, offset {offset} (any more).")
    text, is_json = records.pretty_value(record.value)
    dead_letter = topic == lab.dlq_topic
    return EventDetail(
        partition=record.partition,
        offset=record.offset,
        key=records.display_key(record.key),
        value=text,
        value_is_json=is_json,
        headers=records.display_headers(record.headers),
        timestamp_ms=record.timestamp_ms,
        event_type=events.event_type_of(record.headers, record.value),
        reason=explain_partition(record.key, partitions, record.partition),
        size_bytes=len(record.value or b""),
        contract=contract_selectors.record_contract(
            value=record.value,
            event_type=contract_selectors.event_type_header(record.headers),
            subject=lab.value_subject,
        ),
        topic=topic,
        dead_letter=dead_letter,
        read_committed=None if dead_letter else read_committed_view(topic, partition, offset, config=client_config()),
    )
