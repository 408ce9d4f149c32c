"""Live 转人工 (issue 4): once a worker accepts a 转人工 ticket, the conversation is theirs — through
the real webhook, the outbox and the mock WeChat API over loopback HTTP, on SQLite and PostgreSQL.

The resident's messages reach the worker as customer-service messages and the bot does not answer
them; the worker's "回复 12 …" (or the page's reply box) reaches the resident signed with their name;
both are in the audit trail. 办结, "结束人工" and inactivity (with a controllable clock) give the
conversation back to the bot.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bot.config import replace
from bot.dispatch.events import ImageMessage, TextMessage, VoiceMessage
from bot.handlers import tickets as h
from bot.sandbox.mock_wechat import MockWeChat
from bot.sandbox.wechat_server import WeChatServerEmulator, WebhookReply, next_msg_id
from bot.services import takeovers as tk
from tests.dialogue_helpers import FakeClock
from tests.gateway_helpers import running_app
from tests.test_tickets_flow import scan
from tests.test_tickets_support import (  # noqa: F401 (mock is a fixture)
    CHEN, LI, OPENIDS, ZHANG, eventually, import_and_bind, mock, tickets_config,
)

RESIDENT = "oTakeover00000000001"
FAQ_QUESTION = "低保要带啥子材料"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def ticket_id(text: str | None) -> int:
    m = re.search(r"工单(\d+)", text or "")
    assert m, text
    return int(m.group(1))


async def cs_to(mock: MockWeChat, openid: str, *parts: str) -> list[dict[str, Any]]:
    """Customer-service messages to ``openid`` containing every part, once the outbox has sent one."""
    return await eventually(lambda: [m for m in mock.messages_to(openid)
                                     if m["kind"] == "custom" and all(p in m["text"] for p in parts)])


def nothing_to(mock: MockWeChat, openid: str, part: str) -> bool:
    return not [m for m in mock.messages_to(openid) if part in m["text"]]


async def open_and_accept(emu: WeChatServerEmulator, services: Any, mock: MockWeChat,
                          clock: FakeClock | None = None, ask: str = "我想找个真人问问") -> int:
    """The resident asks for a person, their grid worker (张秀英) accepts it in chat; the ticket id."""
    ts = {"timestamp": int(clock())} if clock else {}
    await emu.send(scan(RESIDENT, "grid:1"), **ts)
    r = await emu.send(emu.text(RESIDENT, ask), **ts)
    tid = ticket_id(r.text)
    r = await emu.send(emu.text(OPENIDS[ZHANG], f"接单 {tid}"), **ts)
    assert r.text == h.ACT_OK["accept"].format(id=tid, target="")
    # The resident learns who took it and that their messages will now go to that person.
    await cs_to(mock, RESIDENT, "张秀英", "接单", "直接转给TA", "结束人工")
    return tid


async def actions(services: Any, tid: int) -> list[tuple[str, str | None]]:
    return [(e["action"], e["note"]) for e in await services.tickets.events(tid)]


async def test_accepted_handoff_is_the_workers_conversation_until_done(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    mock.add_media("PHOTO_1", PNG, "image/png")
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        tid = await open_and_accept(emu, services, mock)

        # An FAQ question now goes to the worker, not to the FAQ: the resident hears "已转给网格员" once.
        r = await emu.send(emu.text(RESIDENT, FAQ_QUESTION))
        assert r.text == tk.ACK.format(name="张秀英")
        assert "户口簿" not in r.text
        relayed = await cs_to(mock, OPENIDS[ZHANG], FAQ_QUESTION, f"回复 {tid}")
        assert relayed[0]["text"].startswith(f"工单{tid} 居民说")
        # The next messages are relayed silently (no echo per message): voice text, then a photo.
        r = await emu.send(VoiceMessage(openid=RESIDENT, account="gh", create_time=int(time.time()),
                                        msg_id=next_msg_id(), media_id="V1", format="amr", recognition="我腿脚不方便。"))
        assert r.is_success and r.text is None
        await cs_to(mock, OPENIDS[ZHANG], "我腿脚不方便。")
        r = await emu.send(ImageMessage(openid=RESIDENT, account="gh", create_time=int(time.time()),
                                        msg_id=next_msg_id(), media_id="PHOTO_1", pic_url=""))
        assert r.is_success and r.text is None
        photo = await cs_to(mock, OPENIDS[ZHANG], "[照片]", f"/t/{tid}?")
        link = re.search(r'href="([^"]+)"', photo[0]["text"])
        assert link, photo
        saved = await eventually(lambda: _saved_photo(services, tid))
        assert saved["by"] == "resident"

        # The resident's own commands still work during the takeover.
        r = await emu.send(emu.text(RESIDENT, "我的工单"))
        assert r.text.startswith(h.MY_TICKETS_HEAD) and f"{tid}号 转人工：已接单" in r.text
        r = await emu.send(emu.text(RESIDENT, "我的订阅"))
        assert "订阅" in r.text and nothing_to(mock, OPENIDS[ZHANG], "我的订阅")

        # The worker answers in chat; the resident gets it signed with the worker's name.
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"回复 {tid} 您好，低保要带户口簿，我下午上门看看！"))
        assert r.text == h.ACT_OK["reply"].format(id=tid, target="")
        await cs_to(mock, RESIDENT, "网格员张秀英回复您：\n您好，低保要带户口簿，我下午上门看看！")
        # ... and on the signed page (the same link the photo came with), which shows the conversation.
        page = _local(server, link.group(1).replace("&amp;", "&"))
        async with http.get(page) as resp:
            html = await resp.text()
            assert resp.status == 200 and 'data-action="reply"' in html and "人工对话" in html
            assert "我腿脚不方便" in html and "我下午上门看看" in html
        async with http.post(page, data={"action": "reply", "note": "到楼下了，请开门"}) as resp:
            assert resp.status == 200 and "已发给居民" in await resp.text()
        await cs_to(mock, RESIDENT, "网格员张秀英回复您：\n到楼下了，请开门")

        trail = await actions(services, tid)
        assert trail[:2] == [("create", None), ("accept", None)]
        assert ("relay", FAQ_QUESTION) in trail and ("relay", "我腿脚不方便。") in trail and ("relay", "[照片]") in trail
        assert ("reply", "您好，低保要带户口簿，我下午上门看看！") in trail and ("reply", "到楼下了，请开门") in trail

        # 办结 ends the takeover: the resident is told and the bot answers again.
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"办结 {tid} 已上门说明低保材料"))
        assert r.text == h.ACT_OK["done"].format(id=tid, target="")
        await cs_to(mock, RESIDENT, "办结", "人工对话已结束")
        before = len(mock.messages_to(OPENIDS[ZHANG]))
        r = await emu.send(emu.text(RESIDENT, FAQ_QUESTION))
        assert "户口簿" in r.text
        r = await emu.send(emu.text(RESIDENT, "满意"))
        assert r.text == h.RATED
        assert len(mock.messages_to(OPENIDS[ZHANG])) == before  # nothing more relayed
        takeover = (await services.tickets.takeovers.of([tid]))[tid]
        assert takeover["ended_at"] is not None and takeover["end_reason"] == "done"


async def _saved_photo(services: Any, tid: int) -> dict[str, Any] | None:
    ticket = await services.tickets.get(tid)
    return next((m for m in ticket["media"] or [] if m.get("media_id") == "PHOTO_1" and m.get("path")), None)


def _local(server: Any, link: str) -> Any:
    """The page link from a WeChat message, on the test server's port."""
    parts = urlsplit(link)
    return server.make_url(parts.path).with_query({k: v[0] for k, v in parse_qs(parts.query).items()})


async def test_only_the_assignee_replies_and_other_kinds_cannot_be_replied_to(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        tid = await open_and_accept(emu, services, mock)
        # 李建国 (the grid's backup: sees the ticket) and 陈丽 (another grid) may not answer for 张秀英.
        for other in (LI, CHEN):
            r = await emu.send(emu.text(OPENIDS[other], f"回复 {tid} 我来回答"))
            assert r.text == f"工单{tid}不归您处理。", r.text
        t = services.tickets
        url = server.make_url(f"/t/{tid}").with_query(t.links.sign(tid, ids[LI], t.clock()))
        async with http.get(url) as resp:
            assert resp.status == 200 and 'data-action="reply"' not in await resp.text()
        async with http.post(url, data={"action": "reply", "note": "我来回答"}) as resp:
            assert "不归您处理" in await resp.text()
        # An empty reply is refused with an example; the assignee's real one goes through.
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"回复 {tid}"))
        assert "请写明回复内容" in r.text
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"回复 {tid} 好的"))
        assert r.text == h.ACT_OK["reply"].format(id=tid, target="")
        await cs_to(mock, RESIDENT, "网格员张秀英回复您：\n好的")
        assert nothing_to(mock, RESIDENT, "我来回答")
        assert [a for a, _ in await actions(services, tid)].count("reply") == 1
        # A 报事 ticket is not a chat: 回复 is refused there.
        r = await emu.send(emu.text(RESIDENT, "结束人工"))
        r = await emu.send(emu.text(RESIDENT, "报修 3栋楼道灯坏了"))
        r = await emu.send(emu.text(RESIDENT, "提交"))
        report = ticket_id(r.text)
        await emu.send(emu.text(OPENIDS[ZHANG], f"接单 {report}"))
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"回复 {report} 你好"))
        assert r.text == f"工单{report}不是转人工工单，请打电话联系居民。"


async def test_resident_ends_it_and_asking_again_reconnects_the_same_worker(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        tid = await open_and_accept(emu, services, mock)
        await emu.send(emu.text(RESIDENT, "在吗"))
        await cs_to(mock, OPENIDS[ZHANG], "在吗")
        r = await emu.send(emu.text(RESIDENT, "不用了。"))
        assert r.text == tk.ENDED_BY_RESIDENT.format(name="张秀英")
        await cs_to(mock, OPENIDS[ZHANG], tk.ENDED_FOR_WORKER.format(id=tid))
        r = await emu.send(emu.text(RESIDENT, FAQ_QUESTION))  # the bot again
        assert "户口簿" in r.text and nothing_to(mock, OPENIDS[ZHANG], FAQ_QUESTION)
        assert ("takeover_end", "居民结束") in await actions(services, tid)
        # The ticket is still open: asking for a person again gives the conversation back to 张秀英.
        r = await emu.send(emu.text(RESIDENT, "转人工"))
        assert r.text == h.HUMAN_RESUMED.format(name="张秀英", id=tid)
        assert len(await services.tickets.of_resident(RESIDENT)) == 1
        await cs_to(mock, OPENIDS[ZHANG], "又找您了", "转人工")
        r = await emu.send(emu.text(RESIDENT, "还是低保的事"))
        assert r.is_success and r.text is None  # just told "已重新为您接通": no second acknowledgement
        await cs_to(mock, OPENIDS[ZHANG], "还是低保的事")


async def test_idle_takeover_lapses_back_to_the_bot(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    clock = FakeClock()
    config = tickets_config(db_url, mock, tmp_path, takeover_idle_minutes=90)

    async def say(openid: str, text: str) -> WebhookReply:
        return await emu.send(TextMessage(openid=openid, account="gh", create_time=int(clock()),
                                          msg_id=next_msg_id(), content=text), timestamp=int(clock()))

    async with running_app(config, http, clock=clock) as (_, emu, services):
        tid = await open_and_accept(emu, services, mock, clock)
        assert (await say(RESIDENT, "第一句")).text == tk.ACK.format(name="张秀英")
        # 89 minutes of silence: still the worker's (and a new acknowledgement after so long).
        clock.advance(89 * 60)
        assert (await say(RESIDENT, "第二句")).text == tk.ACK.format(name="张秀英")
        await cs_to(mock, OPENIDS[ZHANG], "第二句")
        # The worker's reply counts as activity too, and the resident who just read it needs no
        # "已转给网格员" for their next message.
        clock.advance(80 * 60)
        await say(OPENIDS[ZHANG], f"回复 {tid} 稍等")
        clock.advance(5 * 60)
        r = await say(RESIDENT, "第三句")
        assert r.is_success and r.text is None
        await cs_to(mock, OPENIDS[ZHANG], "第三句")
        # 91 minutes with nothing either way: the next message is the bot's, and both sides are told.
        clock.advance(91 * 60)
        r = await say(RESIDENT, FAQ_QUESTION)
        assert "户口簿" in r.text
        await cs_to(mock, RESIDENT, tk.LAPSED_FOR_RESIDENT.format(name="张秀英"))
        await cs_to(mock, OPENIDS[ZHANG], tk.LAPSED_FOR_WORKER.format(id=tid, hours="90分钟"))
        assert nothing_to(mock, OPENIDS[ZHANG], FAQ_QUESTION)
        assert ("takeover_end", "超时无人回复") in await actions(services, tid)

        # The poller lapses a silent takeover without waiting for the resident (exactly once).
        await say(OPENIDS[ZHANG], f"回复 {tid} 还有问题吗？")  # the worker's reply reconnects
        await cs_to(mock, RESIDENT, "还有问题吗？")
        assert (await services.tickets.takeovers.run_round()) == (0, 0)
        clock.advance(91 * 60)
        assert (await services.tickets.takeovers.run_round()) == (1, 0)
        assert (await services.tickets.takeovers.run_round()) == (0, 0)
        assert [a for a, _ in await actions(services, tid)].count("takeover_end") == 2
        r = await say(RESIDENT, FAQ_QUESTION)
        assert "户口簿" in r.text


async def test_a_reply_wechat_refuses_is_shown_to_the_worker_on_the_page_and_in_chat(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        tid = await open_and_accept(emu, services, mock, ask="转人工，我电话13812345678")
        await emu.send(emu.text(RESIDENT, "在吗"))
        await cs_to(mock, OPENIDS[ZHANG], "在吗")
        # The resident wrote more than 48 hours ago as far as WeChat is concerned: 45015, not retried.
        mock.fail("message/custom/send", 45015)
        await emu.send(emu.text(OPENIDS[ZHANG], f"回复 {tid} 明天上午来"))
        reply = [e for e in await services.tickets.events(tid) if e["action"] == "reply"][0]
        key = tk.message_key(tid, reply["id"], "reply")
        failed = await eventually(lambda: _failed(services, key))
        assert failed["errcode"] == 45015
        assert nothing_to(mock, RESIDENT, "明天上午来")
        # The page marks the reply as not delivered, with the reason.
        t = services.tickets
        url = server.make_url(f"/t/{tid}").with_query(t.links.sign(tid, (await t.get(tid))["worker_id"], t.clock()))
        async with http.get(url) as resp:
            html = await resp.text()
        assert 'class="undelivered"' in html and "明天上午来（未送达：居民超过48小时没有在公众号发消息" in html
        # The poller tells the worker in chat, with the phone to call — once.
        assert await services.tickets.takeovers.run_round() == (0, 1)
        told = await cs_to(mock, OPENIDS[ZHANG], f"工单{tid}：您的回复“明天上午来”没能发给居民")
        assert "48小时" in told[0]["text"] and "请打电话联系居民：13812345678" in told[0]["text"]
        assert await services.tickets.takeovers.run_round() == (0, 0)
        assert ("undelivered", tk.why_undelivered(45015)) in await actions(services, tid)


async def _failed(services: Any, key: str) -> dict[str, Any] | None:
    from bot.storage import outbox as oq

    async with services.engine.connect() as conn:
        found = (await oq.delivery_of(conn, [key])).get(key)
    return found if found and found["status"] == "failed" else None


async def test_two_serve_processes_agree_on_who_holds_the_conversation(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    """The worker accepts on process A; within a second process B relays the resident's message too,
    and after 办结 on A, B answers with the bot again (each process keeps its own in-memory index)."""
    await import_and_bind(db_url)
    config = replace(tickets_config(db_url, mock, tmp_path), server={"workers": 2})
    async with running_app(config, http) as (_, emu_a, a), running_app(config, http) as (_, emu_b, _b):
        r = await emu_b.send(emu_b.text(RESIDENT, FAQ_QUESTION))  # B loads its index: nobody is taken over
        assert "户口簿" in r.text
        tid = await open_and_accept(emu_a, a, mock)
        await asyncio.sleep(1.1)  # B reloads its index at most once a second
        r = await emu_b.send(emu_b.text(RESIDENT, FAQ_QUESTION))
        assert r.text == tk.ACK.format(name="张秀英")
        await cs_to(mock, OPENIDS[ZHANG], FAQ_QUESTION)
        await emu_a.send(emu_a.text(OPENIDS[ZHANG], f"办结 {tid} 已电话说明"))
        r = await emu_b.send(emu_b.text(RESIDENT, FAQ_QUESTION))  # B's index still lists it: the database says no
        assert "户口簿" in r.text


async def test_transfer_or_return_ends_the_conversation_and_tells_the_resident(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        tid = await open_and_accept(emu, services, mock)
        await emu.send(emu.text(RESIDENT, "在吗"))
        await cs_to(mock, OPENIDS[ZHANG], "在吗")
        # 张秀英 passes it to 李建国 (转派): the resident learns who takes over and that the bot answers meanwhile.
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"转派 {tid} {ids[LI]} 我这周在外培训"))
        assert r.text == h.ACT_OK["transfer"].format(id=tid, target="李建国")
        told = await cs_to(mock, RESIDENT, tk.TRANSFERRED_FOR_RESIDENT.format(id=tid, to="网格员李建国", name="张秀英"))
        assert len(told) == 1 and "转人工" in told[0]["text"]
        r = await emu.send(emu.text(RESIDENT, FAQ_QUESTION))
        assert "户口簿" in r.text  # the bot again, nothing relayed to either worker
        assert nothing_to(mock, OPENIDS[ZHANG], FAQ_QUESTION) and nothing_to(mock, OPENIDS[LI], FAQ_QUESTION)
        assert (await services.tickets.takeovers.of([tid]))[tid]["end_reason"] == "transfer"

        # 李建国 accepts: the conversation is his; then he gives it back (退单): the resident is told again.
        r = await emu.send(emu.text(OPENIDS[LI], f"接单 {tid}"))
        assert r.text == h.ACT_OK["accept"].format(id=tid, target="")
        await cs_to(mock, RESIDENT, "李建国", "接单", "直接转给TA")
        assert (await emu.send(emu.text(RESIDENT, "还是低保的事"))).text == tk.ACK.format(name="李建国")
        await cs_to(mock, OPENIDS[LI], "还是低保的事")
        r = await emu.send(emu.text(OPENIDS[LI], f"退单 {tid} 不是我负责的楼栋"))
        assert r.text == h.ACT_OK["return"].format(id=tid, target="")
        await cs_to(mock, RESIDENT, tk.RETURNED_FOR_RESIDENT.format(id=tid, name="李建国"))
        r = await emu.send(emu.text(RESIDENT, FAQ_QUESTION))
        assert "户口簿" in r.text and nothing_to(mock, OPENIDS[LI], FAQ_QUESTION)
        # Each told once; 办结 still tells the resident only by its own notice.
        texts = [m["text"] for m in mock.messages_to(RESIDENT)]
        assert sum("人工对话先结束" in t for t in texts) == 2


async def test_the_acknowledgement_interval_is_a_config_key(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    clock = FakeClock()
    config = tickets_config(db_url, mock, tmp_path, takeover_ack_minutes=3)

    async def say(text: str) -> WebhookReply:
        return await emu.send(TextMessage(openid=RESIDENT, account="gh", create_time=int(clock()),
                                          msg_id=next_msg_id(), content=text), timestamp=int(clock()))

    async with running_app(config, http, clock=clock) as (_, emu, services):
        await open_and_accept(emu, services, mock, clock)
        assert (await say("第一句")).text == tk.ACK.format(name="张秀英")
        clock.advance(2 * 60)
        assert (await say("第二句")).text is None  # relayed silently
        clock.advance(60)  # three minutes since the last acknowledgement (the default would wait ten)
        assert (await say("第三句")).text == tk.ACK.format(name="张秀英")
        await cs_to(mock, OPENIDS[ZHANG], "第三句")
