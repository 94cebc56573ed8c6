"""Where web code and the lab runner meet: channel names, typed messages, and how to send them.

Web code (views, websocket consumers, services) sends *commands* to the runner on one channel;
the runner publishes *updates* to each lab's group, as plain data that every websocket consumer
renders for its own viewer. Nothing else spells a channel name or a message type.

Every message travels through the channel layer (in memory, or msgpack over Redis), so its
fields are plain JSON-like data: str, int, float, bool, None, lists, and dicts with str keys.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

RUNNER_CHANNEL = "lab-runner"
CLUSTER_GROUP = "cluster"
# How long a web request waits for the runner to answer before telling the learner it is busy.
ASK_TIMEOUT_SECONDS = 20.0
# The topics a lab draws as lanes ("views"), named in the lanes, appends and views of updates: the
# orders topic (the model's `lanes`, read by the lab's group) and the others (its `views`).
ORDERS_VIEW = "orders"
DLQ_VIEW = "dlq"
INVOICES_VIEW = "invoices"


def lab_group(lab_id: int) -> str:
    """The channel-layer group of a lab's viewers."""
    return f"lab.{lab_id}"


def classroom_group(classroom_id: int) -> str:
    """The group of a classroom's dashboards: its labs' summaries and roster changes."""
    return f"classroom.{classroom_id}"


def classroom_learners_group(classroom_id: int) -> str:
    """The group of a classroom's learners' lab pages: the banner and "Follow me"."""
    return f"classroom.{classroom_id}.learners"


class RunnerUnavailable(Exception):
    """The lab runner did not answer in time."""


@dataclass(frozen=True)
class Message:
    """A message with a channel-layer `type`; Channels calls the handler named after it
    ("lab.watch" → `lab_watch`)."""

    type: ClassVar[str]

    def as_message(self) -> dict[str, Any]:
        # Shallow: the fields are plain data already, and a model is too big to copy for nothing.
        return {"type": self.type, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    @classmethod
    def parse(cls, message: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in message.items() if name in names})


# --- Commands: web → runner --------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterWatch(Message):
    """A page wants live broker health; the runner answers on `reply_channel`, then updates the group."""

    type: ClassVar[str] = "cluster.watch"
    reply_channel: str


@dataclass(frozen=True)
class LabWatch(Message):
    """A viewer opened the lab: keep its observer running and send it the whole model. `owner`:
    the viewer is the lab's own learner (a classroom's dashboard shows them online)."""

    type: ClassVar[str] = "lab.watch"
    lab_id: int
    reply_channel: str
    owner: bool = False


@dataclass(frozen=True)
class LabUnwatch(Message):
    type: ClassVar[str] = "lab.unwatch"
    lab_id: int
    owner: bool = False


@dataclass(frozen=True)
class ClassroomWatch(Message):
    """A dashboard opened: keep these labs' observers running, and send each one's summary to
    `reply_channel` (later ones go to the classroom's group)."""

    type: ClassVar[str] = "classroom.watch"
    lab_ids: list[int]
    reply_channel: str


@dataclass(frozen=True)
class ClassroomUnwatch(Message):
    type: ClassVar[str] = "classroom.unwatch"
    lab_ids: list[int]


@dataclass(frozen=True)
class LabDelete(Message):
    """Delete the lab now (its classroom closed): stop its processes, tell its viewers `reason`,
    delete its topics, group and rows."""

    type: ClassVar[str] = "lab.delete"
    lab_id: int
    reason: str


@dataclass(frozen=True)
class LabStateAsk(Message):
    """state.json: the runner answers with the lab's model (watching it for a while if nobody is)."""

    type: ClassVar[str] = "lab.state.ask"
    lab_id: int
    reply_channel: str


@dataclass(frozen=True)
class LabReap(Message):
    """Before a reset or expiry: stop every consumer process of the lab, then answer."""

    type: ClassVar[str] = "lab.reap"
    lab_id: int
    reply_channel: str


@dataclass(frozen=True)
class LabReset(Message):
    """The lab's topics and group were made afresh: forget what was seen."""

    type: ClassVar[str] = "lab.reset"
    lab_id: int


@dataclass(frozen=True)
class LabForget(Message):
    """The lab is gone (expired or deleted): drop everything the runner holds for it."""

    type: ClassVar[str] = "lab.forget"
    lab_id: int
    reason: str


@dataclass(frozen=True)
class LabRefresh(Message):
    """Partitions changed: look now rather than at the next periodic check."""

    type: ClassVar[str] = "lab.refresh"
    lab_id: int


@dataclass(frozen=True)
class LessonChanged(Message):
    """The lab's lesson was begun or switched: load its current step and check it from now on."""

    type: ClassVar[str] = "lesson.changed"
    lab_id: int


@dataclass(frozen=True)
class RegistryChanged(Message):
    """The registry registered or refused a schema, or set a level, for one of the lab's subjects
    (whichever client asked): the lab's lesson may be waiting for it."""

    type: ClassVar[str] = "registry.changed"
    lab_id: int
    subject: str
    action: str  # "registered", "refused" or "level"
    at: float
    version: int | None = None
    schema_id: int | None = None
    level: str | None = None
    message: str = ""


@dataclass(frozen=True)
class ConsumerStart(Message):
    type: ClassVar[str] = "consumer.start"
    lab_id: int
    name: str


@dataclass(frozen=True)
class ConsumerStop(Message):
    type: ClassVar[str] = "consumer.stop"
    lab_id: int
    name: str


@dataclass(frozen=True)
class ConsumerKill(Message):
    type: ClassVar[str] = "consumer.kill"
    lab_id: int
    name: str


# BillingService instances (kafkalab.runner.billing): started, stopped, killed like consumers.


@dataclass(frozen=True)
class BillingStart(Message):
    type: ClassVar[str] = "billing.start"
    lab_id: int
    name: str


@dataclass(frozen=True)
class BillingStop(Message):
    type: ClassVar[str] = "billing.stop"
    lab_id: int
    name: str


@dataclass(frozen=True)
class BillingKill(Message):
    type: ClassVar[str] = "billing.kill"
    lab_id: int
    name: str


# OrderService's transaction (kafkalab.runner.transactions): the runner holds the lab's one
# transactional producer, and answers each of these with `data` or an `error` for the learner.


@dataclass(frozen=True)
class TxnBegin(Message):
    """Begin a transaction, with this transaction.timeout.ms."""

    type: ClassVar[str] = "txn.begin"
    lab_id: int
    reply_channel: str
    timeout_ms: int


@dataclass(frozen=True)
class TxnProduce(Message):
    """Write records into the open transaction `transaction` (its key); answered with where Kafka
    put each: {"delivered": [[partition, offset, timestamp_ms], …]}. Records are plain data
    (txn_record): keys, values and header values as base64."""

    type: ClassVar[str] = "txn.produce"
    lab_id: int
    reply_channel: str
    transaction: str
    records: list[dict[str, Any]]
    partitioner: str = "murmur2_random"


@dataclass(frozen=True)
class TxnCommit(Message):
    type: ClassVar[str] = "txn.commit"
    lab_id: int
    reply_channel: str


@dataclass(frozen=True)
class TxnAbort(Message):
    type: ClassVar[str] = "txn.abort"
    lab_id: int
    reply_channel: str


def txn_record(*, key: bytes | None, value: bytes, headers: list[tuple[str, bytes | None]]) -> dict[str, Any]:
    """A record as TxnProduce carries it."""
    return {"key": _b64(key), "value": _b64(value), "headers": [[name, _b64(raw)] for name, raw in headers]}


def txn_record_parts(record: dict[str, Any]) -> tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]:
    """(key, value, headers) of a record txn_record made."""
    headers = [(str(name), _unb64(raw)) for name, raw in record.get("headers", [])]
    return _unb64(record.get("key")), _unb64(record.get("value")) or b"", headers


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


# --- Replies: runner → one asker ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply(Message):
    type: ClassVar[str] = "runner.reply"
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# --- Updates: runner → a lab's viewers (plain data; each viewer renders its own HTML) -------------


@dataclass(frozen=True)
class LabLesson(Message):
    """A step of the lab's lesson passed (or became current): viewers redraw the lesson panel."""

    type: ClassVar[str] = "lab.lesson"
    lesson: str
    passed: str | None = None


@dataclass(frozen=True)
class LabModel(Message):
    """The whole model: sent to a viewer that just connected, and to all after a reset."""

    type: ClassVar[str] = "lab.model"
    model: dict[str, Any]


@dataclass(frozen=True)
class LabRecords(Message):
    """New records per partition (newest last) and the lanes' offsets now."""

    type: ClassVar[str] = "lab.records"
    appends: list[dict[str, Any]]
    lanes: list[dict[str, Any]]


@dataclass(frozen=True)
class LabPanels(Message):
    """The group, consumers, rebalance timeline, outbox and the lanes' offsets, when they changed."""

    type: ClassVar[str] = "lab.panels"
    panels: dict[str, Any]


@dataclass(frozen=True)
class LabClosed(Message):
    """Viewers must leave: the lab expired or was deleted, or a share link was revoked."""

    type: ClassVar[str] = "lab.closed"
    reason: str
    observers_only: bool = False


# --- Updates: a classroom's dashboards and learners -------------------------------------------


@dataclass(frozen=True)
class LabSummary(Message):
    """One lab's line on the dashboard, when it changed (kafkalab.runner.model.lab_summary)."""

    type: ClassVar[str] = "classroom.summary"
    lab_id: int
    summary: dict[str, Any]


@dataclass(frozen=True)
class ClassroomRoster(Message):
    """A learner joined, or a lab was reset or deleted: the dashboard reads that learner again."""

    type: ClassVar[str] = "classroom.roster"
    lab_id: int | None = None


@dataclass(frozen=True)
class ClassroomNotice(Message):
    """The instructor's banner and whether "Follow me" is on, for every learner's page."""

    type: ClassVar[str] = "classroom.notice"
    classroom_id: int


@dataclass(frozen=True)
class ClusterUpdate(Message):
    type: ClassVar[str] = "cluster.update"
    health: dict[str, Any]


# --- Sending ---------------------------------------------------------------------------------------


async def runner_send(command: Message, *, layer=None) -> None:
    await (layer or get_channel_layer()).send(RUNNER_CHANNEL, command.as_message())


def runner_send_sync(command: Message) -> None:
    async_to_sync(runner_send)(command)


async def runner_ask(make_command, *, timeout: float = ASK_TIMEOUT_SECONDS) -> Reply:
    """Send the command built by `make_command(reply_channel)` and wait for the runner's reply."""
    layer = get_channel_layer()
    reply_channel = await layer.new_channel(prefix=f"ask.{uuid.uuid4().hex[:8]}")
    await runner_send(make_command(reply_channel), layer=layer)
    try:
        async with asyncio.timeout(timeout):
            message = await layer.receive(reply_channel)
    except TimeoutError as exc:
        raise RunnerUnavailable(f"The lab runner did not answer within {timeout:.0f} s. Try again.") from exc
    return Reply.parse(message)


def runner_ask_sync(make_command, *, timeout: float = ASK_TIMEOUT_SECONDS) -> Reply:
    return async_to_sync(runner_ask)(make_command, timeout=timeout)


async def reply(layer, reply_channel: str, *, data: dict[str, Any] | None = None, error: str | None = None) -> None:
    await layer.send(reply_channel, Reply(data=data or {}, error=error).as_message())


async def lab_publish(layer, lab_id: int, update: Message) -> None:
    await layer.group_send(lab_group(lab_id), update.as_message())


async def classroom_publish(layer, group: str, update: Message) -> None:
    await layer.group_send(group, update.as_message())


def classroom_publish_sync(group: str, update: Message) -> None:
    async_to_sync(classroom_publish)(get_channel_layer(), group, update)


SELF_SEND_ATTEMPTS = 30


def send_later(layer, channel: str, message: dict[str, Any], *, delay: float) -> None:
    """Send `message` to a consumer's own `channel` after `delay` seconds, so that it is handled in
    turn with the updates, never beside one. A channel full of updates (a busy page) is tried again
    after another `delay`, a few times: a lost timer would leave the consumer waiting for good."""
    loop = asyncio.get_running_loop()

    async def send(attempt: int) -> None:
        try:
            await layer.send(channel, message)
        except ChannelFull:
            if attempt < SELF_SEND_ATTEMPTS:
                loop.call_later(delay, schedule, attempt + 1)

    def schedule(attempt: int) -> None:
        loop.create_task(send(attempt))

    loop.call_later(delay, schedule, 1)
