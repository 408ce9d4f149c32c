"""The one place that wires everything: config → engine → services → dialogue → gateway → routes.

Modelled on aiohttp-demos' polls app (``web.AppKey``, ``cleanup_ctx`` per resource), with one
difference: the pieces are built in :class:`Services` first, so tests and the terminal chat can use
the same wiring without an HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Config
from bot.dispatch import Dispatcher, Router
from bot.handlers.account import account_router
from bot.handlers.fallback import fallback_router
from bot.services.journal import Journal
from bot.services.outbox import Outbox
from bot.services.residents import Residents
from bot.storage.conversations import ConversationStore
from bot.storage.db import create_engine, sqlite_path
from bot.storage.messages import BatchWriter
from bot.storage.pages import PageStore
from bot.wechat.webhook import Gateway, setup_routes

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/wechat"


@dataclass
class Services:
    """Everything long-lived that the app owns, built once per process."""

    config: Config
    engine: AsyncEngine
    journal: Journal
    outbox: Outbox
    residents: Residents
    conversations: ConversationStore
    pages: PageStore
    dispatcher: Dispatcher
    gateway: Gateway
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    outbound: Any = None  # bot.services.sender.Outbound (WeChat API + outbox sender), None if off

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        for task in self.background:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await self.gateway.drain(timeout=5)
        await self.journal.stop()
        for closer in reversed(self.closers):
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        await self.engine.dispose()


def routers(services_residents: Residents, extra: list[Router]) -> list[Router]:
    """The order in which features get to answer: housekeeping, features, then the fallback."""
    return [account_router(services_residents), *extra, fallback_router()]


async def build_services(config: Config, clock: Callable[[], float] = time.time) -> Services:
    """Create engine, log writer, queues and the dialogue. The schema must already be migrated."""
    engine = create_engine(config.database.url, config.database.pool_size)
    journal = Journal(engine, BatchWriter(engine, sqlite_path(config.database.url)))
    journal.start()
    outbox = Outbox(engine)
    residents = Residents(engine)
    conversations = ConversationStore(engine)
    pages = PageStore(engine)
    dispatcher = Dispatcher(routers(residents, []), state=conversations)
    gateway = Gateway(config.wechat, dispatcher, journal, outbox, pages, clock=clock)
    services = Services(
        config=config,
        engine=engine,
        journal=journal,
        outbox=outbox,
        residents=residents,
        conversations=conversations,
        pages=pages,
        dispatcher=dispatcher,
        gateway=gateway,
    )
    # --- outbound: WeChat API + outbox sender (bot/services/sender.py) ---
    from bot.services.sender import setup_outbound

    services.outbound = setup_outbound(services)
    return services


SERVICES = web.AppKey("services", Services)


async def healthz(request: web.Request) -> web.Response:
    """Database reachable and knowledge loaded: 200; otherwise 503 with what is wrong."""
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    try:
        async with services.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"down: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503)


def build_app(config: Config, clock: Callable[[], float] = time.time, worker: int = 0) -> web.Application:
    """The aiohttp application. Services are created on startup and closed on cleanup.

    ``worker`` is the index of this process among ``server.workers``; singletons run in worker 0.
    """
    app = web.Application(client_max_size=max(config.wechat.max_body_bytes * 2, 1024 * 1024))

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        services = await build_services(config, clock=clock)
        app[SERVICES] = services
        yield
        await services.close()

    app.cleanup_ctx.append(services_ctx)
    if config.sandbox_mode:  # --- mock WeChat API at MOCK_PREFIX (bot/sandbox/mock_wechat.py) ---
        from bot.sandbox.mock_wechat import setup_mock

        setup_mock(app)
    setup_routes(app, lambda request: request.app[SERVICES].gateway, WEBHOOK_PATH)
    app.router.add_get("/healthz", healthz)
    # --- simulator (sandbox only; bot/web/simulator.py) ---
    from bot.web.simulator import setup_simulator

    setup_simulator(app, config, WEBHOOK_PATH)
    # --- end simulator ---
    return app
