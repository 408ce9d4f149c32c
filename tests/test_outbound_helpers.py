"""Fixtures shared by the outbound tests: the mock WeChat API on a loopback port, token stores, "processes".

A "process" here is what a worker would own: its own engine, its own token store object and its own
WeChatApi — only the database (or Redis) is shared, exactly as between real workers.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.sandbox.mock_wechat import MockWeChat
from bot.storage.db import create_engine
from bot.wechat.api import WeChatApi, build_wechat_api
from bot.wechat.tokens import DbTokenStore, RedisTokenStore, TokenStore
from tests.conftest import TEST_APPID, make_config

SECRET = "test-app-secret-0123456789"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


class FakeClock:
    """A clock tests move by hand; callable as epoch seconds (tokens) or as datetime (outbox)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, tz=timezone.utc)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def mock() -> AsyncIterator[MockWeChat]:
    """The mock WeChat API, standalone on 127.0.0.1, checking our AppID and AppSecret."""
    server = MockWeChat(TEST_APPID, SECRET)
    await server.start()
    yield server
    await server.stop()


def outbound_config(db_url: str, mock: MockWeChat, **sections: dict[str, Any]) -> Config:
    wechat = {"app_secret": SECRET, "api_base_url": mock.base_url, "api_timeout": 1.0, **sections.pop("wechat", {})}
    return make_config(db_url, wechat=wechat, **sections)


def store_kinds() -> list[str]:
    return ["db", "redis"] if REDIS_URL else ["db"]


@pytest.fixture(params=store_kinds())
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of our own in the test Redis (db 15), removed afterwards."""
    prefix = f"rb-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    if REDIS_URL:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


ProcessFactory = Callable[..., Any]


@pytest.fixture
def process(store_kind: str, redis_prefix: str) -> ProcessFactory:
    """``async with process(config) as api`` — one worker's WeChatApi over the shared store."""

    @asynccontextmanager
    async def make(config: Config, clock: Callable[[], float] | None = None, **token_options: Any) -> AsyncIterator[WeChatApi]:
        engine = create_engine(config.database.url, 4)
        store: TokenStore
        if store_kind == "redis":
            store = RedisTokenStore.from_url(REDIS_URL, TEST_APPID, prefix=redis_prefix)
        else:
            store = DbTokenStore(engine, TEST_APPID)
        options: dict[str, Any] = {"fetch_backoff": 0.01, **token_options}
        if clock is not None:
            options["clock"] = clock
        api = build_wechat_api(config, engine, store=store, **options)
        try:
            yield api
        finally:
            await api.close()
            await engine.dispose()

    return make


def text(content: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}}


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
