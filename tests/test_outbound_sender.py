"""The outbox sender: retries with backoff, final errors recorded, exactly-once under racing senders.

Runs on SQLite and PostgreSQL. Time for ``next_attempt_at`` comes from a hand-moved clock, so backoff
is checked without sleeping; the mock WeChat API's records prove what was (not) sent.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from aiohttp.test_utils import TestServer, unused_port
from sqlalchemy import select

from bot.app import SERVICES, build_app
from bot.clock import as_utc
from bot.config import Config
from bot.dispatch.events import TextReply
from bot.sandbox.launcher import MOCK_PREFIX
from bot.sandbox.mock_wechat import MOCK_WECHAT, MockWeChat
from bot.services.outbox import Outbox
from bot.services.sender import OutboxSender
from bot.storage import outbox as queries
from bot.storage import residents
from bot.storage.db import create_engine
from bot.storage.models import OutboxMessage
from tests.conftest import make_config
from tests.test_outbound_helpers import (  # noqa: F401 - fixtures
    FakeClock,
    ProcessFactory,
    mock,
    outbound_config,
    process,
    redis_prefix,
    seconds,
    store_kind,
    text,
)

OPENID = "oResident0001"


@asynccontextmanager
async def sender_for(config: Config, process: ProcessFactory, clock: FakeClock,
                     **options: Any) -> AsyncIterator[tuple[OutboxSender, Outbox]]:
    """One worker: its WeChatApi, an outbox on its own engine, a sender driven by ``clock``."""
    engine = create_engine(config.database.url, 4)
    async with process(config) as api:
        try:
            yield (OutboxSender(engine, api, config.outbox, clock=clock.dt, rate_per_second=0, **options),
                   Outbox(engine, clock=clock.dt))
        finally:
            await engine.dispose()


async def rows(config: Config) -> list[dict[str, Any]]:
    engine = create_engine(config.database.url)
    async with engine.connect() as conn:
        found = [dict(r._mapping) for r in await conn.execute(select(OutboxMessage).order_by(OutboxMessage.id))]
    await engine.dispose()
    return found


async def attempts(config: Config, outbox_id: int) -> list[dict[str, Any]]:
    engine = create_engine(config.database.url)
    async with engine.connect() as conn:
        found = await queries.attempts_of(conn, outbox_id)
    await engine.dispose()
    return found


async def test_sends_and_records_custom_template_and_subscribe(db_url: str, mock: MockWeChat,
                                                               process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue_replies(OPENID, [TextReply("您好，已收到")], key="reply:1", source="webhook")
        await outbox.enqueue("notice:1", "template", {"template_id": "TPL", "data": {"thing1": {"value": "停水通知"}},
                                                      "url": "https://example.org/n/1"}, openid=OPENID, source="notice")
        await outbox.enqueue("sub:1", "subscribe", {"template_id": "SUB", "data": {"thing2": {"value": "工单已受理"}}},
                             openid=OPENID, source="ticket")
        assert await sender.run_once() == 3
        assert await sender.run_once() == 0
    sent = await rows(config)
    assert [r["status"] for r in sent] == ["sent", "sent", "sent"]
    assert all(r["attempts"] == 1 and r["errcode"] == 0 and r["sent_at"] is not None for r in sent)
    assert sent[1]["wechat_msgid"] and sent[0]["wechat_msgid"] is None
    assert sorted((m["kind"], m["text"]) for m in mock.messages_to(OPENID)) == [  # kinds go out independently
        ("custom", "您好，已收到"), ("subscribe", "thing2: 工单已受理"), ("template", "thing1: 停水通知")]
    assert mock.calls_to("message/template/send")[0]["body"]["url"] == "https://example.org/n/1"
    assert [a["errcode"] for a in await attempts(config, sent[0]["id"])] == [0]


async def test_transient_errors_are_retried_with_exponential_backoff(db_url: str, mock: MockWeChat,
                                                                     process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock, outbox={"backoff_base": 10.0, "backoff_max": 15.0})
    clock = FakeClock()
    mock.fail("message/custom/send", -1, -1)
    mock.fail_http("message/custom/send", 503)
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue("k1", "custom", text("重试"), openid=OPENID)
        start = clock.dt()
        assert await sender.run_once() == 1  # HTTP 503
        row = (await rows(config))[0]
        assert (row["status"], row["attempts"], row["errcode"]) == ("pending", 1, None)
        assert await sender.run_once() == 0  # not due yet: nothing sent
        clock.advance(9.9)
        assert await sender.run_once() == 0
        clock.advance(0.1)
        assert await sender.run_once() == 1  # -1, next in 20 s → capped at 15 s
        clock.advance(14.9)
        assert await sender.run_once() == 0
        clock.advance(0.1)
        assert await sender.run_once() == 1  # -1 again
        clock.advance(15)
        assert await sender.run_once() == 1  # delivered
    row = (await rows(config))[0]
    assert (row["status"], row["attempts"], row["errcode"]) == ("sent", 4, 0)
    tries = await attempts(config, row["id"])
    assert [a["errcode"] for a in tries] == [None, -1, -1, 0]
    times = [as_utc(a["at"]) for a in tries]
    assert times[0] == start
    assert [(b - a).total_seconds() for a, b in zip(times, times[1:])] == [10.0, 15.0, 15.0]
    assert mock.count("message/custom/send") == 4
    assert len(mock.messages_to(OPENID)) == 1


async def test_gives_up_after_max_attempts(db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock, outbox={"max_attempts": 3, "backoff_base": 1.0})
    clock = FakeClock()
    mock.fail_always("message/custom/send", -1)
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue("k1", "custom", text("x"), openid=OPENID)
        for _ in range(10):
            await sender.run_once()
            clock.advance(60)
    row = (await rows(config))[0]
    assert (row["status"], row["attempts"], row["errcode"]) == ("failed", 3, -1)
    assert mock.count("message/custom/send") == 3


async def test_45015_outside_the_48_hour_window_is_recorded_not_retried(db_url: str, mock: MockWeChat,
                                                                        process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    mock.fail("message/custom/send", 45015)
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue("k1", "custom", text("迟到的回复"), openid=OPENID)
        assert await sender.run_once() == 1
        clock.advance(3600)
        assert await sender.run_once() == 0
    row = (await rows(config))[0]
    assert (row["status"], row["attempts"], row["errcode"]) == ("failed", 1, 45015)
    assert mock.count("message/custom/send") == 1
    assert [a["errcode"] for a in await attempts(config, row["id"])] == [45015]


async def test_43004_marks_the_resident_unsubscribed_and_is_not_retried(db_url: str, mock: MockWeChat,
                                                                        process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    mock.unsubscribe(OPENID)
    async with sender_for(config, process, clock) as (sender, outbox):
        async with outbox._engine.begin() as conn:
            await residents.subscribe(conn, OPENID, None, clock.dt())
        await outbox.enqueue("notice:9", "template", {"template_id": "TPL", "data": {}}, openid=OPENID)
        assert await sender.run_once() == 1
        clock.advance(3600)
        assert await sender.run_once() == 0
        async with outbox._engine.connect() as conn:
            resident = await residents.get(conn, OPENID)
    row = (await rows(config))[0]
    assert (row["status"], row["errcode"]) == ("failed", 43004)
    assert resident is not None and resident["subscribed"] is False and resident["unsubscribed_at"] is not None
    assert mock.count("message/template/send") == 1


FALLBACK_TEMPLATE = {"template_id": "TPL_W", "data": {"first": {"value": "您有居民新消息（工单3）"}},
                     "url": "https://example.org/t/3"}


def with_fallback(content: str) -> dict[str, Any]:
    return {**text(content), queries.FALLBACK: FALLBACK_TEMPLATE}


async def test_45015_queues_the_rows_fallback_template_and_no_other_error_does(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock, outbox={"max_attempts": 2}), FakeClock()
    mock.close_window(OPENID)
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue("relay:1", "custom", with_fallback("居民说：在吗"), openid=OPENID, source="tickets")
        await outbox.enqueue("plain:1", "custom", text("没有备用模板"), openid=OPENID)
        assert await sender.run_once() == 2  # both refused with 45015
        assert await sender.run_once() == 1  # the fallback, queued with the refusal, goes at once
        assert await sender.run_once() == 0
        mock.close_window(OPENID, False)
        mock.fail("message/custom/send", 40003)  # permanent
        await outbox.enqueue("relay:2", "custom", with_fallback("居民说：40003"), openid=OPENID)
        assert await sender.run_once() == 1
        mock.fail_always("message/custom/send", -1)  # transient, until the attempts are used up
        await outbox.enqueue("relay:3", "custom", with_fallback("居民说：-1"), openid=OPENID)
        for _ in range(4):
            await sender.run_once()
            clock.advance(60)
        mock.fail_always("message/custom/send", None)
    by_key = {r["idempotency_key"]: r for r in await rows(config)}
    assert (by_key["relay:1"]["status"], by_key["relay:1"]["errcode"]) == ("failed", 45015)
    fallback = by_key[queries.fallback_key("relay:1")]
    assert (fallback["kind"], fallback["status"], fallback["payload"], fallback["openid"], fallback["source"]) == (
        "template", "sent", FALLBACK_TEMPLATE, OPENID, "tickets")
    assert (by_key["plain:1"]["status"], by_key["plain:1"]["errcode"]) == ("failed", 45015)
    assert [(by_key[k]["status"], by_key[k]["errcode"]) for k in ("relay:2", "relay:3")] == [
        ("failed", 40003), ("failed", -1)]
    assert set(by_key) == {"relay:1", queries.fallback_key("relay:1"), "plain:1", "relay:2", "relay:3"}
    assert [(m["kind"], m["text"]) for m in mock.messages_to(OPENID)] == [("template", "您有居民新消息（工单3）")]
    call = mock.calls_to("message/template/send")[0]["body"]
    assert call["template_id"] == "TPL_W" and call["url"] == "https://example.org/t/3"
    assert all(queries.FALLBACK not in c["body"] for c in mock.calls_to("message/custom/send"))


async def test_a_45015_recorded_twice_still_queues_one_template(db_url: str, mock: MockWeChat,
                                                                process: ProcessFactory) -> None:
    """A sender whose lease lapsed mid-call and the sender that took the row over both get 45015 and
    both hand in the fallback: it is one row, sent once."""
    config, clock = outbound_config(db_url, mock), FakeClock()
    mock.close_window(OPENID)
    mock.delay("message/custom/send", 0.3)
    async with sender_for(config, process, clock, lease_seconds=30) as (a, outbox), \
            sender_for(config, process, clock, lease_seconds=30) as (b, _):
        await outbox.enqueue("relay:7", "custom", with_fallback("居民说：在吗"), openid=OPENID)
        first = asyncio.create_task(a.run_once())
        for _ in range(100):
            if mock.count("message/custom/send"):
                break
            await asyncio.sleep(0.01)
        clock.advance(31)  # A's call is in flight and its lease has lapsed: B takes the row over
        assert await b.run_once() == 1
        assert await first == 1
        mock.delay("message/custom/send", 0)
        assert await a.run_once() + await b.run_once() == 1  # the one template
        assert await a.run_once() + await b.run_once() == 0
    assert mock.count("message/custom/send") == 2
    assert [r["idempotency_key"] for r in await rows(config)] == ["relay:7", queries.fallback_key("relay:7")]
    assert [m["kind"] for m in mock.messages_to(OPENID)] == ["template"]


async def test_same_idempotency_key_sends_once(db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    async with sender_for(config, process, clock) as (sender, outbox):
        assert await outbox.enqueue("ticket:7:accepted", "custom", text("工单已受理"), openid=OPENID)
        assert not await outbox.enqueue("ticket:7:accepted", "custom", text("工单已受理"), openid=OPENID)
        await sender.run_once()
        assert not await outbox.enqueue("ticket:7:accepted", "custom", text("工单已受理"), openid=OPENID)
        clock.advance(600)
        await sender.run_once()
    assert len(await rows(config)) == 1
    assert mock.count("message/custom/send") == 1


async def test_two_senders_racing_send_every_row_exactly_once(db_url: str, mock: MockWeChat,
                                                              process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock, outbox={"batch_size": 7})
    clock = FakeClock()
    mock.delay("message/custom/send", 0.01)
    async with sender_for(config, process, clock) as (one, outbox), sender_for(config, process, clock) as (two, _):
        await outbox.enqueue_many([{"idempotency_key": f"n:{i}", "kind": "custom", "payload": text(f"第{i}条"),
                                    "openid": f"oResident{i:04d}"} for i in range(40)])

        async def drain(sender: OutboxSender) -> int:
            total = 0
            while (n := await sender.run_once()) > 0:
                total += n
            return total

        claimed = await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    assert sum(claimed) == 40
    assert claimed[0] + claimed[2] > 0 and claimed[1] + claimed[3] > 0  # both really took part
    texts = [m["text"] for m in mock.messages]
    assert sorted(texts) == sorted(f"第{i}条" for i in range(40))  # each once, none twice
    assert mock.count("message/custom/send") == 40
    stored = await rows(config)
    assert all(r["status"] == "sent" and r["attempts"] == 1 and r["lease_owner"] is None for r in stored)


async def test_a_failed_part_holds_back_the_later_parts_of_the_same_reply(db_url: str, mock: MockWeChat,
                                                                          process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    mock.fail("message/custom/send", -1)
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue_replies(OPENID, [TextReply("第一段"), TextReply("第二段")], key="reply:5", source="webhook")
        await sender.run_once()
        assert mock.messages_to(OPENID) == []  # part 2 did not overtake part 1
        clock.advance(1.0)
        await sender.run_once()
    assert [m["text"] for m in mock.messages_to(OPENID)] == ["第一段", "第二段"]


async def test_rows_leased_by_a_live_sender_are_not_taken_and_an_expired_lease_is(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue("k1", "custom", text("x"), openid=OPENID)
        async with outbox._engine.begin() as conn:  # a sender that claimed the row and then died
            claimed = await queries.claim_due(conn, "dead-sender", clock.dt(), clock.dt() + seconds(30), 10)
        assert len(claimed) == 1
        assert await sender.run_once() == 0
        clock.advance(31)
        assert await sender.run_once() == 1
    assert mock.count("message/custom/send") == 1


async def test_menu_rows_and_broken_payloads(db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock), FakeClock()
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue("menu:1", "menu", {"button": [{"type": "click", "name": "办事指南", "key": "GUIDE"}]})
        await outbox.enqueue("bad:1", "template", {"data": {}}, openid=OPENID)
        await outbox.enqueue("bad:2", "fax", {}, openid=OPENID)
        assert await sender.run_once() == 3
    by_key = {r["idempotency_key"]: r for r in await rows(config)}
    assert by_key["menu:1"]["status"] == "sent" and mock.menu is not None
    assert by_key["bad:1"]["status"] == "failed" and "template_id" in by_key["bad:1"]["error"]
    assert by_key["bad:2"]["status"] == "failed" and "fax" in by_key["bad:2"]["error"]


async def test_sandbox_app_delivers_late_replies_through_its_own_mock(db_url: str) -> None:
    """The wiring in bot/app.py: sandbox mode mounts the mock and the sender posts to it over HTTP."""
    port = unused_port()
    base = f"http://127.0.0.1:{port}{MOCK_PREFIX}/cgi-bin/"
    config = make_config(db_url, server={"port": port}, wechat={"api_base_url": base},
                         outbox={"poll_interval": 0.05})
    app = build_app(config)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        services = app[SERVICES]
        mock = app[MOCK_WECHAT]
        assert services.outbound is not None
        await services.outbox.enqueue_replies(OPENID, [TextReply("稍后回复")], key="reply:late", source="webhook")
        services.outbound.sender.wake()
        for _ in range(100):
            if mock.messages_to(OPENID):
                break
            await asyncio.sleep(0.05)
        assert [m["text"] for m in mock.messages_to(OPENID)] == ["稍后回复"]
    finally:
        await server.close()


async def test_stopping_mid_round_hands_back_untried_rows_but_not_the_one_in_flight(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config, clock = outbound_config(db_url, mock, wechat={"api_timeout": 2.0}), FakeClock()
    mock.delay("message/custom/send", 1.0)
    async with sender_for(config, process, clock) as (sender, outbox):
        await outbox.enqueue_replies(OPENID, [TextReply("一"), TextReply("二")], key="reply:9", source="webhook")
        task = sender.start()
        for _ in range(100):
            if mock.count("message/custom/send"):
                break
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    first, second = await rows(config)
    assert first["lease_owner"] == sender.owner and first["status"] == "pending"
    assert second["lease_owner"] is None and second["status"] == "pending" and second["attempts"] == 0


async def test_a_waiting_or_leased_row_holds_back_only_its_residents_later_rows_of_that_kind(db_url: str) -> None:
    """The claim's ordering rule, straight on the query: blockers are per resident and kind."""
    engine = create_engine(db_url)
    try:
        outbox = Outbox(engine)
        now = as_utc(datetime(2026, 11, 24, 8, 0))
        for key, openid, kind in (("a1", OPENID, "custom"), ("a2", OPENID, "custom"), ("a3", OPENID, "template"),
                                  ("b1", "oOther", "custom"), ("m1", None, "menu"), ("a4", OPENID, "custom")):
            await outbox.enqueue(key, kind, {"touser": openid} if openid else {"button": []}, openid=openid)
        T = OutboxMessage.__table__
        async with engine.begin() as conn:
            await conn.execute(T.update().values(next_attempt_at=now))
            ids = {k: await queries.id_by_key(conn, k) for k in ("a1", "a2", "a3", "a4", "b1", "m1")}
            # a1 is waiting for its retry: a2 and a4 (same resident, same kind) must wait behind it.
            await conn.execute(T.update().where(T.c.id == ids["a1"]).values(next_attempt_at=now + seconds(60)))
        async with engine.begin() as conn:
            picked = await queries.claim_due(conn, "s1", now, now + seconds(3600), 50)
        assert {r["id"] for r in picked} == {ids["a3"], ids["b1"], ids["m1"]}
        async with engine.begin() as conn:  # once a1 is due, the rest of that resident may follow
            picked = await queries.claim_due(conn, "s2", now + seconds(61), now + seconds(90), 50)
        assert {r["id"] for r in picked} == {ids["a1"], ids["a2"], ids["a4"]}
        async with engine.begin() as conn:  # all three leased to s2: nothing of theirs can be taken again
            assert await queries.claim_due(conn, "s3", now + seconds(62), now + seconds(90), 50) == []
    finally:
        await engine.dispose()
