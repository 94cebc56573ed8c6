"""The suite's own Redis (the classroom's channel layer): it answers on loopback, saves nothing,
and is gone, process and files, once stopped; and the channel layer kafkalab's settings build on
it waits on an idle channel as long as it takes."""

from __future__ import annotations

import asyncio
import importlib.util
from types import ModuleType

import pytest
import redis
from channels_redis.core import RedisChannelLayer

from tests.harness.redis import RedisServer
from tests.harness.server import REPO_ROOT
from tests.integration.consumer_groups.support import alive


def test_a_redis_server_answers_on_loopback_and_is_gone_once_stopped():
    with RedisServer() as server:
        assert server.url.startswith("redis://127.0.0.1:")
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
    assert not alive(server.pid)
    assert not server.root.exists()


def classroom_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> ModuleType:
    """kafkalab/settings.py executed anew with REDIS_URL set, as the classroom's processes read it."""
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    monkeypatch.setenv("REDIS_URL", redis_url)
    spec = importlib.util.spec_from_file_location("kafkalab_classroom_settings", REPO_ROOT / "kafkalab" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_channel_layer_waits_on_an_idle_channel_past_its_blocking_pop(monkeypatch, redis_url: str):
    """channels_redis's receive is a blocking pop of up to 5 s; redis-py 8's default 5 s socket
    timeout used to end that wait with a TimeoutError, which killed the lab runner's consumer."""
    config = classroom_settings(monkeypatch, redis_url).CHANNEL_LAYERS["default"]["CONFIG"]
    layer = RedisChannelLayer(**config)
    channel = await layer.new_channel()

    async def send_later() -> None:
        await asyncio.sleep(layer.brpop_timeout + 1)
        await layer.send(channel, {"type": "lab.late"})

    sender = asyncio.create_task(send_later())
    try:
        assert await asyncio.wait_for(layer.receive(channel), timeout=30) == {"type": "lab.late"}
    finally:
        sender.cancel()
        await layer.flush()
        await layer.close_pools()
