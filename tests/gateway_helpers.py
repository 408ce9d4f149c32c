"""Helpers for tests that run the whole app on a loopback port and talk to it like WeChat does."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import aiohttp
from aiohttp.test_utils import TestServer

from bot.app import SERVICES, Services, build_app
from bot.config import Config
from bot.sandbox.wechat_server import WeChatServerEmulator
from tests.conftest import TEST_AES_KEY, TEST_APPID, TEST_TOKEN


@asynccontextmanager
async def running_app(
    config: Config, session: aiohttp.ClientSession, customize: Callable[[Services], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[tuple[TestServer, WeChatServerEmulator, Services]]:
    """Start the real app on 127.0.0.1 and an emulator of the WeChat server pointed at its webhook."""
    app = build_app(config, clock=clock) if clock else build_app(config)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        services = app[SERVICES]
        if customize:
            customize(services)
        emulator = WeChatServerEmulator(
            webhook_url=str(server.make_url("/wechat")),
            token=TEST_TOKEN,
            mode=config.wechat.mode,
            encoding_aes_key=TEST_AES_KEY,
            app_id=TEST_APPID,
            session=session,
        )
        yield server, emulator, services
    finally:
        await server.close()
