"""The one place that wires everything: config → engine → services → dialogue → gateway → routes.

Modelled on aiohttp-demos' polls app (``web.AppKey``, ``cleanup_ctx`` per resource), with one
difference: the pieces are built in :class:`Services` first, so tests and the terminal chat can use
the same wiring without an HTTP server. Each concern has one ``_setup_*`` step below; the order of
the dialogue's routers is decided in :func:`_dialogue` and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Config
from bot.heap import refreeze_after_swap
from bot.dispatch import Dispatcher, Router
from bot.handlers.account import account_router
from bot.handlers.fallback import fallback_router
from bot.handlers.faq import faq_router
from bot.handlers.notices import notices_router
from bot.handlers.tickets import grid_scene_router, tickets_router
from bot.sandbox.mock_wechat import setup_mock
from bot.services.announcements import Announcements
from bot.services.journal import Journal
from bot.services.notices import NoticeService, setup_notices, start_notices
from bot.services.outbox import Outbox
from bot.services.residents import Residents
from bot.services.sender import Outbound, setup_outbound
from bot.services.tickets import Tickets, setup_tickets
from bot.services.unmatched import ReviewQueue
from bot.storage.conversations import ConversationStore
from bot.storage.db import create_engine, sqlite_path
from bot.storage.messages import BatchWriter
from bot.storage.pages import PageStore
from bot.understanding.loader import KnowledgeHolder
from bot.web.simulator import setup_simulator
from bot.web.tickets_page import setup_ticket_pages
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
    knowledge: KnowledgeHolder
    reviews: ReviewQueue
    notices: NoticeService
    dispatcher: Dispatcher
    gateway: Gateway
    outbound: Outbound | None = None  # WeChat API + outbox sender; None in a sandbox without a mock URL
    tickets: Tickets | None = None
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)

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
        self.conversations.close()
        for closer in reversed(self.closers):
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        await _cancel_leftover_tasks()
        await self.engine.dispose()


async def _cancel_leftover_tasks(timeout: float = 5.0) -> None:
    """Cancel and await tasks our code (or APScheduler on its behalf) still runs at shutdown.

    A scheduler job or a background write cut off mid-query after the engine is disposed can leave
    the event loop unable to close (seen as a hang at the end of a test). Whatever a feature forgot
    to stop is stopped here, before the engine goes away.
    """
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done() and _ours(t)]
    for task in leftovers:
        task.cancel()
    if leftovers:
        await asyncio.wait(leftovers, timeout=timeout)


def _ours(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code else ""
    return f"{os.sep}bot{os.sep}" in filename or f"{os.sep}apscheduler{os.sep}" in filename


def _dialogue(residents: Residents, faq: Router, notices: Router, conversations: ConversationStore,
              clock: Callable[[], float]) -> Dispatcher:
    """Routers in the order they get to answer: housekeeping, features, then the fallback.

    The tickets routers are added by :func:`_setup_tickets` (they need the outbound API): the grid
    poster scan first (records the grid, returns None so the welcome still comes), tickets right after
    the account router. The dispatcher shares the app's clock, so tests move time for the whole app.
    """
    return Dispatcher([account_router(residents), notices, faq, fallback_router()], state=conversations,
                      clock=lambda: datetime.fromtimestamp(clock(), timezone.utc))


def _setup_tickets(services: Services, clock: Callable[[], float]) -> None:
    services.tickets = setup_tickets(services, clock)
    services.dispatcher.routers.insert(0, grid_scene_router(services.tickets))
    services.dispatcher.routers.insert(2, tickets_router(services.tickets, services.knowledge))


async def build_services(config: Config, clock: Callable[[], float] = time.time) -> Services:
    """Create engine, log writer, queues and the dialogue. The schema must already be migrated."""
    engine = create_engine(config.database.url, config.database.pool_size)
    journal = Journal(engine, BatchWriter(engine, sqlite_path(config.database.url)))
    journal.start()
    outbox = Outbox(engine)
    residents = Residents(engine, clock=lambda: datetime.fromtimestamp(clock(), timezone.utc),
                          resend_delays=config.outbox.receipt_delays)
    conversations = ConversationStore(engine, journal, authoritative_cache=config.server.workers == 1,
                                      sqlite_path=sqlite_path(config.database.url))
    pages = PageStore(engine)
    knowledge = await asyncio.to_thread(KnowledgeHolder, config.app.faq_dir, config.app.intents_dir,
                                        config.app.catalog_file or None)
    reviews = ReviewQueue(engine, journal)
    notices = setup_notices(config, engine, outbox, clock)
    dispatcher = _dialogue(residents, faq_router(knowledge, reviews),
                           notices_router(notices, Announcements(engine)), conversations, clock)
    gateway = Gateway(config.wechat, dispatcher, journal, outbox, pages, clock=clock)
    services = Services(config=config, engine=engine, journal=journal, outbox=outbox, residents=residents,
                        conversations=conversations, pages=pages, knowledge=knowledge, reviews=reviews,
                        notices=notices, dispatcher=dispatcher, gateway=gateway)
    services.background.append(asyncio.create_task(
        knowledge.watch(config.app.reload_interval, on_swap=refreeze_after_swap)))
    services.outbound = setup_outbound(services)
    if services.outbound is not None:
        outbox.listeners.append(services.outbound.sender.wake)
    _setup_tickets(services, clock)
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
    items = len(services.knowledge.current.items)
    checks["faq"] = "ok" if items else "no items loaded"
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "degraded", **checks, "faq_items": items}
    return web.json_response(body, status=200 if healthy else 503)


def build_app(config: Config, clock: Callable[[], float] = time.time, worker: int = 0) -> web.Application:
    """The aiohttp application. Services are created on startup and closed on cleanup.

    ``worker`` is the index of this process among ``server.workers``; singletons (the notices
    scheduler) run in worker 0.
    """
    app = web.Application(client_max_size=max(config.wechat.max_body_bytes * 2, 1024 * 1024))

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        services = await build_services(config, clock=clock)
        app[SERVICES] = services
        start_notices(services, worker)
        yield
        await services.close()

    app.cleanup_ctx.append(services_ctx)
    if config.sandbox_mode:
        setup_mock(app)
    setup_routes(app, lambda request: request.app[SERVICES].gateway, WEBHOOK_PATH)
    app.router.add_get("/healthz", healthz)
    setup_simulator(app, config, WEBHOOK_PATH)
    setup_ticket_pages(app, lambda request: request.app[SERVICES].tickets)
    return app
