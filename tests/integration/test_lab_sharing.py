"""A read-only share link: whoever holds it watches the lab live, with no control, and acts on nothing.

The owner's session gets the consumer cards' buttons and the forms; the holder of /share/<token>/
gets the same live lab without a button, a form or a form's CSRF token. Every action from the observer's
session is refused with 403 and changes nothing in Kafka; an observer socket that sends anything
is closed (4403); revoking the link closes the observers' sockets and the link stops working.
Kafka's side is read with plain confluent_kafka clients (lab_support), not the app's own code.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psutil
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from kafkalab.labs.consumers import LabConsumer
from kafkalab.labs.models import Lab, LabOrder, NotificationConsumer
from tests.factories import HTMX, order_form_data
from tests.integration.consumer_groups.support import SERVICE_MODULE, consumer_form
from tests.integration.lab_support import (
    Learner,
    event_box,
    http_get,
    lab_socket,
    lab_socket_open,
    log_ends,
    partition_count,
    receive_close,
    receive_until,
    share_token_in,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
OWNER_BUTTONS = ("Stop", "Kill", "Restart", "Create order", "Burst", "Reset lab", "Add consumer", "Share read-only")
LANES = 'data-lane="3"'  # the last of the topic's four lanes: the whole lanes panel arrived


# --- helpers ---------------------------------------------------------------------------------


async def share(owner: Learner) -> str:
    """The owner clicks "Share read-only"; the token of the link its share panel shows."""
    response = await sync_to_async(owner.post)("share/")
    assert response.status_code == 200, text(response)
    assert "Stop sharing" in text(response)
    return share_token_in(text(response))


async def get(client: Client, path: str, *, htmx: bool = False):
    return await sync_to_async(client.get)(path, headers=HTMX if htmx else {})


def card(fragment: str, name: str, status: str | None = None) -> str | None:
    """The consumer card for `name` (in `status`, if given) in a pushed fragment, or None."""
    status_attr = rf'[^>]*data-status="{status}"' if status else ""
    match = re.search(rf'<article[^>]*data-consumer="{name}"{status_attr}[^>]*>.*?</article>', fragment, re.S)
    return match.group(0) if match else None


def has_card(name: str, status: str) -> Callable[[str], bool]:
    return lambda fragment: card(fragment, name, status) is not None


def has_box(key: str) -> Callable[[str], bool]:
    return lambda fragment: f'data-key="{key}"' in fragment


DISPLAY_TOGGLE = re.compile(r"<button[^>]*\bdata-display-toggle\b[^>]*>[^<]*</button>")


def assert_read_only(html: str) -> None:
    """No control of any kind: nothing to click, fill in or post, and no form token. (The page's
    own Large display switch, in every page's header, changes only how this browser draws it.)"""
    html = DISPLAY_TOGGLE.sub("", html)
    assert "<form" not in html
    assert "<button" not in html
    assert "<input" not in html and "<select" not in html and "<textarea" not in html
    assert "csrfmiddlewaretoken" not in html
    assert "hx-post" not in html


class Recorder:
    """Keeps every fragment a socket received, so a test can check all of them, not only the awaited ones."""

    def __init__(self, socket: WebsocketCommunicator) -> None:
        self.socket = socket
        self.fragments: list[str] = []

    async def until(self, wanted: Callable[[str], bool], what: str) -> str:
        def keep(fragment: str) -> bool:
            self.fragments.append(fragment)
            return wanted(fragment)

        return await receive_until(self.socket, keep, what)


def consumer_processes() -> list[psutil.Process]:
    """NotificationService processes this test process started (the in-process runner's children)."""
    found = []
    for child in psutil.Process().children():
        try:
            if SERVICE_MODULE in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@asynccontextmanager
async def running_consumer(owner: Learner, owner_socket: Recorder) -> AsyncIterator[str]:
    """The owner clicks "Add consumer": a real NotificationService process joins the lab's group.
    Killed (the owner's Kill button) when the block ends, and none of its processes outlives it."""
    response = await sync_to_async(owner.post)("consumers/", consumer_form())
    assert response.status_code == 200, text(response)
    assert "Starting c1" in text(response)
    try:
        yield "c1"
    finally:
        try:
            killed = await sync_to_async(owner.post)("consumers/c1/kill/")
            assert killed.status_code == 200, text(killed)
            await owner_socket.until(has_card("c1", "killed"), "c1 killed")
        finally:
            left = consumer_processes()
            for process in left:  # never leave a process behind, even when the test fails
                process.kill()
            assert left == [], "a NotificationService process outlived its test"


# --- tests -----------------------------------------------------------------------------------


async def test_the_share_link_shows_the_lab_live_and_read_only(kafka_cluster, learner: Learner, open_lab):
    token = await share(learner)
    assert await sync_to_async(Lab.objects.values_list("share_token", flat=True).get)(pk=learner.lab_id) == token
    other_client = Client()  # a learner with a lab of their own opens the link
    other = Learner(client=other_client, lab_id=await sync_to_async(open_lab)(other_client))

    shared = await get(other.client, f"/share/{token}/")
    assert shared.status_code == 200
    page = text(shared)
    assert_read_only(page)
    for name in OWNER_BUTTONS:
        assert f">{name}</button>" not in page
    assert f'ws-connect="/ws/labs/{learner.lab_id}/?share={token}"' in page
    assert "read-only" in page
    assert "data-share-url" not in page, "the observer can't pass the link on from the page"
    owner_page = text(await get(learner.client, learner.url()))
    assert f"/share/{token}/" in owner_page and "Stop sharing" in owner_page

    async with (
        lab_socket_open(learner.lab_id, session_id=learner.session_id) as owner_raw,
        lab_socket_open(learner.lab_id, session_id=other.session_id, share=token) as observer_raw,
    ):
        owner, observer = Recorder(owner_raw), Recorder(observer_raw)
        owner_lanes = await owner.until(lambda f: LANES in f, "the owner's lanes")
        await observer.until(lambda f: LANES in f, "the observer's lanes")
        assert "Add a consumer." in owner_lanes, "the owner is told what to do"
        await observer.until(lambda f: "No NotificationService is running" in f, "the observer's group panel")
        assert not any("Add a consumer." in f for f in observer.fragments), "the observer has nothing to do"

        async with running_consumer(learner, owner) as name:
            owner_card = card(await owner.until(has_card(name, "running"), "c1 running, for the owner"), name)
            assert ">Stop</button>" in owner_card and ">Kill</button>" in owner_card
            assert f'hx-post="/labs/{learner.lab_id}/consumers/{name}/kill/"' in owner_card
            observer_card = card(await observer.until(has_card(name, "running"), "c1 running, for the observer"), name)
            assert_read_only(observer_card)
            assert re.sub(r'<div class="actions">.*?</div>\s*', "", owner_card, flags=re.S).split() == (
                observer_card.split()
            ), "the same card, less its buttons"

            order_id = "shared-0001"
            created = await sync_to_async(learner.post)("orders/", order_form_data(order_id=order_id))
            assert created.status_code == 200, text(created)
            at = event_box(await owner.until(has_box(order_id), "the order, for the owner"), order_id)
            observer_fragment = await observer.until(has_box(order_id), "the order, for the observer")
            assert event_box(observer_fragment, order_id) == at
            assert f"partition <strong>{at[0]}</strong>, offset <strong>{at[1]}</strong>" in text(created)
            inspect = f"/labs/{learner.lab_id}/events/{at[0]}/{at[1]}/"
            assert f'href="{inspect}?share={token}"' in observer_fragment, "the observer's boxes open the inspector"
            assert any(f'href="{inspect}"' in f for f in owner.fragments), "the owner's boxes need no token"

            # The inspector and state.json answer the link's holder, and only with the link.
            for htmx in (False, True):
                inspector = await get(other.client, f"{inspect}?share={token}", htmx=htmx)
                assert inspector.status_code == 200
                assert f"<code>{order_id}</code>" in text(inspector)
                assert_read_only(text(inspector))
                assert (await get(other.client, inspect, htmx=htmx)).status_code == 403
            assert f'href="/share/{token}/"' in text(await get(other.client, f"{inspect}?share={token}")), (
                "back to the link"
            )
            status, body = await http_get(f"{learner.url('state.json')}?share={token}", session_id=other.session_id)
            assert status == 200, body[:500]
            state = json.loads(body)
            assert [c["name"] for c in state["consumers"]] == [name]
            assert sum(p["log_end"] for t in state["topics"] for p in t["partitions"]) == 1
            status, _ = await http_get(learner.url("state.json"), session_id=other.session_id)
            assert status == 403

        # Killed: the owner's card offers Restart; the observer's card shows it killed, with nothing to click.
        assert ">Restart</button>" in card(owner.fragments[-1], name, "killed")
        killed = card(await observer.until(has_card(name, "killed"), "c1 killed, for the observer"), name)
        assert_read_only(killed)

    assert observer.fragments and owner.fragments
    for fragment in observer.fragments:
        assert_read_only(fragment)
    assert any("<button" in f for f in owner.fragments)


async def test_an_observer_is_refused_every_action_and_nothing_changes(
    kafka_cluster, learner: Learner, open_lab, subtests
):
    bootstrap = kafka_cluster.bootstrap_servers()
    created = await sync_to_async(learner.post)("orders/", order_form_data(order_id="owned-0001"))
    assert created.status_code == 200, text(created)
    token = await share(learner)
    other = Client()
    await sync_to_async(open_lab)(other)  # a learner with a lab of their own holds the link...
    stranger = Client()  # ...and so does someone without a lab
    for client in (other, stranger):
        assert (await get(client, f"/share/{token}/")).status_code == 200

    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as owner_raw:
        owner = Recorder(owner_raw)
        await owner.until(lambda f: LANES in f, "the owner's lanes")
        async with running_consumer(learner, owner) as name:
            await owner.until(has_card(name, "running"), "c1 running")
            consumer = await sync_to_async(NotificationConsumer.objects.get)(lab_id=learner.lab_id, name=name)
            ends = await asyncio.to_thread(log_ends, bootstrap, learner.topic)
            actions = {
                "orders/": order_form_data(order_id="observer-0001"),
                "orders/burst/": {"count": "10", "key_strategy": "orderId"},
                "orders/advance/": {"order_id": "owned-0001"},
                "partitions/": {"partitions": "6"},
                "consumers/": consumer_form(),
                f"consumers/{name}/stop/": {},
                f"consumers/{name}/kill/": {},
                f"consumers/{name}/restart/": {},
                "reset/": {},
                "dlq/replay/": {},
                "share/": {},
                "share/revoke/": {},
            }
            for client, who in ((other, "another learner"), (stranger, "a session without a lab")):
                for path, data in actions.items():
                    for suffix in ("", f"?share={token}"):  # holding the token grants no action
                        with subtests.test(who=who, post=path + suffix):
                            url = learner.url(path) + suffix
                            assert (await sync_to_async(client.post)(url, data)).status_code == 403
                            assert (await sync_to_async(client.post)(url, data, headers=HTMX)).status_code == 403
                for path in ("", "state.json", "events/0/0/"):
                    with subtests.test(who=who, get=path):
                        assert (await get(client, learner.url(path))).status_code == 403
                with subtests.test(who=who, get="the owner's page, with the token"):
                    assert (await get(client, f"{learner.url()}?share={token}")).status_code == 403

            assert await asyncio.to_thread(log_ends, bootstrap, learner.topic) == ends, "nothing was produced or reset"
            assert await asyncio.to_thread(partition_count, bootstrap, learner.topic) == 4
            orders = await sync_to_async(list)(
                LabOrder.objects.filter(lab_id=learner.lab_id).values_list("order_id", "status")
            )
            assert orders == [("owned-0001", "OrderCreated")]
            consumers = await sync_to_async(list)(
                NotificationConsumer.objects.filter(lab_id=learner.lab_id).values_list("name", "status", "pid")
            )
            assert consumers == [(name, "running", consumer.pid)], "c1 still runs, the same process"
            assert psutil.Process(consumer.pid).is_running()
            lab = await sync_to_async(Lab.objects.get)(pk=learner.lab_id)
            assert lab.share_token == token, "the link was neither revoked nor replaced"
            assert (await get(stranger, f"/share/{token}/")).status_code == 200


async def test_an_observer_that_sends_anything_is_disconnected(learner: Learner):
    token = await share(learner)
    async with lab_socket_open(learner.lab_id, session_id=learner.session_id) as owner:
        await receive_until(owner, lambda f: LANES in f, "the owner's lanes")
        frames = ({"text_data": "hello"}, {"bytes_data": b"\x00"}, {"text_data": '{"HEADERS": {}}'})
        for number, frame in enumerate(frames):
            async with lab_socket_open(learner.lab_id, session_id=None, share=token) as observer:
                await receive_until(observer, lambda f: LANES in f, "the observer's lanes")
                await observer.send_to(**frame)
                code, _ = await receive_close(observer)
                assert code == CLOSE_FORBIDDEN, frame
                # The lab goes on; nothing more is sent on the closed socket (daphne would refuse it).
                order_id = f"after-frame-{number}"
                created = await sync_to_async(learner.post)("orders/", order_form_data(order_id=order_id))
                assert created.status_code == 200, text(created)
                await receive_until(owner, has_box(order_id), "the order, for the owner")
                assert await observer.receive_nothing(timeout=1), "an update was sent on a closed socket"

        # The owner may send: nothing happens, and its socket stays open.
        await owner.send_to(text_data="hello")
        created = await sync_to_async(learner.post)("orders/", order_form_data(order_id="after-hello"))
        assert created.status_code == 200, text(created)
        await receive_until(owner, has_box("after-hello"), "the order: the owner's socket stays open")


async def test_an_observer_may_say_it_drew_a_push(learner: Learner):
    """ "drawn" paces the pushes (kafkalab.labs.consumers); it acts on nothing, so observers send it too."""
    token = await share(learner)
    async with lab_socket_open(learner.lab_id, session_id=None, share=token) as observer:
        await receive_until(observer, lambda f: LANES in f, "the observer's lanes")
        await observer.send_to(text_data="drawn")
        created = await sync_to_async(learner.post)("orders/", order_form_data(order_id="after-drawn"))
        assert created.status_code == 200, text(created)
        await receive_until(observer, has_box("after-drawn"), "the order: the observer's socket stays open")


async def test_bad_tokens_open_nothing(learner: Learner, open_lab):
    token = await share(learner)
    other = Client()
    other_lab = await sync_to_async(open_lab)(other)
    other_token = await share(Learner(client=other, lab_id=other_lab))
    stranger = Client()
    unknown_lab = max(learner.lab_id, other_lab) + 1000

    for bad in ("not-a-token", token[:-1], token.upper() if token.upper() != token else token.lower()):
        response = await get(stranger, f"/share/{bad}/")
        assert response.status_code == 404, bad
        assert "not valid" in text(response)
        assert "/ws/labs/" not in text(response), "no live view of any lab"

    # A token opens its own lab only: never another lab, over HTTP or the websocket.
    for path in ("state.json", "events/0/0/"):
        status, _ = await http_get(f"{learner.url(path)}?share={other_token}")
        assert status == 403, path
        assert (await get(stranger, f"{learner.url(path)}?share={other_token}")).status_code == 403
        assert (await get(stranger, f"/labs/{unknown_lab}/{path}?share={token}")).status_code == 404
    for lab_id, share_token, code in (
        (learner.lab_id, "not-a-token", CLOSE_FORBIDDEN),
        (learner.lab_id, "", CLOSE_FORBIDDEN),
        (learner.lab_id, other_token, CLOSE_FORBIDDEN),
        (other_lab, token, CLOSE_FORBIDDEN),
        (unknown_lab, token, CLOSE_NOT_FOUND),
    ):
        socket = lab_socket(lab_id, share=share_token)
        try:
            assert await socket.connect(timeout=10) == (False, code), (lab_id, share_token)
        finally:
            await socket.disconnect()


async def test_revoking_closes_the_observers_and_sharing_again_makes_a_new_link(learner: Learner):
    old = await share(learner)
    assert await share(learner) == old, "the same link until it is revoked"
    stranger = Client()
    assert (await get(stranger, f"/share/{old}/")).status_code == 200

    async with (
        lab_socket_open(learner.lab_id, session_id=learner.session_id) as owner,
        lab_socket_open(learner.lab_id, session_id=None, share=old) as observer,
    ):
        await receive_until(owner, lambda f: LANES in f, "the owner's lanes")
        await receive_until(observer, lambda f: LANES in f, "the observer's lanes")

        revoked = await sync_to_async(learner.post)("share/revoke/")
        assert revoked.status_code == 200, text(revoked)
        assert "Sharing stopped" in text(revoked)
        assert "data-share-url" not in text(revoked) and ">Share read-only</button>" in text(revoked)

        code, fragments = await receive_close(observer)
        assert code == CLOSE_FORBIDDEN
        assert any('id="lab-closed"' in f and "stopped sharing" in f for f in fragments), fragments

        created = await sync_to_async(learner.post)("orders/", order_form_data(order_id="after-revoke"))
        assert created.status_code == 200, text(created)
        await receive_until(owner, has_box("after-revoke"), "the order: the owner still watches")
        assert await observer.receive_nothing(timeout=1), "an update was sent on the closed socket"

    assert await sync_to_async(Lab.objects.values_list("share_token", flat=True).get)(pk=learner.lab_id) is None
    gone = await get(stranger, f"/share/{old}/")
    assert gone.status_code == 404 and "not valid" in text(gone)
    for path in ("state.json", "events/0/0/"):
        status, _ = await http_get(f"{learner.url(path)}?share={old}")
        assert status == 403, path
    socket = lab_socket(learner.lab_id, share=old)
    try:
        assert await socket.connect(timeout=10) == (False, CLOSE_FORBIDDEN)
    finally:
        await socket.disconnect()

    new = await share(learner)
    assert new != old
    assert (await get(stranger, f"/share/{new}/")).status_code == 200
    assert (await get(stranger, f"/share/{old}/")).status_code == 404
    async with lab_socket_open(learner.lab_id, session_id=None, share=new) as observer:
        await receive_until(observer, lambda f: LANES in f, "lanes through the new link")


async def test_a_link_revoked_while_an_observer_connects_still_closes_it(learner: Learner, monkeypatch):
    """The owner revokes just after the observer's socket passed its check and before it joined
    the lab's updates: it must still get the notice and be closed, not watch on with a dead link."""
    token = await share(learner)
    checked = LabConsumer.__dict__["_role"]  # the real check, run as is; the revoke lands right after it
    revoked: list[int] = []

    async def check_then_revoke(self, lab_id: int, share_token: str | None):
        role = await checked.__get__(self, LabConsumer)(lab_id, share_token)
        if share_token == token and not revoked:
            revoked.append((await sync_to_async(learner.post)("share/revoke/")).status_code)
        return role

    monkeypatch.setattr(LabConsumer, "_role", check_then_revoke)
    socket = lab_socket(learner.lab_id, share=token)
    try:
        connected, code = await socket.connect(timeout=30)
        if connected:  # accepted on the check it passed: the revoke's notice must follow
            code, fragments = await receive_close(socket)
            assert any("stopped sharing" in f for f in fragments), fragments
        assert code == CLOSE_FORBIDDEN
    finally:
        await socket.disconnect()
    assert revoked == [200]
