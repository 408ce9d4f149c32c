"""Grid workers outside WeChat's 48-hour customer-service window — through the real webhook, the outbox
and the mock WeChat API over loopback HTTP, on SQLite and PostgreSQL.

WeChat refuses a customer-service message to someone who has not written to the account for 48 hours
(45015). A message to a worker (a relayed resident message, a new ticket) then goes as the template
``tickets.worker_template_id`` instead: once, after the refusal; or straight away, without a refused
try, when ``residents.last_inbound_at`` (written by the webhook's journal) says the window is closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bot.dispatch.events import MenuViewEvent, TemplateSendJobFinishEvent, TextMessage, UnsubscribeEvent
from bot.sandbox.mock_wechat import MockWeChat
from bot.sandbox.wechat_server import WebhookReply, next_msg_id
from bot.services import takeovers as tk
from bot.services.journal import Journal
from bot.services.residents import CUSTOM_WINDOW, window_known_closed
from bot.storage import outbox as oq
from bot.storage import residents as rq
from bot.storage.db import create_engine, sqlite_path
from bot.storage.messages import BatchWriter
from tests.dialogue_helpers import FakeClock
from tests.gateway_helpers import running_app
from tests.test_tickets_flow import scan
from tests.test_tickets_support import (  # noqa: F401 (mock is a fixture)
    OPENIDS, ZHANG, eventually, import_and_bind, mock, tickets_config,
)
from tests.test_tickets_takeover import FAQ_QUESTION, RESIDENT, cs_to, ticket_id

WORKER_TPL = "TPL_WORKER_WINDOW"
WORKER = OPENIDS[ZHANG]


async def templates_to(mock: MockWeChat, openid: str, *parts: str) -> list[dict[str, Any]]:
    """Template messages to ``openid`` containing every part, once the outbox has sent one."""
    return await eventually(lambda: [m for m in mock.messages_to(openid)
                                     if m["kind"] == "template" and all(p in m["text"] for p in parts)])


def custom_calls_to(mock: MockWeChat, openid: str) -> list[dict[str, Any]]:
    """Every customer-service call for ``openid`` the mock received, refused or not."""
    return [c for c in mock.calls_to("message/custom/send") if (c["body"] or {}).get("touser") == openid]


async def outbox_row(services: Any, key: str) -> dict[str, Any] | None:
    async with services.engine.connect() as conn:
        if key not in await oq.delivery_of(conn, [key]):
            return None
        row_id = await oq.id_by_key(conn, key)
        row = await oq.get(conn, row_id)
        assert row is not None
        row["tries"] = [a["errcode"] for a in await oq.attempts_of(conn, row_id)]
        return row


async def relay_key(services: Any, tid: int, note: str) -> str:
    event = next(e for e in await services.tickets.events(tid) if e["action"] == "relay" and e["note"] == note)
    return tk.message_key(tid, event["id"], "relay")


async def accept_on_page(http: aiohttp.ClientSession, server: Any, services: Any, tid: int, worker_id: int) -> None:
    """The worker accepts on the signed page: they write nothing to the account."""
    t = services.tickets
    url = server.make_url(f"/t/{tid}").with_query(t.links.sign(tid, worker_id, t.clock()))
    async with http.post(url, data={"action": "accept"}) as resp:
        assert resp.status == 200 and "已接单" in await resp.text()


async def page_html(http: aiohttp.ClientSession, server: Any, services: Any, tid: int, worker_id: int) -> str:
    t = services.tickets
    async with http.get(server.make_url(f"/t/{tid}").with_query(t.links.sign(tid, worker_id, t.clock()))) as resp:
        assert resp.status == 200
        return await resp.text()


def assert_page_link(services: Any, call: dict[str, Any], tid: int, worker_id: int) -> None:
    """The template links to the ticket's page, signed for this worker."""
    parts = urlsplit(call["body"]["url"])
    assert parts.path == f"/t/{tid}"
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert services.tickets.links.verify(tid, params, services.tickets.clock()) == worker_id


async def test_45015_to_a_worker_goes_as_one_template_with_the_ticket_and_its_page(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    # No assign template: the new-ticket notice is a customer-service text like the relays.
    config = tickets_config(db_url, mock, tmp_path, worker_template_id=WORKER_TPL, assign_template_id="")
    async with running_app(config, http) as (server, emu, services):
        # 张秀英 works from the ticket page only and has not written to the account for 48 hours:
        # nothing of hers is on record, so the bot tries chat first; WeChat refuses it.
        mock.close_window(WORKER)
        await emu.send(scan(RESIDENT, "grid:1"))
        r = await emu.send(emu.text(RESIDENT, "我想找个真人问问"))
        tid = ticket_id(r.text)
        new = await templates_to(mock, WORKER, f"您有新工单（工单{tid}）", f"keyword1: {tid}", f"新工单{tid}（转人工）")
        assert len(new) == 1 and len(custom_calls_to(mock, WORKER)) == 1

        await accept_on_page(http, server, services, tid, ids[ZHANG])
        await cs_to(mock, RESIDENT, "张秀英", "接单")
        r = await emu.send(emu.text(RESIDENT, FAQ_QUESTION))
        assert r.text == tk.ACK.format(name="张秀英")
        relayed = await templates_to(mock, WORKER, f"您有居民新消息（工单{tid}）", FAQ_QUESTION)
        assert len(custom_calls_to(mock, WORKER)) == 2
        call = [c for c in mock.calls_to("message/template/send") if FAQ_QUESTION in str(c["body"])][0]
        assert call["body"]["template_id"] == WORKER_TPL and call["body"]["touser"] == WORKER
        assert_page_link(services, call, tid, ids[ZHANG])
        # The refused try is on record with its 45015; the template is a row of its own, sent once.
        key = await relay_key(services, tid, FAQ_QUESTION)
        refused, template = await outbox_row(services, key), await outbox_row(services, oq.fallback_key(key))
        assert refused is not None and (refused["status"], refused["errcode"], refused["tries"]) == (
            "failed", 45015, [45015])
        assert "fallback" not in custom_calls_to(mock, WORKER)[-1]["body"]  # ours, never sent to WeChat
        assert template is not None and (template["kind"], template["status"], template["tries"]) == (
            "template", "sent", [0])
        # Nothing more goes out for it: more sender rounds, the same message queued again.
        assert await services.outbound.sender.run_once() == 0
        assert not await services.tickets.send_to_worker({"id": ids[ZHANG], "openid": WORKER}, tid, key, "再来", "relay")
        assert len(relayed) == 1 and len([m for m in mock.messages_to(WORKER) if FAQ_QUESTION in m["text"]]) == 1
        # The page counts the relay as delivered (by template), not 未送达.
        html = await page_html(http, server, services, tid, ids[ZHANG])
        assert FAQ_QUESTION in html and 'class="undelivered"' not in html
        # The resident's side is untouched: a reply to them refused with 45015 stays 未送达 (no template).
        mock.close_window(RESIDENT)
        await emu.send(emu.text(WORKER, f"回复 {tid} 明天上午来"))
        reply = [e for e in await services.tickets.events(tid) if e["action"] == "reply"][0]
        reply_key = tk.message_key(tid, reply["id"], "reply")
        await eventually(lambda: _status(services, reply_key, "failed"))
        assert await outbox_row(services, oq.fallback_key(reply_key)) is None
        assert not [m for m in mock.messages_to(RESIDENT) if m["kind"] == "template"]


async def test_without_a_worker_template_a_refused_relay_is_marked_on_the_page_for_the_worker(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        tid = ticket_id((await emu.send(emu.text(RESIDENT, "我想找个真人问问"))).text)
        await accept_on_page(http, server, services, tid, ids[ZHANG])
        mock.close_window(WORKER)
        await emu.send(emu.text(RESIDENT, FAQ_QUESTION))
        key = await relay_key(services, tid, FAQ_QUESTION)
        await eventually(lambda: _status(services, key, "failed"))
        assert await outbox_row(services, oq.fallback_key(key)) is None  # nothing configured to fall back on
        html = await page_html(http, server, services, tid, ids[ZHANG])
        assert f"{FAQ_QUESTION}（未送达：{tk.why_undelivered(45015, relay=True)}" in html
        assert "您超过48小时没有在公众号发消息" in html and "居民超过48小时" not in html


async def _status(services: Any, key: str, status: str) -> bool:
    row = await outbox_row(services, key)
    return row is not None and row["status"] == status


async def test_a_window_known_closed_goes_straight_to_the_template_and_a_message_reopens_it(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    clock = FakeClock()
    config = tickets_config(db_url, mock, tmp_path, worker_template_id=WORKER_TPL, assign_template_id="")

    async def say(openid: str, text: str) -> WebhookReply:
        return await emu.send(TextMessage(openid=openid, account="gh", create_time=int(clock()),
                                          msg_id=next_msg_id(), content=text), timestamp=int(clock()))

    async with running_app(config, http, clock=clock) as (server, emu, services):
        # 张秀英 writes to the account: the webhook records when (with the message's own batch).
        await say(WORKER, "我的任务")
        assert abs((await last_inbound(services, WORKER)) - clock_dt(clock)) < timedelta(milliseconds=1)
        # Two days later WeChat would refuse chat to her — and we know it: no refused try at all.
        clock.advance(49 * 3600)
        mock.close_window(WORKER)
        await emu.send(scan(RESIDENT, "grid:1"), timestamp=int(clock()))
        tid = ticket_id((await say(RESIDENT, "我想找个真人问问")).text)
        await templates_to(mock, WORKER, f"您有新工单（工单{tid}）")
        await accept_on_page(http, server, services, tid, ids[ZHANG])
        assert (await say(RESIDENT, FAQ_QUESTION)).text == tk.ACK.format(name="张秀英")
        await templates_to(mock, WORKER, f"您有居民新消息（工单{tid}）", FAQ_QUESTION)
        assert custom_calls_to(mock, WORKER) == []
        key = await relay_key(services, tid, FAQ_QUESTION)
        row = await outbox_row(services, key)  # queued under the message's own key, as a template
        assert row is not None and (row["kind"], row["status"], row["tries"]) == ("template", "sent", [0])
        assert await outbox_row(services, oq.fallback_key(key)) is None
        assert 'class="undelivered"' not in await page_html(http, server, services, tid, ids[ZHANG])

        # She answers in chat: that reopens her window, and the next relay is a chat message again.
        clock.advance(60)
        await say(WORKER, f"回复 {tid} 您好，我看看")
        mock.close_window(WORKER, False)
        assert abs((await last_inbound(services, WORKER)) - clock_dt(clock)) < timedelta(milliseconds=1)
        await say(RESIDENT, "好的谢谢")
        await cs_to(mock, WORKER, "好的谢谢")
        assert not [m for m in mock.messages_to(WORKER) if m["kind"] == "template" and "好的谢谢" in m["text"]]


def clock_dt(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock(), timezone.utc)


async def last_inbound(services: Any, openid: str) -> datetime:
    async with services.engine.connect() as conn:
        found = await rq.last_inbound(conn, openid)
    assert found is not None, openid
    return found


async def test_webhook_records_the_last_inbound_time_once_per_interval_and_only_for_what_opens_the_window(
    db_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    clock = FakeClock()
    openid = "oWindow0000000000001"
    config = tickets_config(db_url, None, tmp_path)

    async with running_app(config, http, clock=clock) as (_, emu, services):
        async def send(event: Any) -> None:
            await emu.send(event, timestamp=int(clock()))
            await services.journal.flush()

        def text(content: str) -> TextMessage:
            return TextMessage(openid=openid, account="gh", create_time=int(clock()), msg_id=next_msg_id(),
                               content=content)

        first = clock_dt(clock)
        await send(text("你好"))
        assert abs(await last_inbound(services, openid) - first) < timedelta(milliseconds=1)
        resident = await services.residents.get(openid)
        assert resident is not None and resident["subscribed"] is True  # a row for an openid never seen
        # Within Journal.INBOUND_EVERY: nothing written (the cheap path); past it: written.
        clock.advance(Journal.INBOUND_EVERY.total_seconds() - 60)
        await send(text("在吗"))
        assert abs(await last_inbound(services, openid) - first) < timedelta(milliseconds=1)
        clock.advance(120)
        later = clock_dt(clock)
        await send(text("还在吗"))
        assert abs(await last_inbound(services, openid) - later) < timedelta(milliseconds=1)
        # What does not open WeChat's window does not count: a menu link, a template receipt, leaving.
        clock.advance(3600)
        await send(MenuViewEvent(openid=openid, account="gh", create_time=int(clock()), msg_id=None, url="http://x"))
        await send(TemplateSendJobFinishEvent(openid=openid, account="gh", create_time=int(clock()) + 1,
                                              msg_id=None, template_msg_id="1", status="success"))
        await send(UnsubscribeEvent(openid=openid, account="gh", create_time=int(clock()) + 2, msg_id=None))
        assert abs(await last_inbound(services, openid) - later) < timedelta(milliseconds=1)


async def test_last_inbound_time_only_moves_forward(db_url: str) -> None:
    """Two processes' batches may commit out of order: an older time never overwrites a newer one."""
    engine = create_engine(db_url)
    writer = BatchWriter(engine, sqlite_path(db_url))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    try:
        await writer.write([], [], inbound=[("oA", now), ("oB", now)])
        await writer.write([], [], inbound=[("oA", now - timedelta(hours=1)), ("oB", now + timedelta(hours=1))])
        async with engine.connect() as conn:
            assert await rq.last_inbound(conn, "oA") == now
            assert await rq.last_inbound(conn, "oB") == now + timedelta(hours=1)
            assert await rq.last_inbound(conn, "oC") is None
    finally:
        writer.close()
        await engine.dispose()


def test_the_window_is_known_closed_only_past_48_hours_plus_the_recording_lag() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    assert not window_known_closed(None, now)  # unknown: try chat, let a 45015 decide
    assert not window_known_closed(now - CUSTOM_WINDOW, now)
    assert not window_known_closed(now - CUSTOM_WINDOW - Journal.INBOUND_EVERY, now)  # may have written since
    assert window_known_closed(now - CUSTOM_WINDOW - Journal.INBOUND_EVERY - timedelta(seconds=1), now)

