"""ServiceSettings.consumer_config: what one NotificationService process asks librdkafka for.
Each config is also handed to a real librdkafka Consumer, which refuses invalid combinations.

And what the process reports of records any client may write: small lines, whatever the bytes,
read by the lab runner even when a line is too long for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException

from kafkalab.kafka.consumer_config import ConsumerConfig
from kafkalab.kafka.notification_service import NotificationService, ServiceSettings, main, report
from kafkalab.runner.processes import report_lines

CLASSIC_ONLY = {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"}
# Nothing listens there: librdkafka checks the config when the consumer is created.
NOWHERE = {"bootstrap.servers": "127.0.0.1:1"}


def settings(**config: object) -> ServiceSettings:
    """A process's settings with these consumer settings (ConsumerConfig's fields)."""
    return ServiceSettings(
        name="c1",
        topic="lab-1.orders",
        group_id="lab-1.order-notifications",
        client=NOWHERE,
        config=ConsumerConfig(**config),
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


@pytest.mark.parametrize("store", [True, False])
def test_the_process_stores_offsets_itself_so_that_it_can_store_a_poison_records_back(store: bool):
    config = settings(auto_commit_interval_ms=300, enable_auto_offset_store=store).consumer_config()

    assert config["auto.commit.interval.ms"] == 300
    # librdkafka refuses store_offsets() while it stores offsets itself, at hand-over.
    assert config["enable.auto.offset.store"] is False
    assert accepted_by_librdkafka(config)


def test_a_slow_consumer_is_not_thrown_out_of_the_group_for_its_processing_delay():
    assert settings(processing_delay_ms=0).consumer_config()["max.poll.interval.ms"] == 300_000
    assert settings(processing_delay_ms=120_000).consumer_config()["max.poll.interval.ms"] >= 4 * 120_000


def test_extra_settings_win():
    base = settings()
    config = ServiceSettings(
        name=base.name, topic=base.topic, group_id=base.group_id, client=NOWHERE, extra={"auto.offset.reset": "latest"}
    ).consumer_config()

    assert config["auto.offset.reset"] == "latest"


def reports(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_a_process_with_settings_it_cannot_use_reports_why_and_exits(capsys):
    bad = {
        "name": "c1",
        "topic": "t",
        "group_id": "g",
        "client": NOWHERE,
        "config": {"assignment_strategy": "sticky-ish"},
    }

    assert main(["notification_service", json.dumps(bad)]) == 1

    [report] = reports(capsys.readouterr().out)
    assert report["event"] == "error" and report["fatal"] is True
    assert report["message"].startswith("could not start:")
    assert "sticky-ish" in report["message"]


def test_a_process_given_unknown_settings_reports_why_and_exits(capsys):
    assert main(["notification_service", json.dumps({"name": "c1", "colour": "blue"})]) == 1

    [report] = reports(capsys.readouterr().out)
    assert report["event"] == "error" and report["message"].startswith("could not start:")


# --- Records any client may write: the process reports them in small lines, and lives on -----

DEEP = b"[" * 5000 + b"]" * 5000
MEGABYTE_OF_FF = b"\xff" * 1_000_000
# A bound on one report line far below the lab runner's reader limit (1 MiB).
SMALL_LINE = 4096


def order_value(order_id: object = "o-1") -> bytes:
    """An order the tolerant reader can read, with this orderId (JSON-encoded as given)."""
    return json.dumps({"orderId": order_id, "customerId": "c-1", "items": []}).encode()


class ForeignMessage:
    """Stands in for a confluent_kafka.Message (which Python cannot create) as another client wrote it."""

    def __init__(self, *, key: bytes | None = b"k", value: bytes | None = None, headers=None, offset: int = 7):
        self._key, self._value, self._headers, self._offset = key, value, headers, offset
        if value is None:
            self._value = order_value()

    def topic(self) -> str:
        return "lab-1.orders"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self):
        if self._headers == "not UTF-8":
            # What confluent-kafka 2.16 does with a header name that is not UTF-8.
            raise SystemError("<method 'headers' of 'cimpl.Message' objects> returned a result with an exception set")
        return self._headers


@pytest.fixture
def service() -> Iterator[NotificationService]:
    # Skip (the default policy) with nothing to commit: no call needs the unreachable brokers.
    service = NotificationService(settings(enable_auto_commit=False))
    yield service
    service.consumer.close()


def handled(service: NotificationService, message: ForeignMessage, capsys) -> dict[str, dict]:
    service._handle(message)
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= SMALL_LINE for line in lines), [len(line) for line in lines]
    return {report["event"]: report for report in map(json.loads, lines)}


def test_a_megabyte_key_of_invalid_utf8_is_reported_cut_short(service, capsys):
    reports = handled(service, ForeignMessage(key=MEGABYTE_OF_FF), capsys)

    assert reports["received"]["key"] == "\ufffd" * 200
    assert reports["emailed"]["partition"] == 1 and reports["emailed"]["offset"] == 7


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (DEEP, "not-decodable"),
        (MEGABYTE_OF_FF, "not-decodable"),
        (b"not JSON", "not-decodable"),
        (b"", "not-decodable"),
        (b"42", "contract"),
        (b"[1]", "contract"),
        (b'{"orderId": {"nested": "o-1"}}', "contract"),
        (b"\x00\xff\xff\xff\xff anything", "unknown-schema-id"),
    ],
    ids=["deep", "ff", "text", "empty", "number", "list", "object orderId", "unknown schema id"],
)
def test_a_value_its_reader_cannot_read_is_skipped_with_a_short_reason(service, capsys, value: bytes, reason: str):
    service.lookup = no_such_schema

    reports = handled(service, ForeignMessage(value=value), capsys)

    assert "emailed" not in reports, "no email for it: a missed email"
    assert (reports["poison"]["action"], reports["poison"]["reason"]) == ("skipped", reason)
    assert reports["poison"]["message"]


def no_such_schema(schema_id: int) -> tuple[str, str]:
    """A registry that answers it has no schema of that id (40403)."""
    raise LookupError(schema_id)


@pytest.mark.parametrize("order_id", [42, [1, 2], None, True])
def test_an_order_id_that_is_not_a_string_is_poison_to_the_tolerant_reader(service, capsys, order_id: object):
    reports = handled(service, ForeignMessage(value=order_value(order_id)), capsys)

    assert reports["poison"]["reason"] == "contract" and "orderId" in reports["poison"]["message"]


def test_a_string_order_id_is_cut_to_64_characters_and_made_valid_utf8(service, capsys):
    long_id = handled(service, ForeignMessage(value=order_value("o" * 100_000)), capsys)
    surrogates = handled(service, ForeignMessage(value=order_value("\udc00abc")), capsys)
    script = handled(service, ForeignMessage(value=order_value("<script>x</script>")), capsys)

    assert long_id["emailed"]["order_id"] == "o" * 64
    assert surrogates["emailed"]["order_id"] == "\ufffd\ufffd\ufffdabc"
    assert script["emailed"]["order_id"] == "<script>x</script>", "escaping is for whoever shows it"


def test_header_names_that_are_not_utf8_cost_only_the_event_type(service, capsys):
    reports = handled(service, ForeignMessage(headers="not UTF-8"), capsys)

    assert reports["emailed"]["order_id"] == "o-1"
    assert reports["emailed"]["event_type"] is None


def test_the_event_type_header_is_reported_cut_short(service, capsys):
    reports = handled(service, ForeignMessage(headers=[("event-type", MEGABYTE_OF_FF), ("x", None)]), capsys)

    assert reports["emailed"]["event_type"] == "\ufffd" * 40


def test_any_text_in_a_report_is_bounded(capsys):
    report("error", message="x" * 1_000_000, fatal=False)

    [line] = capsys.readouterr().out.splitlines()
    assert len(line) <= SMALL_LINE
    assert json.loads(line)["message"] == "x" * 1000


# --- The lab runner reads those lines: one it cannot hold is skipped, and it reads on ---------


async def lines_read(chunks: list[bytes], *, limit: int) -> list[bytes]:
    reader = asyncio.StreamReader(limit=limit)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return [line async for line in report_lines(reader, limit=limit, what="test")]


async def test_the_runner_skips_a_report_line_longer_than_its_limit_and_reads_on():
    long_line = b'{"event":"received","key":"' + b"x" * 300_000 + b'"}\n'
    chunks = [b'{"event":"started"}\n', long_line[:100_000], long_line[100_000:], b'{"event":"stopped"}\n']

    assert await lines_read(chunks, limit=1000) == [b'{"event":"started"}', b'{"event":"stopped"}']


async def test_the_runner_skips_a_long_line_that_arrives_in_one_piece():
    data = b"a\n" + b"x" * 5000 + b"\nb\n" + b"y" * 5000  # the last line never ends

    assert await lines_read([data], limit=1000) == [b"a", b"b"]
    assert await lines_read([b"a\nb"], limit=1000) == [b"a", b"b"]
