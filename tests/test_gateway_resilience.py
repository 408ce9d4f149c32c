"""The 5-second rule, retries across processes, long replies, and the database going away."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.dispatch import Context, Router
from bot.dispatch.events import ResidentEvent, Response, TextMessage, TextReply
from bot.storage.models import Message, OutboxMessage
from bot.wechat.limits import MORE_HINT
from tests.conftest import make_config
from tests.gateway_helpers import running_app

OPENID = "oResilient01"


def slow_router(delay: float, calls: list[str], text: str = "慢慢查好了：这是答案") -> Router:
    router = Router("slow")

    @router.on(TextMessage)
    async def slow(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, TextMessage)
        calls.append(event.content)
        await asyncio.sleep(delay)
        return Response(replies=(TextReply(text),), intent="test", action="answer")

    return router


def echo_router(calls: list[str], replies: tuple[str, ...]) -> Router:
    router = Router("echo")

    @router.on(TextMessage)
    async def echo(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, TextMessage)
        calls.append(event.content)
        return Response(replies=tuple(TextReply(r) for r in replies), intent="test", action="answer")

    return router


async def _rows(services, model, *where) -> list:  # type: ignore[no-untyped-def]
    await services.journal.flush()
    async with services.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(model.__table__).where(*where))]


async def test_slow_answer_returns_success_then_customer_service_message(db_url: str, http: aiohttp.ClientSession) -> None:
    calls: list[str] = []
    config = make_config(db_url, wechat={"reply_deadline": 0.3})
    async with running_app(config, http, lambda s: s.dispatcher.routers.insert(0, slow_router(0.8, calls))) as (
        _, emu, services
    ):
        started = time.perf_counter()
        reply = await emu.send(emu.text(OPENID, "要查很久的问题"))
        assert reply.is_success and time.perf_counter() - started < 0.7
        await services.gateway.drain()
        queued = await _rows(services, OutboxMessage, OutboxMessage.openid == OPENID)
        assert len(queued) == 1 and queued[0]["kind"] == "custom"
        assert queued[0]["payload"]["text"]["content"] == "慢慢查好了：这是答案"
        out = await _rows(services, Message, Message.direction == "out")
        assert out[0]["action"] == "late"
        assert calls == ["要查很久的问题"]


async def test_retry_during_slow_processing_does_not_handle_twice(db_url: str, http: aiohttp.ClientSession) -> None:
    calls: list[str] = []
    config = make_config(db_url, wechat={"reply_deadline": 0.3})
    async with running_app(config, http, lambda s: s.dispatcher.routers.insert(0, slow_router(0.8, calls))) as (
        _, emu, services
    ):
        event = emu.text(OPENID, "慢问题")
        first = await emu.send(event)
        retry = await emu.send(event)  # WeChat's retry while we are still working
        assert first.is_success and retry.is_success
        await services.gateway.drain()
        assert calls == ["慢问题"]
        assert len(await _rows(services, OutboxMessage)) == 1


async def test_retry_on_another_process_gets_the_same_reply(db_url: str, http: aiohttp.ClientSession) -> None:
    """Two app instances (two worker processes' worth of state) on one database."""
    calls_a: list[str] = []
    calls_b: list[str] = []
    config = make_config(db_url)
    async with running_app(config, http, lambda s: s.dispatcher.routers.insert(0, echo_router(calls_a, ("甲的回答",)))) as (
        _, emu_a, services_a
    ), running_app(config, http, lambda s: s.dispatcher.routers.insert(0, echo_router(calls_b, ("乙的回答",)))) as (
        _, emu_b, services_b
    ):
        event = emu_a.text(OPENID, "同一条消息")
        first = await emu_a.send(event)
        await services_a.journal.flush()
        retry = await emu_b.send(event)
        assert first.text == "甲的回答" and retry.text == "甲的回答"
        assert calls_a == ["同一条消息"] and calls_b == []
        concurrent = emu_a.text(OPENID, "并发的同一条")
        replies = await asyncio.gather(emu_a.send(concurrent), emu_b.send(concurrent), emu_a.send(concurrent),
                                       emu_b.send(concurrent))
        assert len({r.text for r in replies}) == 1
        assert len(calls_a) + len(calls_b) == 2  # the first message and the concurrent one, once each


async def test_extra_replies_go_out_as_customer_service_messages(db_url: str, http: aiohttp.ClientSession) -> None:
    calls: list[str] = []
    async with running_app(make_config(db_url), http,
                           lambda s: s.dispatcher.routers.insert(0, echo_router(calls, ("第一条", "第二条")))) as (
        _, emu, services
    ):
        event = emu.text(OPENID, "两条回复")
        reply = await emu.send(event)
        assert reply.text == "第一条"
        await emu.send(event)  # a retry must not queue the second reply again
        await services.gateway.drain()
        queued = await _rows(services, OutboxMessage)
        assert [q["payload"]["text"]["content"] for q in queued] == ["第二条"]


async def test_long_reply_is_cut_cleanly_and_more_continues(db_url: str, http: aiohttp.ClientSession) -> None:
    lines = tuple(f"第{i}项：请携带身份证原件及复印件一份，户口簿原件。" for i in range(1, 60))
    calls: list[str] = []
    router = echo_router(calls, ("\n".join(lines),))
    async with running_app(make_config(db_url), http, lambda s: s.dispatcher.routers.insert(0, router)) as (
        _, emu, services
    ):
        reply = await emu.send(emu.text(OPENID, "给我全部"))
        assert reply.text and len(reply.text.encode()) <= 2048 and reply.text.endswith(MORE_HINT)
        head_lines = reply.text[: -len(MORE_HINT)].split("\n")
        assert all(line in lines for line in head_lines)  # cut at a line boundary
        seen = list(head_lines)
        for _ in range(10):
            more = await emu.send(emu.text(OPENID, "更多"))
            assert more.text and len(more.text.encode()) <= 2048
            done = not more.text.endswith(MORE_HINT)
            seen += (more.text if done else more.text[: -len(MORE_HINT)]).split("\n")
            if done:
                break
        assert seen == list(lines)
        assert calls == ["给我全部"]


@pytest.mark.backends("sqlite")
async def test_database_locked_for_a_moment_resident_still_answered_nothing_lost(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    path = make_url(db_url).database
    assert path
    async with running_app(make_config(db_url, wechat={"reply_deadline": 3.0}), http) as (_, emu, services):
        await emu.send(emu.text(OPENID, "热身"))
        await services.journal.flush()
        blocker = sqlite3.connect(path, timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.perf_counter()
            reply = await emu.send(emu.text(OPENID, "数据库忙的时候"))
            assert reply.status == 200 and reply.text  # a polite reply, in time
            assert time.perf_counter() - started < 3.5
        finally:
            blocker.rollback()
            blocker.close()
        await asyncio.wait_for(services.journal.flush(), timeout=30)
        contents = [r["content"] for r in await _rows(services, Message, Message.direction == "in")]
        assert "数据库忙的时候" in contents


@pytest.mark.backends("sqlite")
async def test_write_lock_held_elsewhere_never_stalls_the_event_loop(db_url: str, http: aiohttp.ClientSession) -> None:
    """The journal writes SQLite batches on the loop; a lock held by another connection must send the
    batch to a thread instead of making the whole process sleep in SQLite's busy handler."""
    from bot.storage.models import UnmatchedQuestion

    path = make_url(db_url).database
    assert path
    loop = asyncio.get_running_loop()
    async with running_app(make_config(db_url, wechat={"reply_deadline": 3.0}), http) as (_, emu, services):
        await emu.send(emu.text(OPENID, "热身"))
        await services.journal.flush()
        lags: list[float] = []

        async def ticker() -> None:
            while True:
                t = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - t - 0.01)

        tick = asyncio.create_task(ticker())
        blocker = sqlite3.connect(path, timeout=1)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            send = asyncio.create_task(emu.send(emu.text(OPENID, "阿巴阿巴阿巴")))  # unmatched: an appended row
            await asyncio.sleep(0.8)
        finally:
            blocker.rollback()
            blocker.close()
        reply = await send
        tick.cancel()
        assert reply.status == 200 and reply.text
        assert lags and max(lags) < 0.3, max(lags)
        contents = [r["content"] for r in await _rows(services, Message, Message.direction == "in")]
        assert "阿巴阿巴阿巴" in contents
        assert "阿巴阿巴阿巴" in [r["text"] for r in await _rows(services, UnmatchedQuestion)]


@pytest.mark.backends("postgresql")
async def test_postgres_connection_cut_resident_still_answered_nothing_lost(
    backend: str, http: aiohttp.ClientSession
) -> None:
    """A real TCP proxy between the app and PostgreSQL, cut and restored mid-conversation."""
    admin = os.environ["TEST_DATABASE_URL"]
    from tests.conftest import _create_pg_database, _drop_pg_database
    from bot.storage.migrate import upgrade_async
    from tests.tcp_proxy import TcpProxy

    name = f"rb_cut_{os.getpid()}_{int(time.time())}"
    await _create_pg_database(admin, name)
    target = make_url(admin)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = target.set(database=name, host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        async with running_app(make_config(url, wechat={"reply_deadline": 3.0}), http) as (_, emu, services):
            assert (await emu.send(emu.text(OPENID, "连接正常"))).text
            await services.journal.flush()
            proxy.cut()
            reply = await emu.send(emu.text(OPENID, "断线的时候"))
            assert reply.status == 200 and reply.text
            proxy.restore()
            await asyncio.wait_for(services.journal.flush(), timeout=30)
            contents = [r["content"] for r in await _rows(services, Message, Message.direction == "in")]
            assert "断线的时候" in contents and "连接正常" in contents
    finally:
        await proxy.stop()
        await _drop_pg_database(admin, name)
