"""What the lab tests look at from outside the app: the topic as Kafka holds it, and the lab's websocket.

The Kafka side uses plain confluent_kafka clients, not the app's own Kafka code, so a test checks
the app against Kafka rather than against itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

from channels.testing import WebsocketCommunicator
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.http import HttpResponse
from django.test import Client

from tests.factories import HTMX

# Bounds on waiting for Kafka or the page, not expectations of how long either takes.
KAFKA_TIMEOUT = 30.0
CLUSTER_UP_TIMEOUT = 120.0
SOCKET_TIMEOUT = 30.0
ORIGIN = (b"origin", b"http://127.0.0.1")


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def body(self) -> dict:
        return json.loads(self.value or b"")

    @property
    def event_type(self) -> str | None:
        raw = self.headers.get("event-type")
        return raw.decode() if raw is not None else None


@dataclass
class Learner:
    """A browser session and the lab it opened."""

    client: Client
    lab_id: int

    @property
    def topic(self) -> str:
        return f"lab-{self.lab_id}.orders"

    @property
    def session_id(self) -> str:
        return self.client.cookies[settings.SESSION_COOKIE_NAME].value

    def url(self, path: str = "") -> str:
        return f"/labs/{self.lab_id}/{path}"

    def post(self, path: str, data: dict | None = None, *, htmx: bool = True) -> HttpResponse:
        """A form post as the page's htmx sends it (or as a plain form when htmx=False)."""
        return self.client.post(self.url(path), data or {}, headers=HTMX if htmx else {})


def text(response: HttpResponse) -> str:
    return response.content.decode()


# --- Kafka, read from outside ------------------------------------------------------------------


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kafkalab-tests-{uuid.uuid4()}",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def partition_count(bootstrap: str, topic: str) -> int | None:
    """The topic's partition count in the cluster's metadata now, or None when there is no such topic."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=KAFKA_TIMEOUT)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def _watermarks(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """(log start, log end) of every partition, asked of the leaders; retried while a leader is being elected."""
    deadline = time.monotonic() + KAFKA_TIMEOUT
    while True:
        try:
            found = consumer.list_topics(topic=topic, timeout=10).topics[topic]
            if found.error is not None:
                raise KafkaException(found.error)
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                for p in sorted(found.partitions)
            }
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def log_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = _consumer(bootstrap)
    try:
        return {p: high for p, (_, high) in _watermarks(consumer, topic).items()}
    finally:
        consumer.close()


def log_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    consumer = _consumer(bootstrap)
    try:
        return _watermarks(consumer, topic)
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record in the topic up to its log ends now, ordered by partition and offset."""
    consumer = _consumer(bootstrap)
    try:
        marks = _watermarks(consumer, topic)
        unread = {p: high for p, (low, high) in marks.items() if high > low}
        consumer.assign([TopicPartition(topic, p, marks[p][0]) for p in unread])
        records: list[Record] = []
        deadline = time.monotonic() + KAFKA_TIMEOUT
        while unread:
            assert time.monotonic() < deadline, f"{topic}: could not read up to the log end of {sorted(unread)}"
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is not None:
                    continue
                records.append(
                    Record(
                        partition=message.partition(),
                        offset=message.offset(),
                        key=message.key(),
                        value=message.value(),
                        headers=dict(message.headers() or []),
                    )
                )
                if message.offset() + 1 >= unread.get(message.partition(), 0):
                    unread.pop(message.partition(), None)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def kcat_produce(bootstrap: str, topic: str, *, key: bytes | str, value: bytes, headers: list[bytes] = ()) -> None:
    """One record written by kcat, a librdkafka client with its defaults (CRC32 for keys). It
    passes header names as raw bytes, where the Python client sends str(name) for a bytes name."""
    key = key.encode() if isinstance(key, str) else key
    header_args = [arg for header in headers for arg in (b"-H", header)]
    done = subprocess.run(
        [b"kcat", b"-P", b"-b", bootstrap.encode(), b"-t", topic.encode(), b"-k", key, *header_args],
        input=value,
        capture_output=True,
        timeout=KAFKA_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def observer_threads() -> list[str]:
    """Names of the lab observer threads alive in this process."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("observer-lab-"))


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = KAFKA_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f}s"
        time.sleep(0.1)


# --- The lab's websocket ---------------------------------------------------------------------


def lab_socket(lab_id: int, *, session_id: str | None = None, share: str | None = None) -> WebsocketCommunicator:
    """A websocket to the lab through the app's real router, as the lab page opens it (the shared
    page adds `?share=<token>`)."""
    from kafkalab.asgi import application

    headers = [ORIGIN]
    if session_id is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_id}".encode()))
    query = "" if share is None else "?" + urlencode({"share": share})
    return WebsocketCommunicator(application, f"/ws/labs/{lab_id}/{query}", headers=headers)


@asynccontextmanager
async def lab_socket_open(
    lab_id: int, *, session_id: str | None, share: str | None = None
) -> AsyncIterator[WebsocketCommunicator]:
    """An accepted websocket to the lab, disconnected afterwards whatever happens."""
    socket = lab_socket(lab_id, session_id=session_id, share=share)
    try:
        connected, detail = await socket.connect(timeout=SOCKET_TIMEOUT)
        assert connected, f"the lab's websocket was refused with code {detail}"
        yield socket
    finally:
        if not socket.future.done():  # a receive that timed out has already cancelled the app
            await socket.disconnect()


async def receive_until(socket: WebsocketCommunicator, wanted: Callable[[str], bool], what: str) -> str:
    """The first fragment pushed over the socket that `wanted` accepts."""
    deadline = asyncio.get_running_loop().time() + SOCKET_TIMEOUT
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            fragment = await socket.receive_from(timeout=max(remaining, 0.01))
        except TimeoutError:
            raise AssertionError(f"no fragment with {what} arrived within {SOCKET_TIMEOUT:.0f}s") from None
        if wanted(fragment):
            return fragment


async def http_get(path: str, *, session_id: str | None = None) -> tuple[int, bytes]:
    """GET through the app's real ASGI stack (so the embedded lab runner answers), on this loop."""
    from channels.testing import HttpCommunicator

    from kafkalab.asgi import application

    headers = [(b"host", b"127.0.0.1")]
    if session_id is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_id}".encode()))
    response = await HttpCommunicator(application, "GET", path, headers=headers).get_response(timeout=SOCKET_TIMEOUT)
    return response["status"], response["body"]


async def state_json(learner: Learner) -> dict:
    status, body = await http_get(learner.url("state.json"), session_id=learner.session_id)
    assert status == 200, body[:500]
    return json.loads(body)


def event_box(fragment: str, key: str) -> tuple[int, int]:
    """(partition, offset) of the event box for `key` in a pushed fragment."""
    match = re.search(rf'data-partition="(\d+)" data-offset="(\d+)" data-key="{re.escape(key)}"', fragment)
    assert match, f"no event box for key {key!r} in {fragment[:500]}"
    return int(match.group(1)), int(match.group(2))


# --- A lab's read-only share link -------------------------------------------------------------

SHARE_URL = re.compile(r'data-share-url="[^"]*/share/([^/"]+)/"')


def share_token_in(html: str) -> str:
    """The token of the share link shown in the owner's share panel."""
    match = SHARE_URL.search(html)
    assert match, f"no share link in {html[:500]}"
    return match.group(1)


async def receive_close(socket: WebsocketCommunicator) -> tuple[int, list[str]]:
    """Everything the server sends until it closes the socket: (close code, fragments before it)."""
    fragments: list[str] = []
    deadline = asyncio.get_running_loop().time() + SOCKET_TIMEOUT
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            message = await socket.receive_output(timeout=max(remaining, 0.01))
        except TimeoutError:
            raise AssertionError(f"the server did not close the socket within {SOCKET_TIMEOUT:.0f}s") from None
        if message["type"] == "websocket.close":
            return message.get("code", 1000), fragments
        fragments.append(message.get("text") or "")
